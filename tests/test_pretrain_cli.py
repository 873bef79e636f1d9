"""`python -m tasks.pretrain` end to end: run, HF checkpoint, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import transformers
from conftest import assert_outputs_close
from conftest import torch_outputs

import bert_keras as bk
from tests.test_observe import tensorboard_scalars

# Every test runs the CLI end to end (tens of seconds each).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tasks", "data", "wikitext-2-raw", "wiki.valid.raw")
TINY = '{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}'  # noqa: E501


def command(out, max_steps, save_steps):
    return [
        sys.executable, "-m", "tasks.pretrain", "--corpus", CORPUS,
        "--output-dir", str(out), "--vocab-size", "1500", "--config", TINY,
        "--max-steps", str(max_steps), "--save-steps", str(save_steps),
        "--batch-size", "8", "--dupe-factor", "1", "--max-seq-length", "64",
        "--verbose", "2",
    ]  # fmt: skip


def run_to_the_end(out, max_steps, save_steps, env):
    """Runs (or resumes) the CLI to its planned step; returns stdout and results.

    The run must succeed, stop at `max_steps` and leave a loadable checkpoint.
    """
    run = subprocess.run(
        command(out, max_steps, save_steps), cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == max_steps == results["planned_steps"]
    bk.BertForPreTraining.from_pretrained(out)
    return run.stdout, results


def test_pretraining_run_writes_a_checkpoint_transformers_reproduces(tmp_path):
    from tasks import pretrain

    results = pretrain.main(command(tmp_path, 20, 10)[3:])
    assert results["steps"] == 20 == results["steps_this_run"]
    assert results["tokens_per_second"] > 0
    assert [row["epoch"] for row in results["epochs"]] == [1, 2]
    assert {"loss", "mlm_accuracy", "nsp_accuracy"} <= set(results["epochs"][-1])
    for name in ("config.json", "model.safetensors", "tokenizer.json",
                 "results.json", "README.md", "training_curves.png",
                 "all_results.json", "train_results.json",
                 "trainer_state.json"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    # TensorBoard: loss and rate every --save-steps at most (a tenth of a pass
    # over the data is more), each round's MLM/NSP accuracy.
    scalars = tensorboard_scalars(tmp_path / "runs")
    assert [step for step, _ in scalars["train/loss"]] == [10, 20]
    rates = [value for _, value in scalars["train/learning_rate"]]
    assert rates[0] > rates[-1] >= 0  # linear decay after 2 warmup steps
    assert [step for step, _ in scalars["train/mlm_accuracy"]] == [10, 20]
    assert "train/nsp_accuracy" in scalars
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 20 and state["max_steps"] == 20
    assert state["log_history"][-1]["train_loss"] > 0

    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    theirs, info = transformers.BertForPreTraining.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    theirs.eval()
    ours = bk.BertForPreTraining.from_pretrained(tmp_path)
    batch = tokenizer(["The lobster is large ."], ["It lives in the sea ."],
                      return_tensors="np")  # fmt: skip
    assert_outputs_close(
        ours(dict(batch)),
        torch_outputs(theirs, batch),
        keys=("prediction_logits", "seq_relationship_logits"),
    )


def test_killed_run_resumes_and_stops_at_the_planned_step(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(
        command(tmp_path, 120, 20), cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    backup = tmp_path / "work" / "backup"
    deadline = time.time() + 240
    while (
        not list(backup.glob("epoch-*"))
        and first.poll() is None
        and time.time() < deadline
    ):
        time.sleep(0.2)
    assert list(backup.glob("epoch-*")), "no checkpoint was written before the kill"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (tmp_path / "results.json").exists()

    stdout, results = run_to_the_end(tmp_path, 120, 20, env)
    assert [row["epoch"] for row in results["epochs"]] == list(range(1, 7))
    # The resumed run did not start over: its first epoch is after the kill.
    assert "Epoch 1/6" not in stdout


MIRRORED_RUN = """
import json, sys
import tensorflow as tf
if sys.argv[1] == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tasks import pretrain
results = pretrain.main(sys.argv[2:])
print("RESULT", json.dumps(results))
"""


def test_mirrored_cli_run_follows_the_single_device_run(tmp_path):
    # Dropout off: with it, each replica draws its own masks, as in any
    # data-parallel framework, and the runs would differ by design.
    config = json.loads(TINY)
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    runs = {}
    for strategy in ("default", "mirrored"):
        flags = command(tmp_path / strategy, 6, 3)[3:]
        flags[flags.index("--config") + 1] = json.dumps(config)
        result = subprocess.run(
            [sys.executable, "-c", MIRRORED_RUN, strategy, *flags,
             "--strategy", strategy],
            capture_output=True, text=True, timeout=600, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
        runs[strategy] = json.loads(line[len("RESULT ") :])
    assert runs["default"]["replicas"] == 1 and runs["mirrored"]["replicas"] == 2
    assert runs["mirrored"]["steps"] == 6
    for one, two in zip(runs["default"]["epochs"], runs["mirrored"]["epochs"]):
        for key in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy"):
            assert abs(one[key] - two[key]) <= 1e-4 * max(1.0, abs(one[key])), key


KILLED_WHILE_SAVING = """
import os, signal, sys
from bert_keras.training import callbacks
calls, original = [0], callbacks._write
def write(path, data):
    original(path, data)
    if path.endswith("model.weights.h5"):
        calls[0] += 1
        if calls[0] == int(sys.argv[1]):
            # Die while this checkpoint is being written: its weights file
            # holds only the given share of its bytes, nothing after it is.
            with open(path, "r+b") as handle:
                handle.truncate(int(len(data) * float(sys.argv[2])))
            os.kill(os.getpid(), signal.SIGKILL)
