"""LoRA against full fine-tuning: trainable parameters, step time, peak memory.

    .venv/bin/python benchmarks/lora_vs_full.py [--model DIR] [--threads 2]
        [--repeats 1] [--warmup 3] [--steps 25] [--output lora_vs_full.json]

all-MiniLM-L6-v2 as `BertForSequenceClassification` (2 labels) on SST-2
training batches (tasks/data/glue/SST-2, batch 32, every row padded to 128
tokens), the task CLIs' optimizer (`create_optimizer`: AdamW, clipnorm 1.0),
in float32 and mixed_bfloat16: full fine-tuning against LoRA rank 8, alpha
16 on query and value (`bert_keras.enable_lora`; the classifier trains in
full, as PEFT's `modules_to_save`).

Each configuration is a fresh process pinned to --threads (TensorFlow only,
`harness.frameworks.hide_torch`) that times --steps training steps of `fit`
after --warmup untimed ones and reports their median, the trainable and total
parameters, the optimizer state's size, and memory: the resident set before
`fit` and the peak over the process (`ru_maxrss`), whose difference is what
training adds. Within each repeat the configurations take turns going first;
figures are the median over repeats; the ratios are LoRA over full.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

from harness import REPO_ROOT
from harness import flags
from harness import processes
from harness import results

METHODS = ("full", "lora")
PRECISIONS = ("fp32", "bf16")
LORA = {"rank": 8, "alpha": 16, "target_modules": ("query", "value")}
SEQ_LENGTH = 128
LEARNING_RATE = 2e-5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    flags.add_model(parser)
    flags.add_threads(parser)
    flags.add_work_dir(parser, help="logs and worker results (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps")
    parser.add_argument("--steps", type=int, default=25, help="timed steps")
    parser.add_argument(
        "--data-dir", default=os.path.join(REPO_ROOT, "tasks", "data", "glue")
    )
    parser.add_argument("--output", default="lora_vs_full.json")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    flags.require_model(parser, args)
    return args


def sst2_batches(args, tokenizer, count):
    """`count` SST-2 training batches in file order, padded to SEQ_LENGTH."""
    import numpy as np

    path = os.path.join(args.data_dir, "SST-2", "train.tsv")
    with open(path, encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle][1:]
    rows = rows[: count * args.batch_size]
    encoded = tokenizer(
        [text for text, _ in rows],
        padding="max_length",
        truncation=True,
        max_length=SEQ_LENGTH,
        return_tensors="np",
    )
    features = {key: np.asarray(value) for key, value in encoded.items()}
    labels = np.asarray([int(label) for _, label in rows])
    return features, labels


def worker(args):
    """One configuration ("lora-bf16", ...): measures, writes --worker-output."""
    from harness import frameworks

    frameworks.hide_torch()
    frameworks.set_tf_threads(args.threads)
    import keras
    import numpy as np
    import tensorflow as tf

    import bert_keras as bk
    from bert_keras.training.optimization import create_optimizer

    method, precision = args.worker.split("-")
    keras.utils.set_random_seed(0)
    tokenizer = bk.AutoTokenizer.from_pretrained(args.model)
    total_steps = args.warmup + args.steps
    features, labels = sst2_batches(args, tokenizer, total_steps)
    model = bk.BertForSequenceClassification.from_pretrained(
        args.model,
        num_labels=2,
        dtype="mixed_bfloat16" if precision == "bf16" else "float32",
    )
    if method == "lora":
        bk.enable_lora(model, **LORA)
    model.compile(
        optimizer=create_optimizer(
            LEARNING_RATE, total_steps=total_steps, warmup_ratio=0.1
        )
    )
    data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(
        args.batch_size, drop_remainder=True
    )
    marks = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            marks.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            marks.append(time.perf_counter())

    rss_before = current_rss_mib()
    model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=[StepTimer()])
    steps = [b - a for a, b in zip(marks, marks[1:])][args.warmup :]

    def count(variables):
        return sum(int(np.prod(variable.shape)) for variable in variables)

    report = {
        "configuration": args.worker,
        "trainable_parameters": count(model.trainable_weights),
        "total_parameters": count(model.weights),
        "optimizer_state_mib": sum(
            int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
            for v in model.optimizer.variables
        )
        / 2**20,
        "step_seconds": steps,
        "median_step_seconds": statistics.median(steps),
        "rss_before_fit_mib": rss_before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    results.write_json(args.worker_output, report)


def current_rss_mib():
    """This process's resident set now (Linux /proc), in MiB."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    configurations = [f"{m}-{p}" for p in PRECISIONS for m in METHODS]
    runs = {name: [] for name in configurations}
    with processes.scratch_directory(args.work_dir, "lora_vs_full-") as work_dir:
        for repeat in range(args.repeats):
            for name in processes.in_turn(configurations, repeat):
                output = os.path.join(work_dir, f"{name}-{repeat}.json")
                command = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--model", args.model,
                    "--threads", str(args.threads),
                    "--batch-size", str(args.batch_size),
                    "--warmup", str(args.warmup),
                    "--steps", str(args.steps),
                    "--data-dir", args.data_dir,
                    "--worker", name,
                    "--worker-output", output,
                ]  # fmt: skip
                wall = processes.run_logged(
                    command, f"{output}.log", name, threads=args.threads
                )
                with open(output, encoding="utf-8") as handle:
                    runs[name].append({**json.load(handle), "wall_seconds": wall})
                row = runs[name][-1]
                print(
                    f"{name} (repeat {repeat + 1}): "
                    f"{row['median_step_seconds']:.3f} s/step, "
                    f"peak {row['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
    table = {name: summary(rows) for name, rows in runs.items()}
    ratios = {
        precision: {
            key: table[f"lora-{precision}"][key] / table[f"full-{precision}"][key]
            for key in RATIO_KEYS
        }
        for precision in PRECISIONS
    }
    # No local absolute path in a file that is shared.
    hidden = ("worker", "worker_output", "work_dir")
    settings = {
        **{k: v for k, v in vars(args).items() if k not in hidden},
        "model": (
            "sentence-transformers/all-MiniLM-L6-v2"
            if args.model == flags.default_model()
            else os.path.basename(os.path.normpath(args.model))
        ),
        "data_dir": os.path.relpath(args.data_dir, REPO_ROOT),
        "seq_length": SEQ_LENGTH,
        "lora": LORA,
        "learning_rate": LEARNING_RATE,
    }
    report = {
        **results.header(settings),
        "configurations": table,
        "lora_over_full": ratios,
        "runs": runs,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), args.output)
    results.write_json(path, report)
    for name, row in table.items():
        print(
            f"{name:<10} trainable {row['trainable_parameters']:>10,d}  "
            f"{row['median_step_seconds']:.3f} s/step  peak "
            f"{row['peak_rss_mib']:.0f} MiB (+{row['training_rss_mib']:.0f} in fit)"
        )
    for precision, row in ratios.items():
        print(precision, "LoRA / full:", {k: round(v, 3) for k, v in row.items()})


RATIO_KEYS = (
    "trainable_parameters",
    "median_step_seconds",
    "peak_rss_mib",
    "training_rss_mib",
    "optimizer_state_mib",
)


def summary(rows):
    """One configuration over repeats: medians of the measured figures."""
    first = rows[0]
    return {
        "trainable_parameters": first["trainable_parameters"],
        "total_parameters": first["total_parameters"],
        "optimizer_state_mib": first["optimizer_state_mib"],
        "median_step_seconds": statistics.median(
            row["median_step_seconds"] for row in rows
        ),
        "peak_rss_mib": statistics.median(row["peak_rss_mib"] for row in rows),
        "training_rss_mib": statistics.median(
            row["peak_rss_mib"] - row["rss_before_fit_mib"] for row in rows
        ),
        "repeats": len(rows),
    }


if __name__ == "__main__":
    main()
