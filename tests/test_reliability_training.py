"""Training faults (issue 7): a NaN stops the run, a kill loses nothing saved.

Case 11: a NaN injected into the loss stops `fit` with a `TrainingError`; the
last good checkpoint is untouched and a new `fit` resumes from it.
Case 12: `tasks.glue` killed (SIGKILL) at seeded random steps, ten times in a
row, then rerun: it resumes each time and ends with the planned steps and a
checkpoint that loads. (`tasks.pretrain`'s kill tests are in
test_pretrain_cli.py.)
"""

import hashlib
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import transformers
from conftest import random_inputs
from conftest import tiny_config

import bert_keras as bk
from bert_keras.training.callbacks import ResumableCheckpoint
from bert_keras.training.callbacks import StopOnNonFiniteLoss
from tests.test_glue_cli import write_glue_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS_PER_EPOCH = 2


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    return write_glue_dir(tmp_path_factory.mktemp("glue"))


def poisoned_data(config, poisoned_step):
    """A repeating dataset whose `poisoned_step`-th batch has a NaN weight."""
    inputs = random_inputs(config, batch=4)
    labels = np.array([0, 1, 2, 1])
    weights = np.ones(4, np.float32)

    def batches():
        step = 0
        while True:
            for start in (0, 2):
                step += 1
                w = weights[start : start + 2].copy()
                if step == poisoned_step:
                    w[:] = np.nan
                yield (
                    {k: v[start : start + 2] for k, v in inputs.items()},
                    labels[start : start + 2],
                    w,
                )

    spec = (
        {k: tf.TensorSpec((None, v.shape[1]), tf.int64) for k, v in inputs.items()},
        tf.TensorSpec((None,), tf.int64),
        tf.TensorSpec((None,), tf.float32),
    )
    return tf.data.Dataset.from_generator(batches, output_signature=spec)


def digest(directory):
    sha = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        sha.update(name.encode())
        with open(os.path.join(directory, name), "rb") as handle:
            sha.update(handle.read())
    return sha.hexdigest()


@pytest.mark.slow
def test_nan_loss_stops_training_and_the_last_checkpoint_resumes(tmp_path):
    config = tiny_config("BertForSequenceClassification")
    model = bk.BertForSequenceClassification(config)
    model.compile()
    backup = tmp_path / "backup"

    snapshots = {}

    def remember(epoch, logs):
        # Runs after ResumableCheckpoint wrote this epoch's checkpoint.
        snapshots[epoch + 1] = [w.numpy().copy() for w in model.trainable_weights]
        snapshots[f"digest{epoch + 1}"] = digest(backup / f"epoch-{epoch + 1:06d}")

    # The NaN comes in the 7th step: epoch 4 of 2-step epochs, its first batch.
    with pytest.raises(bk.TrainingError, match=r"nan at optimizer step 7.*intact"):
        model.fit(
            poisoned_data(config, poisoned_step=7),
            epochs=5,
            steps_per_epoch=STEPS_PER_EPOCH,
            callbacks=[
                StopOnNonFiniteLoss(),
                ResumableCheckpoint(backup, keep=2),
                keras.callbacks.LambdaCallback(on_epoch_end=remember),
            ],
            verbose=0,
        )
    # Epochs 1-3 were saved; nothing of epoch 4 was.
    names = sorted(p.name for p in backup.iterdir())
    assert names == ["epoch-000002", "epoch-000003"], names
    assert digest(backup / "epoch-000003") == snapshots["digest3"]  # untouched

    # The last good checkpoint holds the weights of the end of epoch 3.
    restored = bk.BertForSequenceClassification(config)
    restored.compile()
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(backup / "epoch-000003" / "model.weights.h5")
    for before, after in zip(snapshots[3], restored.trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())
        assert np.isfinite(before).all()
    assert int(restored.optimizer.iterations.numpy()) == 6

    # A new run resumes there and finishes the planned steps.
    fresh = bk.BertForSequenceClassification(config)
    fresh.compile()
    history = fresh.fit(
        poisoned_data(config, poisoned_step=-1),
        epochs=5,
        steps_per_epoch=STEPS_PER_EPOCH,
        callbacks=[StopOnNonFiniteLoss(), ResumableCheckpoint(backup, keep=2)],
        verbose=0,
    )
    assert int(fresh.optimizer.iterations.numpy()) == 10
    assert len(history.history["loss"]) == 2  # epochs 4 and 5 only
    assert all(np.isfinite(history.history["loss"]))
    assert sorted(p.name for p in backup.iterdir()) == ["epoch-000004", "epoch-000005"]


def test_non_finite_loss_message_and_no_error_on_finite_losses():
    callback = StopOnNonFiniteLoss()
    model = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification")
    )
    model.compile()
    model.optimizer.build(model.trainable_variables)
    callback.set_model(model)
    callback.on_train_batch_end(0, {"loss": 0.7})
    callback.on_train_batch_end(1, {})
    with pytest.raises(bk.TrainingError, match="inf at optimizer step 0"):
        callback.on_train_batch_end(2, {"loss": float("inf")})
    assert isinstance(bk.TrainingError("x"), ValueError)


def glue_command(checkpoint, data_dir, out, *extra):
    return [
        "--task", "sst2", "--model", checkpoint, "--data-dir", data_dir,
        "--output-dir", str(out), "--epochs", "4", "--batch-size", "4",
        "--max-seq-length", "32", "--verbose", "0", *extra,
    ]  # fmt: skip


