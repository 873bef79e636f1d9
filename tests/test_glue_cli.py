"""`python -m tasks.glue` end to end on a tiny model and a tiny GLUE folder."""

import json
import os

import keras
import numpy as np
import pytest
import torch
import transformers

import bert_keras as bk
from tasks import glue
from tests.test_glue_data import ROWS
from tests.test_observe import tensorboard_scalars

SST2_TRAIN = [
    "a gripping , beautifully acted film \t1",
    "an absolute joy \t1",
    "dull and flat \t0",
    "i wanted my two hours back \t0",
    "warm , funny and moving \t1",
    "a tedious mess \t0",
] * 4


def write_glue_dir(root):
    """A tiny copy of every GLUE task's files (SST-2 with SST2_TRAIN rows)."""
    for directory, (header, rows) in ROWS.items():
        (root / directory).mkdir()
        if directory == "SST-2":
            rows = SST2_TRAIN
        for split in ("train", "dev", "dev_matched", "dev_mismatched"):
            lines = ([header] if header else []) + rows
            (root / directory / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return str(root)


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    return write_glue_dir(tmp_path_factory.mktemp("glue"))


def run(task, tiny_checkpoint, glue_dir, out, *extra):
    return glue.main(
        [
            "--task", task,
            "--model", tiny_checkpoint,
            "--data-dir", glue_dir,
            "--output-dir", str(out),
            "--epochs", "2",
            "--batch-size", "4",
            "--max-seq-length", "32",
            "--verbose", "0",
            *extra,
        ]
    )  # fmt: skip


def torch_predictions(out, inputs_texts, regression):
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out)
    model.eval()
    batch = tokenizer(*inputs_texts, padding=True, truncation=True, max_length=32,
                      return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        logits = model(**batch).logits.numpy()
    return logits[:, 0] if regression else logits.argmax(-1), model.config


# 6 updates per epoch: logs every 2, evaluations and checkpoints at steps 4
# and 8; no evaluation beats the first by 100, so training stops at step 8
# and the best of the two is loaded.
OBSERVE = ("--logging-steps", "2", "--eval-steps", "4", "--save-steps", "4",
           "--save-total-limit", "1", "--early-stopping-patience", "1",
           "--early-stopping-threshold", "100", "--load-best-model-at-end")  # fmt: skip


def check_observable(out, results, extra):
    """TensorBoard events, trainer_state.json and transformers' result files."""
    state = json.loads((out / "trainer_state.json").read_text())
    steps = results["steps"]
    assert state["global_step"] == steps
    logging_steps = state["logging_steps"]
    logged = [row["step"] for row in state["log_history"] if "loss" in row]
    expected = list(range(logging_steps, steps + 1, logging_steps))
    assert logged == expected + ([steps] if steps % logging_steps else [])
    scalars = tensorboard_scalars(out / "runs")
    for tag in ("train/loss", "train/learning_rate"):
        assert [step for step, _ in scalars[tag]] == logged, tag
    losses = [row["loss"] for row in state["log_history"] if "loss" in row]
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], losses, 1e-6)
    evaluations = [row for row in state["log_history"] if "eval_loss" in row]
    metric = state["metric_for_best_model"]
    assert evaluations and [step for step, _ in scalars["eval/loss"]] == [
        row["step"] for row in evaluations
    ]
    assert metric.replace("eval_", "eval/") in scalars
    final = {k for k in results if k.startswith("eval_")}
    eval_results = json.loads((out / "eval_results.json").read_text())
    assert final <= set(eval_results) and eval_results["eval_samples"] > 0
    train_results = json.loads((out / "train_results.json").read_text())
    assert train_results["train_samples"] == results["train_examples"]
    assert np.isfinite(train_results["train_loss"])
    both = json.loads((out / "all_results.json").read_text())
    assert both == {**train_results, **eval_results}
    if "--eval-steps" not in extra:  # one evaluation per epoch, in the epoch logs
        assert len(evaluations) == len(results["epochs"]) == 2
        assert all("val_loss" in row for row in results["epochs"])
        return
    # OBSERVE: early stopping and the best model.
    assert [row["step"] for row in evaluations] == [4, 8]
    assert steps == results["stopped_early_at_step"] == 8 < results["planned_steps"]
    values = [row[metric] for row in evaluations]
    best_step = 4 if values[0] >= values[1] else 8
    assert results["best_step"] == state["best_global_step"] == best_step
    assert results["loaded_best_model"] is True
    assert state["best_model_checkpoint"] == f"checkpoint-{best_step}"
    # At most 1 kept, but never the newest nor the best.
    kept = sorted(path.name for path in out.glob("checkpoint-*"))
    assert kept == sorted({"checkpoint-8", f"checkpoint-{best_step}"})
    from safetensors.numpy import load_file

    best = load_file(out / f"checkpoint-{best_step}" / "model.safetensors")
    final_weights = load_file(out / "model.safetensors")
    assert best.keys() == final_weights.keys()
    for key in best:
        np.testing.assert_array_equal(best[key], final_weights[key], err_msg=key)
    saved_state = json.loads(
        (out / f"checkpoint-{best_step}" / "trainer_state.json").read_text()
    )
    assert saved_state["global_step"] == best_step
    transformers.AutoModelForSequenceClassification.from_pretrained(
        out / f"checkpoint-{best_step}"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "extra"),
    [("sst2", OBSERVE), ("sst2", ("--mixed-precision",)), ("mrpc", ()),
     ("stsb", ()), ("mnli", ())],
)  # fmt: skip
def test_cli_writes_a_checkpoint_transformers_reproduces(
    task, extra, tiny_checkpoint, glue_dir, tmp_path
):
    results = run(task, tiny_checkpoint, glue_dir, tmp_path, *extra)
    assert keras.config.dtype_policy().name == "float32"  # nothing global set
    for name in ("config.json", "model.safetensors", "tokenizer.json",
                 "results.json", "predictions.tsv", "README.md",
                 "training_curves.png"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "results.json").read_text())
    check_observable(tmp_path, saved, extra)
    assert len(saved["train_loss_per_epoch"]) == 2
    assert all(np.isfinite(saved["train_loss_per_epoch"]))
    assert saved["train_examples_per_second"] > 0
    spec = glue.get_task(task)
    metric_keys = {k for k in results if k.startswith("eval_")}
    expected = {
        "sst2": {"eval_accuracy"},
        "mrpc": {"eval_accuracy", "eval_f1"},
        "stsb": {"eval_pearson", "eval_spearmanr"},
        "mnli": {"eval_accuracy", "eval_accuracy_mismatched"},
    }[task]
    assert metric_keys == expected

    # The dev predictions of the saved checkpoint, recomputed by PyTorch.
    split = spec.dev_splits[0]
    from tasks.glue_tasks import load_glue

    dev, _ = load_glue(spec, glue_dir, (split,))
    texts = [list(dev[split]["sentence1"])]
    if spec.is_pair:
        texts.append(list(dev[split]["sentence2"]))
    predicted, config = torch_predictions(str(tmp_path), texts, spec.is_regression)
    rows = (tmp_path / "predictions.tsv").read_text().splitlines()[1:]
    written = [row.split("\t")[1] for row in rows]
    if spec.is_regression:
        np.testing.assert_allclose([float(v) for v in written], predicted, atol=1e-4)
    else:
        assert written == [spec.label_names[i] for i in predicted]
        assert config.id2label == dict(enumerate(spec.label_names))
    if task == "mnli":
        assert (tmp_path / "predictions_dev_mismatched.tsv").is_file()


