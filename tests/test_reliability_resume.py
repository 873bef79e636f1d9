"""Resume and output-directory reliability (issue 21, items 4, 6, 7 and 12).

Item 4: a resume is refused when the data or the starting checkpoint changed
since the backup, not only the flags. Item 6: `tasks.squad` resumes after a
kill as `tasks.glue` does. Item 7: a backup that cannot be written (a full
disk) is a clear `OSError`, not a segmentation fault, and the previous backup
stays loadable. Item 12: a CLI refuses an --output-dir holding another run's
files; --overwrite-output-dir removes exactly its own.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

import bert_keras as bk
from bert_keras.training.callbacks import ResumableCheckpoint
from tests.test_glue_cli import write_glue_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SQUAD_SAMPLE = os.path.join(ROOT, "tests", "data", "squad_v1_sample.json")


def interrupt_after_the_first_backup(monkeypatch):
    """SIGINT's KeyboardInterrupt once epoch 1 is backed up."""
    original = ResumableCheckpoint.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(ResumableCheckpoint, "on_epoch_end", on_epoch_end)


def glue_command(model, data_dir, out, *extra):
    return [
        "--task", "sst2", "--model", str(model), "--data-dir", str(data_dir),
        "--output-dir", str(out), "--epochs", "2", "--batch-size", "8",
        "--max-seq-length", "32", "--verbose", "0", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_glue_resume_is_refused_when_the_data_or_checkpoint_changed(
    tiny_checkpoint, tmp_path, monkeypatch
):
    """Item 4: a changed train.tsv or model file is named; the backup is kept."""
    from tasks import glue

    (tmp_path / "glue").mkdir()
    data = write_glue_dir(tmp_path / "glue")
    model = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model)
    out = tmp_path / "out"
    command = glue_command(model, data, out)
    with monkeypatch.context() as patch:
        interrupt_after_the_first_backup(patch)
        with pytest.raises(KeyboardInterrupt):
            glue.main(command)
    backup = out / "backup"
    assert (backup / "epoch-000001").is_dir()

    train = tmp_path / "glue" / "SST-2" / "train.tsv"
    original = train.read_text()
    train.write_text("\n".join(original.splitlines()[:9]) + "\n")  # fewer rows
    with pytest.raises(SystemExit, match=r"other inputs \(--data-dir SST-2/train.tsv"):
        glue.main(command)
    train.write_text(original)

    config = bk.BertConfig.from_pretrained(tiny_checkpoint)
    bk.BertModel(config).save_pretrained(model)  # other random weights
    with pytest.raises(SystemExit) as refusal:
        glue.main(command)
    message = str(refusal.value)
    assert "--model model.safetensors" in message and "--data-dir" not in message
    assert f"delete {backup}" in message and "--overwrite-output-dir" in message
    assert (backup / "epoch-000001").is_dir()  # a refusal touches no backup