KILL_AT_STEP = """
import os, signal, sys
import keras
step = int(sys.argv[1])
class Kill(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= step:
            os.kill(os.getpid(), signal.SIGKILL)
original = keras.Model.fit
def fit(self, *args, callbacks=None, **kwargs):
    return original(self, *args, callbacks=[*(callbacks or []), Kill()], **kwargs)
keras.Model.fit = fit
from tasks import glue
glue.main(sys.argv[2:])
"""


@pytest.mark.slow
def test_glue_killed_ten_times_resumes_and_finishes(
    tiny_checkpoint, glue_dir, tmp_path
):
    from tasks import glue

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    reference = glue.main(glue_command(tiny_checkpoint, glue_dir, tmp_path / "ref"))
    total = reference["planned_steps"]
    per_epoch = total // 4
    assert reference["steps"] == total and total >= 8
    assert not (tmp_path / "ref" / "backup").exists()  # removed when done

    out = tmp_path / "run"
    backup = out / "backup"
    rng = np.random.default_rng(20241129)
    done_epochs = 0
    for trial in range(10):
        kill_at = int(rng.integers(done_epochs * per_epoch + 1, total))
        killed = subprocess.run(
            [sys.executable, "-c", KILL_AT_STEP, str(kill_at),
             *glue_command(tiny_checkpoint, glue_dir, out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, (trial, killed.stderr[-3000:])
        assert not (out / "results.json").exists()
        checkpoints = sorted(p.name for p in backup.glob("epoch-*"))
        assert not list(backup.glob(".partial-*"))
        # Every epoch finished before the kill step is saved, none after it.
        done_epochs = kill_at // per_epoch
        if kill_at % per_epoch == 0:
            done_epochs -= 1  # killed at the last batch, before its backup
        expected = [f"epoch-{done_epochs:06d}"] if done_epochs else []
        assert checkpoints == expected, (trial, kill_at, checkpoints)
        history = (
            json.loads((backup / "history.json").read_text()) if done_epochs else []
        )
        assert [row["epoch"] for row in history][:done_epochs] == list(
            range(1, done_epochs + 1)
        )

    command = glue_command(tiny_checkpoint, glue_dir, out)
    final = subprocess.run(
        [sys.executable, "-m", "tasks.glue", *command],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == total == results["planned_steps"]
    assert results["resumed_after_epoch"] == done_epochs
    assert [row["epoch"] for row in results["epochs"]] == [1, 2, 3, 4]
    assert not backup.exists()
    bk.BertForSequenceClassification.from_pretrained(out)
    transformers.BertForSequenceClassification.from_pretrained(out)


def test_glue_rerun_with_other_settings_is_refused(tiny_checkpoint, glue_dir, tmp_path):
    from tasks import glue

    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "run.json").write_text(json.dumps({"learning_rate": 1.0}))
    with pytest.raises(SystemExit, match="other settings.*learning_rate.*delete"):
        glue.main(glue_command(tiny_checkpoint, glue_dir, out))


def test_glue_with_a_diverging_learning_rate_stops_and_saves_nothing(
    tiny_checkpoint,
    glue_dir,
    tmp_path,
):
    from tasks import glue

    with pytest.raises(bk.TrainingError, match="training loss became"):
        glue.main(
            glue_command(tiny_checkpoint, glue_dir, tmp_path, "--learning-rate", "1e12")
        )
    assert not (tmp_path / "model.safetensors").exists()
    assert not (tmp_path / "results.json").exists()


def _interrupt_after(monkeypatch, owner, name, when=lambda *a, **k: True):
    original = getattr(owner, name)

    def interrupted(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            raise KeyboardInterrupt  # what SIGINT raises in the main thread
        return result

    monkeypatch.setattr(owner, name, interrupted)


PHASES = {
    "fit returned": lambda m: _interrupt_after(
        m, bk.BertForSequenceClassification, "fit"
    ),
    "checkpoint saved": lambda m: _interrupt_after(
        m, bk.BertForSequenceClassification, "save_pretrained"
    ),
    "results written": lambda m: _interrupt_after(
        m,
        __import__("tasks.reporting").reporting,
        "write_json",
        lambda path, *a, **k: str(path).endswith("results.json"),
    ),
    "model card written": lambda m: _interrupt_after(
        m, __import__("huggingface_hub").ModelCard, "save"
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(PHASES))
def test_glue_interrupted_after_training_loses_nothing(
    phase, tiny_checkpoint, glue_dir, tmp_path, monkeypatch
):
    """Issue 21, item 3: the backup goes only when all it protects is written."""
    from tasks import glue

    command = glue_command(tiny_checkpoint, glue_dir, tmp_path)
    command[command.index("--epochs") + 1] = "2"
    with monkeypatch.context() as patch:
        PHASES[phase](patch)
        with pytest.raises(KeyboardInterrupt):
            glue.main(command)
    assert (tmp_path / "backup" / "epoch-000002").is_dir(), phase

    results = glue.main(command)
    assert results["resumed_after_epoch"] == 2  # nothing retrained
    assert results["steps"] == results["planned_steps"]
    assert [row["epoch"] for row in results["epochs"]] == [1, 2]
    assert (
        json.loads((tmp_path / "results.json").read_text())["steps"]
        == (results["planned_steps"])
    )
    assert not (tmp_path / "backup").exists()
    bk.BertForSequenceClassification.from_pretrained(tmp_path)