callbacks._write = write
from tasks import pretrain
pretrain.main(sys.argv[3:])
"""


@pytest.mark.parametrize("save, share", [(2, 0.0), (2, 0.5), (3, 1.0)])
def test_kill_while_writing_a_checkpoint_loses_nothing_saved_before(
    tmp_path, save, share
):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    flags = command(tmp_path, 80, 20)[3:]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_SAVING, str(save), str(share), *flags],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    backup = tmp_path / "work" / "backup"
    # The checkpoints written before the kill are all there, whole.
    assert sorted(p.name for p in backup.glob("epoch-*"))[-1] == f"epoch-{save - 1:06d}"

    _, results = run_to_the_end(tmp_path, 80, 20, env)
    # Resumed after the last whole checkpoint.
    assert results["steps_this_run"] == 80 - 20 * (save - 1)
    assert not list(backup.glob(".partial-*"))


def test_mlm_only_run_continues_from_a_checkpoint(tiny_checkpoint, tmp_path):
    """run_mlm's use case: --model's weights and tokenizer, masked LM alone,
    on text without document structure; OUT is a BertForMaskedLM checkpoint
    transformers reproduces and tasks.glue starts from."""
    from safetensors.numpy import load_file

    from tasks import pretrain

    sst2 = os.path.join(ROOT, "tasks", "data", "glue", "SST-2", "train.tsv")
    with open(sst2, encoding="utf-8") as handle:
        lines = [line.split("\t")[0] for line in handle.readlines()[1:401]]
    corpus = tmp_path / "sentences.txt"
    corpus.write_text("\n".join(lines) + "\n")  # one sentence a line, no documents
    out = tmp_path / "out"
    results = pretrain.main(
        ["--corpus", str(corpus), "--output-dir", str(out), "--model",
         tiny_checkpoint, "--mlm-only", "--max-steps", "4", "--save-steps", "2",
         "--batch-size", "8", "--max-seq-length", "32", "--dupe-factor", "1",
         "--learning-rate", "1e-3", "--verbose", "0"]
    )  # fmt: skip
    assert results["steps"] == 4 and results["architecture"] == "BertForMaskedLM"
    assert "nsp_baseline_accuracy" not in results
    assert "nsp_accuracy" not in results["final"] and "accuracy" in results["final"]
    assert "random_next_instances" not in results["corpus"]

    # The weights moved a little from --model's, not from a fresh draw.
    start = load_file(os.path.join(tiny_checkpoint, "model.safetensors"))
    end = load_file(out / "model.safetensors")
    key = "bert.encoder.layer.0.attention.self.query.weight"
    start_key = key if key in start else key.removeprefix("bert.")
    moved = np.abs(end[key] - start[start_key]).max()
    assert 0 < moved < 0.01, moved
    assert (
        json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
        == (
            json.loads(open(os.path.join(tiny_checkpoint, "tokenizer.json")).read())[
                "model"
            ]["vocab"]
        )
    )

    theirs, info = transformers.BertForMaskedLM.from_pretrained(
        out, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    theirs.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["a gripping , beautifully acted film"], return_tensors="np")
    assert_outputs_close(
        bk.BertForMaskedLM.from_pretrained(out)(dict(batch)),
        torch_outputs(theirs, batch),
        keys=("logits",),
    )
    # What tasks.glue loads: every encoder weight, new pooler and classifier.
    _, info = bk.BertForSequenceClassification.from_pretrained(
        out, num_labels=2, output_loading_info=True
    )
    assert all("pooler" in k or "classifier" in k for k in info["missing_keys"])
    assert info["missing_keys"]


def test_masked_lm_learns_from_the_unmasked_tokens(tmp_path):
    """The whole pipeline (tokenizer, instances, dynamic masks, masked-rows
    head, loss) lets the model read the context: on lines alternating a word
    and its partner (25 fixed pairs), a masked word is predicted from its
    neighbours, far above the unigram rate, and not from a line of random
    words. Training that sees the masked words (masks not applied) or a model
    blind to its context would stay near the unigram rate (1 in 50)."""
    from tasks import pretrain

    words = [a + b for a in "bdgklmnprst" for b in "aeiou"][:50]
    rng = np.random.RandomState(0)
    pairs = rng.randint(25, size=1000)
    lines = [" ".join([words[2 * p], words[2 * p + 1]] * 4) for p in pairs]
    corpus = tmp_path / "pairs.txt"
    corpus.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    pretrain.main(
        ["--corpus", str(corpus), "--output-dir", str(out), "--vocab-size", "200",
         "--config", '{"hidden_size": 32, "num_hidden_layers": 1, '
         '"num_attention_heads": 2, "intermediate_size": 64}',
         "--mlm-only", "--line-by-line", "--max-seq-length", "16",
         "--max-predictions-per-seq", "3", "--max-steps", "200", "--save-steps",
         "200", "--batch-size", "32", "--learning-rate", "3e-3", "--dupe-factor",
         "1", "--seed", "1", "--verbose", "0"]
    )  # fmt: skip

    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    model = bk.BertForMaskedLM.from_pretrained(out)

    def accuracy(in_pairs):
        picks = rng.randint(50, size=(128, 10))
        if in_pairs:
            picks[:] = 2 * (picks[:, :1] // 2) + np.arange(10) % 2
        batch = tokenizer(
            [" ".join(words[i] for i in row) for row in picks], return_tensors="np"
        )
        ids = batch["input_ids"]
        assert ids.shape[1] == 12  # every word is one token
        where = rng.randint(1, 11, size=len(ids))
        gold = ids[np.arange(len(ids)), where].copy()
        ids[np.arange(len(ids)), where] = tokenizer.mask_token_id
        logits = np.asarray(model(dict(batch))["logits"])
        return np.mean(logits[np.arange(len(ids)), where].argmax(-1) == gold)

    in_context, other_words = accuracy(True), accuracy(False)
    assert in_context > 0.25 and other_words < 0.1, (in_context, other_words)
