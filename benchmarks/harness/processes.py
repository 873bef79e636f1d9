"""Child processes pinned to a thread count, their output kept in a log."""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

from harness import REPO_ROOT
from harness import results


def pinned_environment(threads=None):
    """This process's environment with every framework held to `threads`.

    OpenMP (PyTorch, oneDNN) and TensorFlow's intra-op pool are pinned so that
    systems compared side by side use the same cores; `None` leaves them free.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        env["TF_NUM_INTRAOP_THREADS"] = str(threads)
    return env


def run_logged(command, log_path, name, threads=None):
    """Runs `command` from the repository root, output to `log_path`.

    Args:
        command: list of str, the argv of the child.
        log_path: str, file that receives the child's stdout and stderr.
        name: str, what the run is, for the error message.
        threads: int or None, see `pinned_environment`.

    Returns:
        float, the child's wall time in seconds (start-up included).

    Example:

    >>> run_logged([sys.executable, "-c", "pass"], "/tmp/x.log", "noop")
    """
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=pinned_environment(threads),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - start
    if process.returncode != 0:
        with open(log_path, encoding="utf-8") as log:
            tail = log.read()[-3000:]
        raise RuntimeError(
            f"{name} failed (exit {process.returncode}); log {log_path}:\n{tail}"
        )
    return wall


def in_turn(systems, repeat):
    """`systems` rotated by `repeat`, so each goes first in turn and drift in
    machine load is shared."""
    turn = repeat % len(systems)
    return tuple(systems[turn:]) + tuple(systems[:turn])


@contextlib.contextmanager
def scratch_directory(work_dir, prefix):
    """Yields `work_dir` (created if missing, kept), or a temporary directory
    removed on exit when `work_dir` is None."""
    path = work_dir or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(path, exist_ok=True)
    try:
        yield path
    finally:
        if work_dir is None:
            shutil.rmtree(path, ignore_errors=True)


def versus_command(system, task_module, torch_script, argv, args):
    """One side of a bert_keras-vs-PyTorch run: the task CLI (`-m task_module`)
    or the torch reference script, given the same flags and precision."""
    if args.precision == "bf16":
        argv = [*argv, "--mixed-precision"]
    if system == "bert_keras":
        return [sys.executable, "-m", task_module, *argv]
    return [sys.executable, torch_script, *argv, "--num-threads", str(args.threads)]


def fine_tune(command, output_dir, name, threads, reuse=False):
    """Runs a fine-tuning child that writes `output_dir/results.json`.

    Args:
        command: list of str, the child's argv.
        output_dir: str, the child's `--output-dir`; its log goes beside it.
        name: str, what the run is, for the error message.
        threads: int, see `pinned_environment`.
        reuse: bool, take a `results.json` already there instead of running.

    Returns:
        (results, wall seconds or None when reused, log path); the run's
        weights are deleted (see `results.read_run_results`).
    """
    log_path = f"{output_dir}.log"
    wall = None
    if not (reuse and os.path.isfile(os.path.join(output_dir, "results.json"))):
        wall = run_logged(command, log_path, name, threads)
    return results.read_run_results(output_dir, drop_weights=True), wall, log_path