def test_cli_rejects_bad_input(tiny_checkpoint, glue_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run("sst3", tiny_checkpoint, glue_dir, tmp_path)
    assert "Unknown GLUE task" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="RTE"):
        run("rte", tiny_checkpoint, str(tmp_path), tmp_path / "out")


@pytest.mark.slow
def test_cli_num_labels_mismatch(tiny_checkpoint, glue_dir, tmp_path):
    # A 2-label SST-2 model fine-tuned further on 3-label MNLI.
    run("sst2", tiny_checkpoint, glue_dir, tmp_path / "sst2")
    with pytest.raises(bk.CheckpointError, match="classifier.weight"):
        run("mnli", str(tmp_path / "sst2"), glue_dir, tmp_path / "mnli")
    results = run(
        "mnli", str(tmp_path / "sst2"), glue_dir, tmp_path / "mnli",
        "--ignore-mismatched-sizes",
    )  # fmt: skip
    assert "eval_accuracy" in results
    assert os.path.isfile(tmp_path / "mnli" / "model.safetensors")


@pytest.mark.slow
def test_push_to_hub_uploads_the_output_directory_in_one_commit(
    tiny_checkpoint, glue_dir, tmp_path, monkeypatch
):
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    calls = []

    class RecordingApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, exist_ok=False, **kwargs):
            calls.append(("create_repo", repo_id))

        def upload_folder(
            self, repo_id, folder_path, commit_message, ignore_patterns=None
        ):
            # What huggingface_hub would upload: every file, patterns applied.
            files = [
                os.path.relpath(os.path.join(root, name), folder_path)
                for root, _, names in os.walk(folder_path)
                for name in names
            ]
            kept = filter_repo_objects(files, ignore_patterns=ignore_patterns)
            calls.append(("upload_folder", repo_id, sorted(kept)))
            return "https://huggingface.co/me/tiny-wnli/commit/0"

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    run("wnli", tiny_checkpoint, glue_dir, tmp_path, "--push-to-hub", "me/tiny-wnli")
    assert calls[0] == ("create_repo", "me/tiny-wnli")
    uploads = [call for call in calls if call[0] == "upload_folder"]
    assert len(uploads) == 1
    for name in ("config.json", "model.safetensors", "README.md", "results.json"):
        assert name in uploads[0][2]
    # The resumable backup exists until the upload is done, and stays local.
    assert not [name for name in uploads[0][2] if name.startswith("backup")]
    card = (tmp_path / "README.md").read_text()
    assert "library_name: bert_keras" in card and "glue" in card


@pytest.mark.slow
def test_hub_dataset_is_used_without_data_dir(tiny_checkpoint, tmp_path, monkeypatch):
    import datasets

    from tasks import glue_tasks

    requested = []

    def fake_load_dataset(path, name, split):
        requested.append((path, name, split))
        # The Hub's nyu-mll/glue column names for QNLI.
        return datasets.Dataset.from_dict(
            {
                "question": ["Who?", "Why?", "When?"],
                "sentence": ["Him.", "No idea.", "Now."],
                "label": [0, 1, 0],
                "idx": [0, 1, 2],
            }
        )

    monkeypatch.setattr(glue_tasks.datasets, "load_dataset", fake_load_dataset)
    results = glue.main(
        ["--task", "qnli", "--model", tiny_checkpoint, "--output-dir", str(tmp_path),
         "--epochs", "1", "--batch-size", "2", "--verbose", "0"]
    )  # fmt: skip
    assert requested == [
        ("nyu-mll/glue", "qnli", "train"),
        ("nyu-mll/glue", "qnli", "validation"),
    ]
    assert results["dev_examples"] == 3
