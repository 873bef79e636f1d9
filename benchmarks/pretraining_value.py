"""Does pretraining pay? SST-2 from a pretrained checkpoint vs random weights.

Takes a checkpoint written by `python -m tasks.pretrain` and, per seed, a copy
of the same architecture and tokenizer with freshly initialised weights
(`BertForPreTraining(config)` under `keras.utils.set_random_seed(seed)`), or
with `--baseline CKPT` that checkpoint (e.g. the model a domain-adaptive run
started from). Both are fine-tuned with `python -m tasks.glue --task sst2` on
the first `--train-samples` rows with the same settings; the table gives the
dev accuracy of each (mean, std and the per-seed values), the gap, and PASS
when the gap exceeds the larger of the two standard deviations (the larger
spread, max - min, is reported too).

    python benchmarks/pretraining_value.py --pretrained OUT_OF_TASKS_PRETRAIN \\
        [--baseline CKPT] [--seeds 1 2 3] [--train-samples 8000] [--epochs 3] \\
        [--output F.json]

`--write-corpus DIR` writes the unlabeled pretraining corpus instead and
exits: WikiText-2 (valid + test, unless `--no-wikitext`) and the SST-2
training sentences without their labels, less the first `--train-samples`
rows (the labeled ones), one a line.
"""

import argparse
import json
import os
import sys

from harness import REPO_ROOT
from harness import flags
from harness import processes
from harness import results

DEFAULT_DATA = os.path.join(REPO_ROOT, "tasks", "data", "glue")
# The fine-tuning recipe, the same for both initialisations.
RECIPE = {
    "epochs": 3,
    "batch_size": 32,
    "learning_rate": 1e-4,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_seq_length": 128,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/pretraining_value.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--pretrained", help="tasks.pretrain output")
    parser.add_argument(
        "--baseline", help="compare with this checkpoint instead of random weights"
    )
    parser.add_argument(
        "--random-initializer-range",
        type=float,
        help="draw the random weights with this std instead of the config's",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="GLUE layout")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument(
        "--write-corpus", metavar="DIR", help="write the pretraining corpus, exit"
    )
    parser.add_argument(
        "--wikitext-dir",
        default=os.path.join(REPO_ROOT, "tasks", "data", "wikitext-2-raw"),
        help="WikiText-2 raw files for --write-corpus",
    )
    parser.add_argument(
        "--no-wikitext", action="store_true", help="--write-corpus: SST-2 only"
    )
    flags.add_recipe(parser, **RECIPE)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--output", default="pretraining_value.json")
    flags.add_work_dir(parser)
    args = parser.parse_args(argv)
    if args.write_corpus:
        return args
    if not args.pretrained or not os.path.isfile(
        os.path.join(args.pretrained, "config.json")
    ):
        parser.error(
            f"--pretrained must be a checkpoint dir with config.json (the output "
            f"of tasks.pretrain). Received: {args.pretrained!r}"
        )
    return args


