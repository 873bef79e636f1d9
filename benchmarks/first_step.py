"""Time to the first training step of `make demo`, and where it goes.

    python benchmarks/first_step.py [--repeats 3] [--baseline-tree DIR]
        [--models minilm base] [--output first_step.json] [--work-dir DIR]

Each run is a fresh `python -m tasks.demo` process (the demo's own flags:
SST-2, 20,000 sentences, batch 32, mixed bfloat16) from the spawn to the end
of training step 1, split at three marks: `import` (tasks.demo and what it
imports: TensorFlow, Keras, bert_keras), `ready` (`fit` called: tokenizer,
checkpoint and `tf.data` pipeline built) and `first_step` (the step traced,
optimized and run). The run stops there. `minilm` is the demo's
all-MiniLM-L6-v2; `base` a BERT-base-shaped checkpoint of random weights with
MiniLM's tokenizer (written once to the work dir), passed as `--model`.

With `--baseline-tree DIR` (a checkout of an older commit, e.g. `git worktree
add /tmp/before <commit>`) the two trees take turns, the first switching every
repeat, so both are measured in one sitting; the table gives the medians.
`--pythons NAME=PATH ...` runs every tree under each interpreter (e.g. the
test venv, which has PyTorch, and `make demo`'s `.venv-demo`, which has not:
transformers imports PyTorch whenever it is installed); results name them.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from harness import REPO_ROOT
from harness import flags
from harness import results

MARKS = ("import", "ready", "first_step")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--models", nargs="+", choices=("minilm", "base"), default=["minilm", "base"]
    )
    parser.add_argument("--baseline-tree", default=None)
    parser.add_argument(
        "--pythons",
        nargs="+",
        default=None,
        metavar="NAME=PATH",
        help="interpreters to run the demo under (default: this one)",
    )
    parser.add_argument("--output", default="first_step.json")
    flags.add_work_dir(parser)
    # Internal: one measured process.
    parser.add_argument("--worker-tree", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--spawned-at", type=float, default=None, help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def worker(args):
    """Runs the demo in this process and exits at the end of step 1."""
    marks = {}

    def mark(name):
        marks[name] = time.time() - args.spawned_at

    sys.path.insert(0, args.worker_tree)
    import tasks.demo as demo

    mark("import")
    import keras

    import bert_keras

    here = os.path.realpath(bert_keras.__file__)
    if not here.startswith(os.path.realpath(args.worker_tree) + os.sep):
        raise RuntimeError(f"bert_keras came from {here}, not {args.worker_tree}")

    fit = keras.Model.fit

    class FirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            mark("first_step")
            with open(args.worker_output, "w", encoding="utf-8") as handle:
                json.dump(marks, handle)
            os._exit(0)  # nothing after step 1 is measured

    def marked_fit(self, *positional, callbacks=None, **keywords):
        mark("ready")
        callbacks = list(callbacks or []) + [FirstStep()]
        return fit(self, *positional, callbacks=callbacks, **keywords)

    keras.Model.fit = marked_fit
    argv = ["--output-dir", os.path.join(os.path.dirname(args.worker_output), "demo")]
    if args.worker_model:
        argv += ["--model", args.worker_model]
    demo.main(argv)
    raise RuntimeError("the demo ended without a training step")


def base_checkpoint(work_dir):
    """A BERT-base-shaped classifier of random weights, MiniLM's tokenizer."""
    path = os.path.join(work_dir, "bert-base-random")
    if os.path.exists(os.path.join(path, "config.json")):
        return path
    from harness import workloads

    import bert_keras as bk

    config = bk.BertConfig(**workloads.config_arguments("base"))
    model = bk.BertForSequenceClassification(config)
    model(model.dummy_inputs)
    model.save_pretrained(path)
    source = flags.default_model()
    for name in os.listdir(source):
        if name.startswith(("vocab", "tokenizer", "special_tokens")):
            shutil.copy(os.path.join(source, name), path)
    return path


