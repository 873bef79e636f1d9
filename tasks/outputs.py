"""Each task CLI owns its --output-dir: no file of another run is kept there.

A file left by an earlier, different run would sit next to the new model (an
old `special_tokens_map.json` changes how the saved tokenizer loads) and
`--push-to-hub` would upload it. So a run starts only in a directory that is
new, empty, or the state of an interrupted run of the same command (its
backup, which the run then checks: `tasks.resume`), holding nothing but what
the command itself writes. `--overwrite-output-dir` removes exactly those
files first and still refuses anything else. Only the chief checks: the other
workers never write there.
"""

import fnmatch
import os
import shutil

from bert_keras.checkpoints.writing import TOKENIZER_FILES

# What every task CLI writes: the checkpoint (`save_pretrained`, shards,
# tokenizer files and its save's temporary files, which start with "."),
# results, curves and model card.
COMMON_OUTPUTS = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    *sorted(TOKENIZER_FILES),
    "results.json",
    "results.json.tmp",
    # transformers' result files (tasks.observe.write_trainer_files).
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "trainer_state.json",
    "*_results.json.tmp",
    "trainer_state.json.tmp",
    "training_curves.png",
    "README.md",
    ".*",
)

# Directories every task CLI may write: TensorBoard logs and step checkpoints
# (tasks.observe), the LoRA adapter (tasks.lora_cli).
COMMON_OUTPUT_DIRS = ("runs", "checkpoint-*", "adapter")

# Per command: `(files it writes besides COMMON_OUTPUTS, its state directory)`.
# The state directory holds an interrupted run that a rerun resumes.
COMMANDS = {
    "tasks.glue": (("predictions.tsv", "predictions_*.tsv"), "backup"),
    "tasks.squad": (
        ("predictions.json", "nbest_predictions.json", "null_odds.json"),
        "backup",
    ),
    "tasks.pretrain": ((), "work"),
}


def claim_output_dir(path, command, overwrite=False):
    """Refuses an --output-dir holding files this run must not keep or upload.

    Accepted: a missing or empty directory, or one holding only the
    `command`'s own state directory (an interrupted run to resume) and its own
    outputs. With `overwrite`, the command's own files and state are removed
    first (a fresh start); files it never writes are refused either way, never
    deleted.

    Args:
        path: str, the --output-dir.
        command: str, a key of `COMMANDS` (e.g. "tasks.glue").
        overwrite: bool, the --overwrite-output-dir flag.

    Raises:
        SystemExit: naming the directory, the files found and the fix.
    """
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise SystemExit(
                f"--output-dir {path} is a file. Expected a directory (new or "
                "empty). Give another --output-dir."
            )
        return
    outputs, state = COMMANDS[command]
    patterns = (*COMMON_OUTPUTS, *outputs)
    names = sorted(os.listdir(path))
    own = [
        name
        for name in names
        if os.path.isfile(os.path.join(path, name))
        and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
        or os.path.isdir(os.path.join(path, name))
        and any(fnmatch.fnmatchcase(name, pattern) for pattern in COMMON_OUTPUT_DIRS)
    ]
    resumable = state in names and os.path.isdir(os.path.join(path, state))
    foreign = [
        name for name in names if name not in own and not (name == state and resumable)
    ]
    if foreign:
        raise SystemExit(
            f"--output-dir {path} holds files that {command} does not write: "
            f"{_listing(foreign)}. Expected a new or empty directory, or the one "
            f"of an interrupted run of {command} to resume: the new model must "
            "not sit beside (or be uploaded with) another run's files. Give "
            "another --output-dir, or move those files out."
        )
    if overwrite:
        for name in own:
            if os.path.isdir(os.path.join(path, name)):
                shutil.rmtree(os.path.join(path, name))
            else:
                os.remove(os.path.join(path, name))
        if resumable:
            shutil.rmtree(os.path.join(path, state))
        return
    if own and not resumable:
        raise SystemExit(
            f"--output-dir {path} holds the outputs of an earlier {command} run "
            f"({_listing(own)}) and no interrupted run to resume ({state}/). "
            "Expected a new or empty directory: files of another run would stay "
            "beside the new model. Give another --output-dir, or pass "
            "--overwrite-output-dir to remove those outputs first."
        )


def _listing(names, limit=8):
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