def write_corpus(args):
    """The unlabeled text: SST-2 train sentences past the labeled rows (+ WikiText)."""
    import shutil

    os.makedirs(args.write_corpus, exist_ok=True)
    with open(os.path.join(args.data_dir, "SST-2", "train.tsv"), encoding="utf-8") as f:
        rows = f.read().splitlines()[1:]
    sentences = [row.rsplit("\t", 1)[0].strip() for row in rows]
    unlabeled = sentences[args.train_samples :]
    path = os.path.join(args.write_corpus, "sst2_unlabeled.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(unlabeled) + "\n")
    written = [path]
    if not args.no_wikitext:
        for name in ("wiki.valid.raw", "wiki.test.raw"):
            written.append(os.path.join(args.write_corpus, name))
            shutil.copyfile(os.path.join(args.wikitext_dir, name), written[-1])
    print(
        f"{len(unlabeled)} SST-2 sentences (rows {args.train_samples + 1}-"
        f"{len(sentences)}, labels dropped) and {len(written) - 1} WikiText file(s) "
        f"in {args.write_corpus}"
    )
    return written


def random_checkpoint(pretrained, seed, path, initializer_range=None):
    """Same config and tokenizer as `pretrained`, weights drawn with `seed`
    (with `initializer_range` instead of the config's, if given)."""
    code = (
        "import sys, keras, bert_keras as bk\n"
        "src, seed, out, std = sys.argv[1:5]\n"
        "keras.utils.set_random_seed(int(seed))\n"
        "config = bk.BertConfig.from_pretrained(src)\n"
        "if std != 'config':\n"
        "    config.initializer_range = float(std)\n"
        "model = bk.BertForPreTraining(config)\n"
        "model.save_pretrained(out, tokenizer=bk.AutoTokenizer.from_pretrained(src))\n"
    )
    processes.run_logged(
        [
            sys.executable,
            "-c",
            code,
            pretrained,
            str(seed),
            path,
            "config" if initializer_range is None else str(initializer_range),
        ],
        f"{path}.log",
        f"drawing random weights (seed {seed})",
    )


def fine_tune(model_dir, seed, args, output_dir):
    argv = [
        "--task", "sst2",
        "--model", model_dir,
        "--data-dir", args.data_dir,
        "--output-dir", output_dir,
        "--seed", str(seed),
        "--max-train-samples", str(args.train_samples),
        "--verbose", "0",
    ]  # fmt: skip
    argv += flags.argv_of(args, RECIPE)
    if args.mixed_precision:
        argv.append("--mixed-precision")
    processes.run_logged(
        [sys.executable, "-m", "tasks.glue", *argv],
        f"{output_dir}.log",
        f"fine-tuning {model_dir}",
    )
    run = results.read_run_results(output_dir)
    return {
        "accuracy": 100 * run["eval_accuracy"],
        "train_time_seconds": run["train_time_seconds"],
    }


def summarize(runs, baseline="random"):
    stats = {}
    for init in ("pretrained", baseline):
        values = [r["accuracy"] for r in runs if r["init"] == init]
        if not values:
            return None
        stats[init] = {
            **results.seed_statistics(values),
            "spread": max(values) - min(values),
        }
    gap = stats["pretrained"]["mean"] - stats[baseline]["mean"]
    spread = max(stats["pretrained"]["spread"], stats[baseline]["spread"])
    std = max(stats["pretrained"]["std"], stats[baseline]["std"])
    return {
        **stats,
        "gap_points": gap,
        "larger_std": std,
        "larger_spread": spread,
        "pass": gap > std,
        "pass_on_spread": gap > spread,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.write_corpus:
        return bool(write_corpus(args))
    baseline = "baseline" if args.baseline else "random"
    runs = []
    with processes.scratch_directory(args.work_dir, "pretraining_value_") as work_dir:
        for seed in args.seeds:
            baseline_dir = args.baseline
            if not args.baseline:
                baseline_dir = os.path.join(work_dir, f"random_init_seed{seed}")
                random_checkpoint(
                    args.pretrained, seed, baseline_dir, args.random_initializer_range
                )
            for init, model_dir in (
                ("pretrained", args.pretrained),
                (baseline, baseline_dir),
            ):
                output_dir = os.path.join(work_dir, f"sst2_{init}_seed{seed}")
                run = {
                    "init": init,
                    "seed": seed,
                    **fine_tune(model_dir, seed, args, output_dir),
                }
                runs.append(run)
                print(
                    f"seed {seed} {init}: SST-2 dev accuracy {run['accuracy']:.2f} "
                    f"({run['train_time_seconds']:.0f} s)",
                    flush=True,
                )
    summary = summarize(runs, baseline)
    with open(os.path.join(args.pretrained, "results.json"), encoding="utf-8") as f:
        pretraining = json.load(f)
    payload = {
        **results.header({k: v for k, v in vars(args).items() if k != "work_dir"}),
        "pretraining": {
            "steps": pretraining.get("steps"),
            "final": pretraining.get("final"),
            "mlm_unigram_baseline_accuracy": pretraining.get(
                "mlm_unigram_baseline_accuracy"
            ),
            "curve": pretraining.get("epochs"),
        },
        "summary": summary,
        "runs": runs,
    }
    results.write_json(args.output, payload)
    print("\n| init | SST-2 dev accuracy (mean ± std) | per seed |")
    print("|---|---|---|")
    for init in ("pretrained", baseline):
        s = summary[init]
        values = ", ".join(f"{v:.2f}" for v in s["values"])
        print(f"| {init} | {s['mean']:.2f} ± {s['std']:.2f} | {values} |")
    print(
        f"\ngap {summary['gap_points']:+.2f} points, larger std "
        f"{summary['larger_std']:.2f}, larger spread {summary['larger_spread']:.2f}: "
        f"{'PASS' if summary['pass'] else 'FAIL'}"
    )
    return summary["pass"]


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
