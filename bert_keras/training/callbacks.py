"""Training callbacks: checkpoints that survive a kill at any moment."""

import json
import logging
import os
import re
import shutil

import keras
import numpy as np

from bert_keras.errors import TrainingError
from bert_keras.keras_private import distribute_strategy
from bert_keras.keras_private import lora_variables
from bert_keras.keras_private import set_initial_epoch
from bert_keras.keras_private import weights_file_bytes
from bert_keras.training.distribute import is_chief
from bert_keras.training.distribute import worker_count

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^epoch-(\d{6})$")
_WEIGHTS = "model.weights.h5"
_METADATA = "training_metadata.json"
# LoRA layers' base kernels and factors, which the weights file cannot keep.
_LORA = "lora_variables.npz"


class ResumableCheckpoint(keras.callbacks.Callback):
    """Backs up model and optimizer every epoch; a new `fit` resumes there.

    Like `keras.callbacks.BackupAndRestore`, but a checkpoint is a directory
    written under a temporary name and renamed into place only when complete,
    with its epoch number inside it. A process killed at any moment, even
    while writing, leaves the previous checkpoints untouched and loadable;
    the weights and the epoch they belong to can never disagree. The newest
    checkpoint that loads is restored (a damaged one is skipped with a
    warning); the `keep` newest are kept. A backup that cannot be written (a
    full disk) raises an `OSError` that says so and names the previous
    backup, which stays intact: the weights file is made in memory and
    written with Python's I/O, never by h5py on disk (whose failed write ends
    the process with a segmentation fault).

    Safe with several workers (`MultiWorkerMirroredStrategy`): only the chief
    writes, renames and deletes in `backup_dir`; the other workers make the
    same weights file in memory and drop it (reading the variables may take
    part in collectives). Every worker restores the epoch the chief chose from
    `backup_dir`, which must be on storage all of them read; a worker that
    cannot read it stops them all with a `TrainingError`.

    A model with LoRA adapters (`bert_keras.enable_lora`) resumes with its
    frozen base kernels and its adapters exactly as they were; Keras' weights
    file alone would give the kernels with the adapters added in and the
    adapters at zero.

    Args:
        backup_dir: str, directory for the checkpoints (created if needed).
        keep: int, how many of the newest checkpoints to keep (at least 1).
        delete_on_end: bool, remove `backup_dir` when training completes.
            The last epoch of such a run is not backed up: its backup would
            be removed a moment later.

    Example:

    >>> model = BertForSequenceClassification(config)
    >>> model.compile()
    >>> history = model.fit(dataset.repeat(), epochs=2, steps_per_epoch=5,
    ...                     callbacks=[ResumableCheckpoint("out/backup")], verbose=0)
    """

    def __init__(self, backup_dir, keep=2, delete_on_end=False):
        super().__init__()
        if keep < 1:
            raise ValueError(f"`keep` must be at least 1. Received: keep={keep}")
        self.backup_dir = os.fspath(backup_dir)
        self.keep = keep
        self.delete_on_end = delete_on_end
        self.restored_epoch = 0
        self._strategy = None
        self._chief = True

    def checkpoints(self):
        """Complete checkpoints as `[(epoch, path)]`, newest first."""
        if not os.path.isdir(self.backup_dir):
            return []
        found = []
        for name in os.listdir(self.backup_dir):
            match = _CHECKPOINT.match(name)
            if match:
                found.append((int(match.group(1)), os.path.join(self.backup_dir, name)))
        return sorted(found, reverse=True)

    def on_train_begin(self, logs=None):
        model = self.model
        self._strategy = distribute_strategy(model)
        self._chief = is_chief(self._strategy)
        if self._chief:
            self._remove_partial_writes()
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        if self._strategy is None or worker_count(self._strategy) < 2:
            self._restore()
        else:
            self._restore_as_the_chief_does()

    def _restore(self):
        """Restores the newest checkpoint that loads; returns its epoch (or 0)."""
        model = self.model
        for epoch, path in self.checkpoints():
            try:
                self._load(epoch, path)
            except Exception as error:  # noqa: BLE001 - any damage: try older
                logger.warning(
                    "Checkpoint %s cannot be restored (%s); trying an older one.",
                    path,
                    error,
                )
                continue
            self.restored_epoch = epoch
            set_initial_epoch(model, epoch)
            logger.info("Resuming after epoch %d from %s", epoch, path)
            return epoch
        return 0

    def _load(self, epoch, path):
        with open(os.path.join(path, _METADATA), encoding="utf-8") as f:
            if json.load(f)["epoch"] != epoch:
                raise ValueError("its metadata names another epoch")
        self.model.load_weights(os.path.join(path, _WEIGHTS))
        variables = lora_variables(self.model)
        if variables:
            lora_file = os.path.join(path, _LORA)
            if not os.path.isfile(lora_file):
                raise ValueError(
                    "the model has LoRA adapters but the backup has none (it "
                    "was made without them)"
                )
            with np.load(lora_file) as stored:
                if set(stored.files) != set(variables):
                    raise ValueError("its LoRA layers are not this model's")
                for name, variable in variables.items():
                    variable.assign(stored[name])

    def _restore_as_the_chief_does(self):
        """Every worker restores the epoch the chief chose, or none trains.

        The choice is sent in a collective, which the chief reaches only after
        its last backup is complete: a worker never reads a half-written one.
        """
        chosen = self._everyone(self._restore() if self._chief else 0)
        epoch = max(chosen)
        failure = ""
        if not self._chief and epoch:
            path = os.path.join(self.backup_dir, f"epoch-{epoch:06d}")
            try:
                self._load(epoch, path)
                self.restored_epoch = epoch
                set_initial_epoch(self.model, epoch)
            except Exception as error:  # noqa: BLE001 - reported to all below
                failure = f"{type(error).__name__}: {error}"
                logger.error("Cannot read the chief's backup %s (%s)", path, failure)
        failed = [
            index for index, bad in enumerate(self._everyone(int(bool(failure)))) if bad
        ]
        if failed:
            raise TrainingError(
                f"The chief resumes after epoch {epoch} from {self.backup_dir}, but "
                f"worker(s) {failed} (in replica order) cannot read that backup"
                f"{' (' + failure + ')' if failure else ''}. Expected every worker "
                "to read the chief's backup directory: put it on storage that all "
                "workers share (a network file system or a bucket), with the same "
                "path on each."
            )

    def _everyone(self, value):
        """`value` of every replica, gathered in a collective."""
        import tensorflow as tf

        strategy = self._strategy
        gathered = strategy.gather(
            strategy.run(lambda: tf.constant([value], tf.int64)), axis=0
        )
        return np.asarray(gathered).tolist()

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if self.delete_on_end and done == (self.params or {}).get("epochs"):
            return  # training completes now and removes the backups
        # Every worker makes the file (reading variables may take part in
        # collectives); only the chief's is written.
        weights = weights_file_bytes(self.model)
        lora = _npz_bytes(lora_variables(self.model))
        if not self._chief:
            return
        final = os.path.join(self.backup_dir, f"epoch-{done:06d}")
        partial = os.path.join(self.backup_dir, f".partial-epoch-{done:06d}")
        try:
            os.makedirs(self.backup_dir, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
            os.makedirs(partial)
            _write(os.path.join(partial, _WEIGHTS), weights)
            if lora is not None:
                _write(os.path.join(partial, _LORA), lora)
            _write(
                os.path.join(partial, _METADATA),
                json.dumps({"epoch": done}).encode("utf-8"),
            )
        except OSError as error:
            shutil.rmtree(partial, ignore_errors=True)
            raise self._write_error(done, error, len(weights)) from error
        if os.path.isdir(final):  # a rerun of an epoch that was saved before
            shutil.rmtree(final)
        os.replace(partial, final)
        _fsync(self.backup_dir)
        for _, path in self.checkpoints()[self.keep :]:
            shutil.rmtree(path, ignore_errors=True)

    def _write_error(self, epoch, error, size):
        previous = [(e, path) for e, path in self.checkpoints() if e != epoch]
        kept = (
            f"The previous backup is intact: {previous[0][1]} (epoch "
            f"{previous[0][0]}); a rerun resumes from it."
            if previous
            else "There is no earlier backup: a rerun starts from the first epoch."
        )
        return OSError(
            error.errno,
            f"The backup of epoch {epoch} could not be written to "
            f"{self.backup_dir} ({error.strerror or error}: is the disk full?). "
            f"Expected room for about {size / 2**20:.1f} MiB of weights and "
            f"optimizer state there. {kept} Free some space (or put the "
            "backups on a larger disk) and run again to resume.",
        )

    def on_train_end(self, logs=None):
        if self.delete_on_end and self._chief:
            shutil.rmtree(self.backup_dir, ignore_errors=True)

    def _remove_partial_writes(self):
        if os.path.isdir(self.backup_dir):
            for name in os.listdir(self.backup_dir):
                if name.startswith(".partial-"):
                    shutil.rmtree(
                        os.path.join(self.backup_dir, name), ignore_errors=True
                    )


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training with a `TrainingError` when the loss is NaN or infinite.

    Unlike `keras.callbacks.TerminateOnNaN`, which ends `fit` quietly (and
    lets the caller go on to save a broken model), this raises: nothing after
    the failing step is saved, and the checkpoints written before it (by
    `ResumableCheckpoint`) stay as they were, ready for a resume.

    Example:

    >>> model = BertForSequenceClassification(config)
    >>> model.compile()
    >>> history = model.fit(dataset, epochs=3, callbacks=[StopOnNonFiniteLoss()],
    ...                     verbose=0)
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or np.isfinite(float(loss)):
            return
        self.model.stop_training = True
        step = int(self.model.optimizer.iterations.numpy())
        raise TrainingError(
            f"The training loss became {float(loss)} at optimizer step {step} "
            f"(batch {batch + 1} of the epoch); training was stopped and nothing "
            "after the last checkpoint was saved. Expected a finite loss. Lower "
            "the learning rate or the warmup, check this batch's inputs and "
            "labels, or train in float32; checkpoints written before this step "
            "are intact."
        )


def _npz_bytes(variables):
    """The variables as an in-memory `.npz` (None when there are none)."""
    if not variables:
        return None
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in variables.items()})
    return buffer.getvalue()


def _write(path, data):
    """Writes `data` to `path` and makes it durable (fsync)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path):
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) * os.path.isdir(path)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
