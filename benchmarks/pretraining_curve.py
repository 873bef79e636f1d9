"""Plots chained `tasks.pretrain` runs (each continuing the last with --model).

    .venv/bin/python benchmarks/pretraining_curve.py RUN [RUN ...] \
        [--output pretraining_curve.png] [--title TEXT]

Masked LM loss (every logged step), accuracy (each --save-steps round) and
learning rate against the optimizer step, the runs laid end to end in the
order given. The unigram baseline comes from the first run's results.json.
"""

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_run(path):
    with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
        history = [row for row in json.load(f)["log_history"] if "loss" in row]
    with open(os.path.join(path, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    return history, results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="tasks.pretrain output dirs, in order")
    parser.add_argument("--output", default="pretraining_curve.png")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    offset, baseline = 0, None
    for index, path in enumerate(args.runs):
        history, results = read_run(path)
        baseline = baseline or results.get("mlm_unigram_baseline_accuracy")
        rounds = results["epochs"]
        round_steps = results["steps"] // len(rounds)
        label = f"run {index + 1}: {os.path.basename(os.path.normpath(path))}"
        steps = [row["step"] + offset for row in history]
        axes[0].plot(steps, [row["loss"] for row in history], label=label)
        axes[1].plot(
            [row["epoch"] * round_steps + offset for row in rounds],
            [row["accuracy"] for row in rounds],
            marker=".",
            label=label,
        )
        axes[2].plot(steps, [row["learning_rate"] for row in history], label=label)
        offset += results["steps"]
    if baseline:
        axes[1].axhline(baseline, color="gray", ls="--", lw=1, label="unigram baseline")
    titles = ("masked LM loss", "masked LM accuracy", "learning rate")
    for ax, title in zip(axes, titles):
        ax.set_xlabel("optimizer step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
