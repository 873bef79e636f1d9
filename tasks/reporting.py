"""Outputs every task run writes: results.json, curves, model card, Hub upload."""

import json
import math
import os
import platform

import keras


def framework_versions():
    import datasets
    import tensorflow as tf
    import tokenizers
    import transformers

    import bert_keras

    return {
        "bert_keras": bert_keras.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "datasets": datasets.__version__,
        "python": platform.python_version(),
    }


def shareable(value):
    """`value` with every absolute path cut to its last part (dicts, lists too).

    Results, model cards and plot titles may be shared or uploaded: they keep
    paths as the user gave them when relative, and never a local absolute one.
    """
    if isinstance(value, dict):
        return {key: shareable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [shareable(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        return os.path.basename(os.path.normpath(value))
    return value


def write_json(path, payload):
    """Writes `payload` to `path` as JSON (atomically: a temp file, then a rename).

    JSON has no NaN or infinity (Python would write the bare words `NaN` and
    `Infinity`, which other readers refuse), and a non-finite metric is a
    failed computation, not a score: either one is a `ValueError` naming its
    key, and nothing is written.
    """
    bad = _non_finite(payload)
    if bad:
        raise ValueError(
            f"{path}: refusing to write the non-finite value(s) "
            + ", ".join(f"{key} = {value}" for key, value in bad[:5])
            + ("..." if len(bad) > 5 else "")
            + ". Expected finite numbers: JSON has no NaN or infinity. A NaN "
            "score means it could not be computed (e.g. a correlation of "
            "constant predictions or references, such as dev examples that all "
            "have one score); check the data and the run's settings."
        )
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(
            payload, handle, indent=2, sort_keys=True, default=_plain, allow_nan=False
        )
        handle.write("\n")
    os.replace(tmp, path)


def _non_finite(value, key=""):
    """`[(key path, value)]` of every NaN or infinite number inside `value`."""
    if isinstance(value, dict):
        return [
            found
            for name, item in value.items()
            for found in _non_finite(item, f"{key}.{name}" if key else str(name))
        ]
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else value
        if not isinstance(items, list):  # a numpy scalar
            return _non_finite(items, key)
        return [
            found
            for index, item in enumerate(items)
            for found in _non_finite(item, f"{key}[{index}]")
        ]
    if isinstance(value, float) and not math.isfinite(value):
        return [(key, value)]
    return []


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


class EpochHistory(keras.callbacks.Callback):
    """Records every epoch's logs (loss, metrics, task scores) in order."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(
            {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        )


def plot_curves(path, epochs, title):
    """Draws training curves: loss, metrics (and learning rate) against time.

    `epochs` is a list of log rows. Rows with a "step" (a `StepLogger`'s
    `log_history`: one per logging step or evaluation) are drawn against
    optimizer steps, in three panels: train and eval loss, eval metrics,
    learning rate. Rows without one (`EpochHistory.epochs`) are drawn per
    epoch: loss left, every other logged value right.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_step = bool(epochs) and all("step" in row for row in epochs)
    x_key = "step" if by_step else "epoch"
    skipped = {"epoch", "step", *SUMMARY_KEYS}
    keys = sorted({key for row in epochs for key in row if key not in skipped})
    panels = ("loss", "metric", "learning rate") if by_step else ("loss", "metric")
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for key in keys:
        points = [(row[x_key], row[key]) for row in epochs if key in row]
        if "loss" in key:
            axis = axes[0]
        elif key == "learning_rate" and by_step:
            axis = axes[2]
        else:
            axis = axes[1]
        axis.plot(*zip(*points), marker="o", markersize=3, label=key)
    for axis, label in zip(axes, panels):
        axis.set_xlabel("optimizer step" if by_step else "epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# Log keys that are timings or run summaries, not curves.
SUMMARY_KEYS = (
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
    "train_runtime",
    "train_loss",
    "train_samples_per_second",
    "train_steps_per_second",
)


def push_directory(directory, repo_id, token=None, commit_message="Upload model"):
    """Uploads a finished output directory to the Hub in one commit."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=directory,
        commit_message=commit_message,
        # The run's resumable backup (optimizer state included) and step
        # checkpoints stay local (transformers' Trainer leaves them out too).
        ignore_patterns=["backup/*", "checkpoint-*"],
    )