def run_once(tree, python, model_path, work_dir, index):
    output = os.path.join(work_dir, f"run_{index:03d}", "marks.json")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    command = [
        python, os.path.abspath(__file__), "--worker-tree", tree,
        "--worker-output", output, "--spawned-at", repr(time.time()),
    ]  # fmt: skip
    if model_path:
        command += ["--worker-model", model_path]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": tree}
    log_path = output.replace(".json", ".log")
    with open(log_path, "w", encoding="utf-8") as log:
        completed = subprocess.run(command, cwd=tree, env=env, stdout=log, stderr=log)
    if completed.returncode != 0 or not os.path.exists(output):
        with open(log_path, encoding="utf-8") as log:
            raise RuntimeError(
                f"first-step run failed; log {log_path}:\n{log.read()[-3000:]}"
            )
    with open(output, encoding="utf-8") as handle:
        return json.load(handle)


def parse_pythons(specs):
    """`{name: interpreter}` from `NAME=PATH` strings (default: this one)."""
    if not specs:
        return {"this": sys.executable}
    pythons = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not name or not path or not os.path.exists(path):
            raise SystemExit(
                f"--pythons takes NAME=PATH with an existing interpreter; got {spec!r}"
            )
        pythons[name] = path
    return pythons


def setup_name(model_name, tree_name, python_name, pythons):
    name = f"{model_name}/{tree_name}"
    return f"{name}/{python_name}" if len(pythons) > 1 else name


def main(argv=None):
    args = parse_args(argv)
    if args.worker_tree:
        return worker(args)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="first_step_")
    os.makedirs(work_dir, exist_ok=True)
    trees = {"current": REPO_ROOT}
    if args.baseline_tree:
        trees = {"baseline": os.path.abspath(args.baseline_tree), **trees}
    models = {"minilm": None}
    if "base" in args.models:
        models["base"] = base_checkpoint(work_dir)
    models = {name: models[name] for name in args.models}
    pythons = parse_pythons(args.pythons)
    setups = [(tree, python) for tree in trees for python in pythons]
    runs = []
    for repeat in range(args.repeats):
        order = setups if repeat % 2 == 0 else list(reversed(setups))
        for model_name, model_path in models.items():
            for tree_name, python_name in order:
                marks = run_once(
                    trees[tree_name],
                    pythons[python_name],
                    model_path,
                    work_dir,
                    len(runs),
                )
                run = {"tree": tree_name, "model": model_name, "repeat": repeat}
                if len(pythons) > 1:
                    run["python"] = python_name
                runs.append({**run, **marks})
                print(
                    f"{setup_name(model_name, tree_name, python_name, pythons)} "
                    f"(repeat {repeat + 1}): "
                    + ", ".join(f"{name} {marks[name]:.1f} s" for name in MARKS),
                    flush=True,
                )
    table = {}
    for model_name in models:
        for tree_name, python_name in setups:
            group = [
                r
                for r in runs
                if r["model"] == model_name
                and r["tree"] == tree_name
                and r.get("python", python_name) == python_name
            ]
            table[setup_name(model_name, tree_name, python_name, pythons)] = {
                name: statistics.median(r[name] for r in group) for name in MARKS
            }
    settings = {"repeats": args.repeats, "models": args.models, "trees": list(trees)}
    if len(pythons) > 1:
        settings["pythons"] = list(pythons)
    payload = {**results.header(settings), "runs": runs, "median_seconds": table}
    # No local paths in a results file: the trees and work dir by name only.
    for name, path in (
        ("BASELINE_TREE", args.baseline_tree),
        ("WORK_DIR", args.work_dir),
    ) + tuple((name, path) for name, path in pythons.items() if args.pythons):
        if path:
            payload["command"] = payload["command"].replace(path, name)
    results.write_json(args.output, payload)
    header = "model / tree" + (" / python" if len(pythons) > 1 else "")
    print(f"\n| {header} | import s | ready s | first step s |\n|---|---|---|---|")
    for key, row in table.items():
        cells = " | ".join(f"{row[name]:.1f}" for name in MARKS)
        print(f"| {key} | {cells} |")
    return payload


if __name__ == "__main__":
    main()
