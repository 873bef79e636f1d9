"""bert_keras against PyTorch over seeds: one row per metric, and its cells."""

import statistics

from harness import flags
from harness import results

SYSTEMS = ("bert_keras", "pytorch")


def metric_row(by_system, metric, with_seeds=False):
    """One metric compared over seeds.

    Args:
        by_system: dict, each of `SYSTEMS` to its finished runs (each with
            `scores` and `train_time_seconds`).
        metric: str, the key in each run's `scores`.
        with_seeds: bool, list each system's seeds beside its values.

    Returns:
        dict with `metric`, each system's mean, std and values, the difference
        in points and its standard error, the median train time of each and
        their ratio.
    """
    stats = {}
    for system, runs in by_system.items():
        stats[system] = results.seed_statistics([r["scores"][metric] for r in runs])
        if with_seeds:
            stats[system]["seeds"] = [r["seed"] for r in runs]
    times = {
        system: statistics.median(r["train_time_seconds"] for r in runs)
        for system, runs in by_system.items()
    }
    return {
        "metric": metric,
        "bert_keras": stats["bert_keras"],
        "pytorch": stats["pytorch"],
        "difference_points": stats["bert_keras"]["mean"] - stats["pytorch"]["mean"],
        "difference_standard_error": difference_standard_error(*stats.values()),
        "bert_keras_train_seconds_median": times["bert_keras"],
        "pytorch_train_seconds_median": times["pytorch"],
        "time_ratio": times["bert_keras"] / times["pytorch"],
    }


def difference_standard_error(a, b):
    """Standard error of mean(a) - mean(b) over independent seeds (None below 2)."""
    if min(len(a["values"]), len(b["values"])) < 2:
        return None
    return (a["std"] ** 2 / len(a["values"]) + b["std"] ** 2 / len(b["values"])) ** 0.5


def row_cells(row):
    """`| bk | PyTorch | diff ± s.e. | bk train s | PyTorch train s | ratio ` cells."""
    bk, pt = row["bert_keras"], row["pytorch"]
    return (
        f"| {bk['mean']:.2f} ± {bk['std']:.2f} "
        f"| {pt['mean']:.2f} ± {pt['std']:.2f} "
        f"| {row['difference_points']:+.2f}{standard_error_cell(row)} "
        f"| {row['bert_keras_train_seconds_median']:.0f} "
        f"| {row['pytorch_train_seconds_median']:.0f} "
        f"| {row['time_ratio']:.2f} "
    )


def standard_error_cell(row):
    error = row.get("difference_standard_error")
    return "" if error is None else f" ± {error:.2f}"


def add_flags(parser, recipe, tolerance, tolerance_help):
    """Precision, the recipe both sides get, threads, and the PASS bound."""
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    flags.add_recipe(parser, **recipe)
    flags.add_threads(parser)
    parser.add_argument(
        "--tolerance", type=float, default=tolerance, help=tolerance_help
    )
