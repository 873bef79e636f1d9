"""Fine-tuning runs that survive a kill: rerunning the command resumes them.

The task CLIs back up model and optimizer after every epoch in `OUT/backup`
(`bert_keras.training.callbacks.ResumableCheckpoint`, written atomically). A rerun of
the same command restores the newest backup, keeps the finished epochs'
history and trains only the epochs left. The backup is removed only when
everything it protects is written (`finished`): a run interrupted after
training, while saving or scoring, resumes after its last epoch and redoes
only that. A rerun with other settings, other data or another starting
checkpoint is refused rather than mixed in: the backup records the flags and
a fingerprint of every input file (`fingerprints`).
Across workers only the chief writes there; every worker reads it.
"""

import hashlib
import json
import os

import keras

from . import reporting


def resumable(backup_dir, settings, history, strategy=None, inputs=None, step_log=None):
    """Returns the callbacks that make `fit` resumable in `backup_dir`.

    Args:
        backup_dir: str, where the backups live (removed when `fit` ends).
        settings: dict, the run's flags; a backup made with other flags is
            not resumed.
        history: `reporting.EpochHistory` of the run; its rows of finished
            epochs are saved with each backup and restored with it.
        strategy: the `tf.distribute.Strategy` of the run (None: default).
        inputs: dict, a fingerprint of each input (data files, starting
            checkpoint) by the name a message shows (`fingerprints`); a backup
            made from other inputs is not resumed.
        step_log: `tasks.observe.StepLogger` or None; its rows (step logs
            and evaluations) up to the end of each finished epoch are saved
            with each backup and restored with it.

    Returns:
        `(callbacks, checkpoint)`: put `callbacks` after the ones that fill
        the epoch logs; `checkpoint.restored_epoch` is the epoch resumed after.
    """
    from bert_keras.training.callbacks import ResumableCheckpoint
    from bert_keras.training.distribute import is_chief

    chief = is_chief(strategy)

    run_file = os.path.join(backup_dir, "run.json")
    history_file = os.path.join(backup_dir, "history.json")
    step_log_file = os.path.join(backup_dir, "log_history.json")
    run = json.loads(
        json.dumps({"settings": settings, "inputs": inputs or {}}, default=str)
    )
    if os.path.isfile(run_file):
        with open(run_file, encoding="utf-8") as handle:
            saved = json.load(handle)
        if "settings" not in saved:  # a backup of an earlier version: flags only
            saved = {"settings": saved, "inputs": {}}
        refuse_other_run(backup_dir, saved, run)

    checkpoint = ResumableCheckpoint(backup_dir, keep=1)

    class SaveHistory(keras.callbacks.Callback):
        """Writes the history before the checkpoint of the same epoch."""

        restored = False

        def on_train_begin(self, logs=None):
            # Recorded when training starts: a run that fails before (a
            # model that does not load) leaves nothing that binds a rerun.
            if chief and not os.path.isfile(run_file):
                os.makedirs(backup_dir, exist_ok=True)
                reporting.write_json(run_file, run)

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
            if step_log is not None and os.path.isfile(step_log_file):
                with open(step_log_file, encoding="utf-8") as handle:
                    steps = json.load(handle)
                step_log.restore(steps, done)

        def on_epoch_end(self, epoch, logs=None):
            if chief:
                reporting.write_json(history_file, history.epochs)
                if step_log is not None:
                    reporting.write_json(step_log_file, step_log.log_history)

    return [SaveHistory(), checkpoint], checkpoint


def finished(backup_dir, strategy=None):
    """Removes the backup once every output of the run is written (chief only)."""
    import shutil

    from bert_keras.training.distribute import is_chief

    if is_chief(strategy):
        shutil.rmtree(backup_dir, ignore_errors=True)


def refuse_other_run(backup_dir, saved, run):
    """Raises `SystemExit` naming each flag and input that differs from `saved`."""
    problems = []
    for part, what in (("settings", "other settings"), ("inputs", "other inputs")):
        before, now = saved.get(part, {}), run[part]
        changed = sorted(
            k for k in set(before) | set(now) if before.get(k) != now.get(k)
        )
        if changed:
            problems.append(
                f"{what} ("
                + "; ".join(
                    f"{key}: {_shown(before, key)} there, {_shown(now, key)} now"
                    for key in changed
                )
                + ")"
            )
    if not problems:
        return
    raise SystemExit(
        f"{backup_dir} holds an interrupted run with {' and '.join(problems)}. "
        "Expected a rerun of the same command on the same data and starting "
        "checkpoint: a resumed run continues that run's schedule. Rerun the same "
        "command with its data and checkpoint as they were to resume it, or "
        f"delete {backup_dir} (or pass --overwrite-output-dir, or use another "
        "--output-dir) to start over."
    )


def _shown(values, key):
    return repr(values[key]) if key in values else "absent"


def fingerprints(flag, paths, root=None):
    """`{"FLAG name": "N bytes, sha256 ..."}` for each file in `paths`.

    The names are relative to `root` (default: each file's own name), so a
    message says which file changed.
    """
    found = {}
    for path in paths:
        name = os.path.relpath(path, root) if root else os.path.basename(path)
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                sha.update(chunk)
        found[f"{flag} {name}"] = (
            f"{os.path.getsize(path)} bytes, sha256 {sha.hexdigest()[:16]}"
        )
    return found


def checkpoint_fingerprints(model, flag="--model"):
    """Fingerprints of the starting checkpoint (--model).

    A directory: each of its files but model cards and hidden (temporary)
    files. A Hub id: the revision its cached files come from (none when it
    is not cached).
    """
    if os.path.isdir(model):
        names = sorted(
            name
            for name in os.listdir(model)
            if not name.startswith(".")
            and not name.endswith(".md")
            and os.path.isfile(os.path.join(model, name))
        )
        return fingerprints(flag, [os.path.join(model, name) for name in names])
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model, "config.json")
    if isinstance(cached, str):  # .../snapshots/<commit>/config.json
        return {f"{flag} {model}": "Hub revision " + _parent_name(cached)}
    return {}


def dataset_fingerprint(label, dataset):
    """`{label: fingerprint}` of a `datasets.Dataset` (e.g. from the Hub)."""
    return {label: getattr(dataset, "_fingerprint", None)}


def _parent_name(path):
    return os.path.basename(os.path.dirname(path))
