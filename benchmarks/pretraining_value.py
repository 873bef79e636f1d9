"""Does pretraining pay? SST-2 from a pretrained checkpoint vs random weights.

Takes a checkpoint written by `python -m tasks.pretrain` and, per seed, a copy
of the same architecture and tokenizer with freshly initialised weights
(`BertForPreTraining(config)` under `keras.utils.set_random_seed(seed)`).
Both are fine-tuned with `python -m tasks.glue --task sst2` on the same rows
with the same settings; the table gives the dev accuracy of each (mean, std
and the per-seed values), the gap, and PASS when the gap exceeds the larger
spread (max - min over seeds) of the two.

    python benchmarks/pretraining_value.py --pretrained OUT_OF_TASKS_PRETRAIN \\
        [--seeds 1 2 3] [--train-samples 8000] [--epochs 3] [--output F.json]
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

from glue_vs_transformers import machine

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(REPO_ROOT, "tasks", "data", "glue")
GLUE_FLAGS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "warmup_ratio",
    "weight_decay",
    "max_seq_length",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/pretraining_value.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--pretrained", required=True, help="tasks.pretrain output")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="GLUE layout")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--output", default="pretraining_value.json")
    parser.add_argument("--work-dir", default=None, help="default: a temp dir")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.pretrained, "config.json")):
        parser.error(
            f"--pretrained must be a checkpoint dir with config.json (the output "
            f"of tasks.pretrain). Received: {args.pretrained!r}"
        )
    return args


def random_checkpoint(pretrained, seed, path):
    """Same config and tokenizer as `pretrained`, weights drawn with `seed`."""
    code = (
        "import sys, keras, bert_keras as bk\n"
        "src, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
        "keras.utils.set_random_seed(seed)\n"
        "config = bk.BertConfig.from_pretrained(src)\n"
        "model = bk.BertForPreTraining(config)\n"
        "model.save_pretrained(out, tokenizer=bk.AutoTokenizer.from_pretrained(src))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, pretrained, str(seed), path],
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def fine_tune(model_dir, seed, args, output_dir):
    flags = [
        "--task", "sst2",
        "--model", model_dir,
        "--data-dir", args.data_dir,
        "--output-dir", output_dir,
        "--seed", str(seed),
        "--max-train-samples", str(args.train_samples),
        "--verbose", "0",
    ]  # fmt: skip
    for name in GLUE_FLAGS:
        flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.mixed_precision:
        flags.append("--mixed-precision")
    log_path = f"{output_dir}.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.run(
            [sys.executable, "-m", "tasks.glue", *flags],
            cwd=REPO_ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if process.returncode != 0:
        with open(log_path, encoding="utf-8") as log:
            tail = log.read()[-3000:]
        raise RuntimeError(f"fine-tuning {model_dir} failed; log {log_path}:\n{tail}")
    with open(os.path.join(output_dir, "results.json"), encoding="utf-8") as handle:
        results = json.load(handle)
    return {
        "accuracy": 100 * results["eval_accuracy"],
        "train_time_seconds": results["train_time_seconds"],
    }


def summarize(runs):
    stats = {}
    for init in ("pretrained", "random"):
        values = [r["accuracy"] for r in runs if r["init"] == init]
        if not values:
            return None
        stats[init] = {
            "mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "spread": max(values) - min(values),
            "values": values,
        }
    gap = stats["pretrained"]["mean"] - stats["random"]["mean"]
    spread = max(stats["pretrained"]["spread"], stats["random"]["spread"])
    return {**stats, "gap_points": gap, "larger_spread": spread, "pass": gap > spread}


def main(argv=None):
    args = parse_args(argv)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="pretraining_value_")
    os.makedirs(work_dir, exist_ok=True)
    runs = []
    try:
        for seed in args.seeds:
            random_dir = os.path.join(work_dir, f"random_init_seed{seed}")
            random_checkpoint(args.pretrained, seed, random_dir)
            for init, model_dir in (
                ("pretrained", args.pretrained),
                ("random", random_dir),
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
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    summary = summarize(runs)
    with open(os.path.join(args.pretrained, "results.json"), encoding="utf-8") as f:
        pretraining = json.load(f)
    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "settings": {k: v for k, v in vars(args).items() if k != "work_dir"},
        "pretraining": {
            "steps": pretraining.get("steps"),
            "final": pretraining.get("final"),
            "mlm_unigram_baseline_accuracy": pretraining.get(
                "mlm_unigram_baseline_accuracy"
            ),
        },
        "machine": machine(),
        "summary": summary,
        "runs": runs,
    }
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    print("\n| init | SST-2 dev accuracy (mean ± std) | per seed |")
    print("|---|---|---|")
    for init in ("pretrained", "random"):
        s = summary[init]
        values = ", ".join(f"{v:.2f}" for v in s["values"])
        print(f"| {init} | {s['mean']:.2f} ± {s['std']:.2f} | {values} |")
    print(
        f"\ngap {summary['gap_points']:+.2f} points, larger spread "
        f"{summary['larger_spread']:.2f}: {'PASS' if summary['pass'] else 'FAIL'}"
    )
    return summary["pass"]


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
