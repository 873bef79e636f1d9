"""Plots chained `tasks.pretrain` runs (each continuing the last with --model).

    .venv/bin/python benchmarks/pretraining_curve.py RUN [RUN ...] \
        [--output pretraining_curve.png] [--title TEXT]

The runs' logged rows (loss, learning rate, each round's MLM accuracy, from
trainer_state.json) laid end to end in the order given, drawn by the same
plotter as each run's own training_curves.png.
"""

import argparse
import json
import os
import sys

from harness import REPO_ROOT

sys.path.insert(0, REPO_ROOT)
from tasks import reporting  # noqa: E402


def chained_history(runs):
    """Every run's log rows, steps offset by the runs before it."""
    rows, offset = [], 0
    for path in runs:
        with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
            state = json.load(f)
        rows += [
            {**row, "step": row["step"] + offset}
            for row in state["log_history"]
            if "step" in row
        ]
        offset += state["global_step"]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="tasks.pretrain output dirs, in order")
    parser.add_argument("--output", default="pretraining_curve.png")
    parser.add_argument("--title", default="masked LM")
    args = parser.parse_args(argv)
    reporting.plot_curves(args.output, chained_history(args.runs), args.title)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