def squad_command(model, out, *extra):
    return [
        "--model", str(model), "--output-dir", str(out),
        "--train-file", SQUAD_SAMPLE, "--eval-file", SQUAD_SAMPLE,
        "--max-train-samples", "16", "--max-eval-samples", "8", "--epochs", "2",
        "--batch-size", "8", "--max-seq-length", "96", "--doc-stride", "32",
        "--max-query-length", "32", "--verbose", "0", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_squad_interrupted_after_an_epoch_resumes_after_it(
    tiny_checkpoint, tmp_path, monkeypatch
):
    """Item 6: the rerun trains only epoch 2 and ends at the planned steps."""
    from tasks import squad

    out = tmp_path / "out"
    uploaded = []
    monkeypatch.setattr(
        "tasks.reporting.push_directory",
        lambda directory, repo_id: uploaded.append(sorted(os.listdir(directory))),
    )
    command = squad_command(tiny_checkpoint, out, "--push-to-hub", "me/squad")
    with monkeypatch.context() as patch:
        interrupt_after_the_first_backup(patch)
        with pytest.raises(KeyboardInterrupt):
            squad.main(command)
    assert (out / "backup" / "epoch-000001").is_dir()
    assert not (out / "results.json").exists()
    with pytest.raises(SystemExit, match="other settings.*learning_rate"):
        squad.main([*command, "--learning-rate", "1e-3"])

    results = squad.main(command)
    assert results["resumed_after_epoch"] == 1
    assert results["steps"] == results["planned_steps"] > 0
    assert [row["epoch"] for row in results["epochs"]] == [1, 2]
    saved = json.loads((out / "results.json").read_text())
    assert saved["steps"] == saved["planned_steps"]
    # The backup is still there at the upload (which leaves it out), removed after.
    assert "model.safetensors" in uploaded[0] and "backup" in uploaded[0]
    assert not (out / "backup").exists()
    bk.BertForQuestionAnswering.from_pretrained(out)


# Epoch 1 is backed up; then files may not grow past LIMIT bytes (SIGXFSZ
# ignored, so a write past it fails with EFBIG, as on a full disk).
FULL_DISK = """
import resource, signal, sys
import keras, numpy as np
import bert_keras as bk
from bert_keras.training.callbacks import ResumableCheckpoint

backup, limit = sys.argv[1], int(sys.argv[2])
config = bk.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=37, num_labels=3)
model = bk.BertForSequenceClassification(config)
model.compile(run_eagerly=True)

class FillTheDisk(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

x = {"input_ids": np.arange(40).reshape(4, 10) % 97 + 2}
model.fit(x, np.array([0, 1, 2, 1]), batch_size=2, epochs=2, verbose=0,
          callbacks=[FillTheDisk(), ResumableCheckpoint(backup)])
"""


@pytest.mark.slow
def test_a_full_disk_during_a_backup_is_a_clear_error(tmp_path):
    """Item 7: an OSError that says so (no SIGSEGV); epoch 1's backup loads."""
    backup = tmp_path / "backup"
    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(backup), "20000"],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, (run.returncode, run.stderr[-3000:])
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("OSError: [Errno 27] The backup of epoch 2 could not")
    assert "is the disk full?" in last
    assert f"previous backup is intact: {backup / 'epoch-000001'}" in last
    assert sorted(os.listdir(backup)) == ["epoch-000001"]  # no partial write left

    model = bk.BertForSequenceClassification(
        bk.BertConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            num_labels=3,
        )
    )
    model.compile()
    model.optimizer.build(model.trainable_variables)
    model.load_weights(backup / "epoch-000001" / "model.weights.h5")
    assert int(model.optimizer.iterations.numpy()) == 2


def cli_commands(tiny_checkpoint, tmp_path):
    corpus = os.path.join(ROOT, "tasks", "data", "wikitext-2-raw", "wiki.valid.raw")
    (tmp_path / "glue").mkdir()
    return {
        "glue": glue_command(
            tiny_checkpoint, write_glue_dir(tmp_path / "glue"), tmp_path / "out"
        ),
        "squad": squad_command(tiny_checkpoint, tmp_path / "out"),
        "pretrain": [
            "--corpus", corpus, "--output-dir", str(tmp_path / "out"),
            "--vocab-size", "600", "--max-steps", "2", "--save-steps", "2",
            "--batch-size", "8", "--dupe-factor", "1", "--max-seq-length", "32",
            "--verbose", "0",
        ],
    }  # fmt: skip


WORK = {"glue": "fine_tune", "squad": "fine_tune", "pretrain": "pretrain"}
STATE = {"glue": "backup", "squad": "backup", "pretrain": "work"}


@pytest.mark.parametrize("cli", ["glue", "squad", "pretrain"])
def test_each_cli_owns_its_output_dir(cli, tiny_checkpoint, tmp_path, monkeypatch):
    """Item 12: another run's files are refused before any work starts.

    Nothing is deleted and the fix is named; an interrupted run's directory
    is resumed as it is; with --overwrite-output-dir the work starts in an
    empty directory, but files the command never writes are still refused.
    """
    import importlib

    module = importlib.import_module(f"tasks.{cli}")
    seen = []
    monkeypatch.setattr(
        module, WORK[cli], lambda args, strategy, out: seen.append(os.listdir(out))
    )
    command = cli_commands(tiny_checkpoint, tmp_path)[cli]
    out = tmp_path / "out"
    out.mkdir()
    # An earlier run's: a tokenizer file that would change the new
    # tokenizer's unknown token, and its results.
    (out / "special_tokens_map.json").write_text('{"unk_token": "<unk>"}')
    (out / "results.json").write_text("{}")
    with pytest.raises(SystemExit, match="earlier.*--overwrite-output-dir"):
        module.main(command)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"does not write: notes\.txt.*move"):
        module.main([*command, "--overwrite-output-dir"])
    assert not seen
    assert sorted(os.listdir(out)) == [
        "notes.txt",
        "results.json",
        "special_tokens_map.json",
    ]

    (out / "notes.txt").unlink()
    (out / STATE[cli]).mkdir()  # an interrupted run: resumed as it is
    module.main(command)
    assert sorted(seen.pop()) == sorted(
        [STATE[cli], "results.json", "special_tokens_map.json"]
    )

    module.main([*command, "--overwrite-output-dir"])
    assert seen == [[]]
