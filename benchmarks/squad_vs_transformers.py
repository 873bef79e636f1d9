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
import sys

from harness import REPO_ROOT
from harness import flags
from harness import processes
from harness import results
from harness import versus

TORCH_SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "torch_squad.py")
DEFAULT_SOURCE = os.path.join(
    REPO_ROOT, "tasks", "data", "squad", "dev-v1.1.shared.json"
)
METRICS = ("exact_match", "f1")
# Hyperparameters passed unchanged to both systems.
RECIPE = {
    "epochs": 2,
    "batch_size": 32,
    "eval_batch_size": 64,
    "learning_rate": 1e-4,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_seq_length": 256,
    "doc_stride": 128,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/squad_vs_transformers.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    flags.add_model(parser)
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="SQuAD v1.1 JSON")
    parser.add_argument("--train-articles", type=int, default=24)
    versus.add_flags(
        parser,
        RECIPE,
        tolerance=1.5,
        tolerance_help="PASS when the F1s differ by at most this many points",
    )
    parser.add_argument("--output", default="squad_vs_transformers.json")
    flags.add_work_dir(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the runs already finished in --work-dir (their results.json)",
    )
    args = parser.parse_args(argv)
    flags.require_model(parser, args)
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
    argv = [
        "--model", args.model,
        "--train-file", files["train"],
        "--eval-file", files["eval"],
        "--output-dir", output_dir,
        "--seed", str(seed),
        "--verbose", "0",
    ]  # fmt: skip
    argv += flags.argv_of(args, RECIPE)
    return processes.versus_command(system, "tasks.squad", TORCH_SCRIPT, argv, args)


def run_one(system, seed, args, files, work_dir):
    output_dir = os.path.join(work_dir, f"{system}_seed{seed}")
    run, wall, log_path = processes.fine_tune(
        command(system, seed, args, files, output_dir),
        output_dir,
        f"{system} seed {seed}",
        args.threads,
        reuse=args.resume,
    )
    return {
        "system": system,
        "seed": seed,
        "scores": {metric: run[metric] for metric in METRICS},
        "train_time_seconds": run["train_time_seconds"],
        "train_examples_per_second": run["train_examples_per_second"],
        "process_wall_seconds": wall,
        "train_loss_per_epoch": run["train_loss_per_epoch"],
        "predictions_missing": run["predictions_missing"],
        "eval_examples": run["eval_examples"],
        "log": log_path,
    }


def summarize(runs, tolerance):
    by_system = {s: [r for r in runs if r["system"] == s] for s in versus.SYSTEMS}
    if not all(by_system.values()):
        return []
    rows = []
    for metric in METRICS:
        row = versus.metric_row(by_system, metric)
        # The acceptance is on F1; EM is reported alongside.
        row["pass"] = (
            abs(row["difference_points"]) <= tolerance if metric == "f1" else None
        )
        rows.append(row)
    return rows


def format_table(rows, tolerance):
    lines = [
        "| metric | bert_keras | PyTorch | diff ± s.e. (pts) | bert_keras train s "
        f"| PyTorch train s | time ratio | within ±{tolerance:g} pt |",
        "|" + "---|" * 8,
    ]
    for row in rows:
        verdict = {True: "PASS", False: "FAIL", None: "—"}[row["pass"]]
        lines.append(f"| {row['metric']} {versus.row_cells(row)}| {verdict} |")
    return "\n".join(lines)


def write_report(path, args, runs, rows):
    settings = {k: v for k, v in vars(args).items() if k not in ("output", "work_dir")}
    results.write_json(
        path, {**results.header(settings), "summary": rows, "runs": runs}
    )


def main(argv=None):
    args = parse_args(argv)
    runs = []
    with processes.scratch_directory(args.work_dir, "squad_vs_transformers_") as work:
        files = split_by_article(args.source, args.train_articles, work)
        for index, seed in enumerate(args.seeds):
            for system in processes.in_turn(versus.SYSTEMS, index):
                run = run_one(system, seed, args, files, work)
                runs.append(run)
                print(
                    f"seed {seed} {system}: EM {run['scores']['exact_match']:.2f}, "
                    f"F1 {run['scores']['f1']:.2f}; train "
                    f"{run['train_time_seconds']:.0f} s",
                    flush=True,
                )
                write_report(args.output, args, runs, summarize(runs, args.tolerance))
    rows = summarize(runs, args.tolerance)
    write_report(args.output, args, runs, rows)
    print(
        f"\n{args.precision}, {args.threads} threads, seeds {args.seeds}, "
        f"{args.train_articles} train articles; scores in points (mean ± std "
        "over seeds; the difference ± its standard error), train wall time = "
        "median over seeds"
    )
    print(format_table(rows, args.tolerance))
    print(f"\nfull results in {os.path.abspath(args.output)}")
    return all(row["pass"] is not False for row in rows)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
