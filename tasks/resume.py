"""Fine-tuning runs that survive a kill: rerunning the command resumes them.

The task CLIs back up model and optimizer after every epoch in `OUT/backup`
(`bert_keras.training.callbacks.ResumableCheckpoint`, written atomically). A rerun of
the same command restores the newest backup, keeps the finished epochs'
history and trains only the epochs left. The backup is removed only when
everything it protects is written (`finished`): a run interrupted after
training, while saving or scoring, resumes after its last epoch and redoes
only that. A rerun with other settings is refused rather than mixed in.
Across workers only the chief writes there; every worker reads it.
"""

import json
import os

import keras

from . import reporting


def resumable(backup_dir, settings, history, strategy=None):
    """Returns the callbacks that make `fit` resumable in `backup_dir`.

    Args:
        backup_dir: str, where the backups live (removed when `fit` ends).
        settings: dict, everything that defines the run (flags, model, data);
            a backup made with other settings is not resumed.
        history: `reporting.EpochHistory` of the run; its rows of finished
            epochs are saved with each backup and restored with it.
        strategy: the `tf.distribute.Strategy` of the run (None: default).

    Returns:
        `(callbacks, checkpoint)`: put `callbacks` after the ones that fill
        the epoch logs; `checkpoint.restored_epoch` is the epoch resumed after.
    """
    from bert_keras.training.callbacks import ResumableCheckpoint
    from bert_keras.training.distribute import is_chief

    chief = is_chief(strategy)

    run_file = os.path.join(backup_dir, "run.json")
    history_file = os.path.join(backup_dir, "history.json")
    settings = json.loads(json.dumps(settings, default=str))
    if os.path.isfile(run_file):
        with open(run_file, encoding="utf-8") as handle:
            saved = json.load(handle)
        changed = sorted(
            key
            for key in set(saved) | set(settings)
            if saved.get(key) != settings.get(key)
        )
        if changed:
            raise SystemExit(
                f"{backup_dir} holds an interrupted run with other settings "
                f"({', '.join(changed)}: {[saved.get(k) for k in changed]} there, "
                f"{[settings.get(k) for k in changed]} now). Rerun the same command "
                f"to resume it, or delete {backup_dir} to start over."
            )
    elif chief:
        os.makedirs(backup_dir, exist_ok=True)
        reporting.write_json(run_file, settings)

    checkpoint = ResumableCheckpoint(backup_dir, keep=1)

    class SaveHistory(keras.callbacks.Callback):
        """Writes the history before the checkpoint of the same epoch."""

        restored = False

        def on_epoch_begin(self, epoch, logs=None):
            self.restore()

        def on_train_end(self, logs=None):
            self.restore()  # a rerun after the last epoch trains none

        def restore(self):
            if self.restored:
                return
            self.restored = True
            rows = []
            if os.path.isfile(history_file):
                with open(history_file, encoding="utf-8") as handle:
                    rows = json.load(handle)
            done = checkpoint.restored_epoch
            history.epochs = [row for row in rows if row["epoch"] <= done]

        def on_epoch_end(self, epoch, logs=None):
            if chief:
                reporting.write_json(history_file, history.epochs)

    return [SaveHistory(), checkpoint], checkpoint


def finished(backup_dir, strategy=None):
    """Removes the backup once every output of the run is written (chief only)."""
    import shutil

    from bert_keras.training.distribute import is_chief

    if is_chief(strategy):
        shutil.rmtree(backup_dir, ignore_errors=True)
