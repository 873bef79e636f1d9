"""bert_keras vs keras-hub vs PyTorch transformers: speed, MFU and memory.

Every measurement is a fresh interpreter (`benchmarks/compare_worker.py`)
pinned to the same thread count; within each repeat the systems take turns
going first, warm-up steps are not timed, and each figure is the median over
repeats of the per-run median step time. The peak FLOP/s used for MFU is
measured here too: the faster of TensorFlow's and PyTorch's square matrix
product in the same precision. MFU counts the full model's products for every
system; bert_keras computes its last layer at [CLS] only (and at the masked
positions when pretraining), so its row also gives the utilisation of the
products it executes.

    python benchmarks/compare.py [--workloads train infer pretrain sst2] \\
        [--shapes minilm base] [--precisions bf16 fp32] [--repeats 3] \\
        [--steps 10] [--warmup 3] [--output compare.json]

Workloads (batch 32, sequence 128 unless told otherwise):

- `train`: a classification training step (forward, backward, AdamW with
  clipping) on random full-length ids; bert_keras `BertForSequenceClassification`
  with `compile()`, keras-hub `BertTextClassifier` (preprocessor None, AdamW),
  transformers `BertForSequenceClassification` (SDPA attention; bf16 through
  `torch.autocast("cpu", torch.bfloat16)`).
- `infer`: the forward pass of the same models (`predict`; `inference_mode`).
- `pretrain`: an MLM + NSP step with 20 masked positions per sequence;
  bert_keras `BertForPreTraining(max_predictions_per_seq=20)` vs transformers
  `BertForPreTraining` (labels -100 off the masks, its documented layout).
- `sst2`: one real fine-tuning epoch on the first 8,000 SST-2 train rows of
  the MiniLM checkpoint, then one dev pass, each system its documented way:
  `python -m tasks.glue`, keras-hub `BertTextClassifier.from_preset` with its
  preprocessor on raw strings, `benchmarks/torch_glue.py` (dynamic padding).

Prints one table per workload and the issue's targets with PASS/FAIL; writes
every run to `--output` as it goes.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

from harness import REPO_ROOT
from harness import flags
from harness import processes
from harness import results
from harness import workloads

WORKER = os.path.join(REPO_ROOT, "benchmarks", "compare_worker.py")
DEFAULT_DATA = os.path.join(REPO_ROOT, "tasks", "data", "glue")
SYSTEMS = {
    "train": ("bert_keras", "keras_hub", "torch"),
    "infer": ("bert_keras", "keras_hub", "torch"),
    "sst2": ("bert_keras", "keras_hub", "torch"),
    "pretrain": ("bert_keras", "torch"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/compare.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=("train", "infer", "pretrain", "sst2"),
        default=["train", "infer", "pretrain", "sst2"],
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        choices=sorted(workloads.SHAPES),
        default=["minilm", "base"],
    )
    parser.add_argument(
        "--precisions", nargs="+", choices=("bf16", "fp32"), default=["bf16", "fp32"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sst2-repeats", type=int, default=1)
    workloads.add_step_flags(parser)
    flags.add_threads(parser)
    flags.add_model(parser, help="sst2 checkpoint; default MiniLM")
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="GLUE layout")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--output", default="compare.json")
    flags.add_work_dir(parser)
    args = parser.parse_args(argv)
    if "sst2" in args.workloads and args.model is None:
        args.model = flags.default_model()
    return args


# === Running workers ===


def run_worker(system, workload, shape, precision, args, work_dir, index):
    output = os.path.join(work_dir, f"{index:03d}_{system}_{workload}.json")
    command = [
        sys.executable, WORKER, "--system", system, "--workload", workload,
        "--shape", shape, "--precision", precision, "--output", output,
    ]  # fmt: skip
    command += flags.argv_of(
        args,
        ("batch_size", "seq_length", "masked_positions", "warmup", "steps", "threads"),
    )
    if workload == "sst2":
        scratch = os.path.join(work_dir, f"{index:03d}_{system}_sst2")
        command += flags.argv_of(args, ("model", "data_dir", "train_samples"))
        command += ["--work-dir", scratch]
    log_path = output.replace(".json", ".log")
    processes.run_logged(command, log_path, f"{system} {workload}", args.threads)
    with open(output, encoding="utf-8") as handle:
        result = json.load(handle)
    result["load_average"] = os.getloadavg()[0]
    return result


def measure_peaks(args, work_dir, runs, save):
    peaks = {}
    for precision in args.precisions:
        best = 0.0
        for repeat in range(args.repeats):
            for system in processes.in_turn(("bert_keras", "torch"), repeat):
                result = run_worker(
                    system, "peak", "minilm", precision, args, work_dir, len(runs)
                )
                runs.append(result)
                save()
                flops = result["flops_per_step"] / result["median_step_seconds"]
                best = max(best, flops)
        peaks[precision] = best
        print(f"matrix-product peak, {precision}: {best / 1e9:.0f} GFLOP/s", flush=True)
    return peaks


def summarize(runs, peaks, args):
    """Median over repeats per (workload, shape, precision, system)."""
    groups = {}
    for run in runs:
        if run["workload"] == "peak":
            continue
        shape = "minilm" if run["workload"] == "sst2" else run["shape"]
        key = (run["workload"], shape, run["precision"], run["system"])
        groups.setdefault(key, []).append(run)
    rows = {}
    for (workload, shape, precision, system), group in groups.items():
        row = {"runs": len(group)}
        row["peak_rss_mib"] = statistics.median(r["peak_rss_mib"] for r in group)
        if workload == "sst2":
            row["examples_per_second"] = statistics.median(
                r["examples_per_second"] for r in group
            )
            row["accuracy"] = statistics.median(r["accuracy"] for r in group)
        else:
            seconds = statistics.median(r["median_step_seconds"] for r in group)
            row["step_seconds"] = seconds
            row["tokens_per_second"] = args.batch_size * args.seq_length / seconds
            flops = workloads.workload_flops(workload, shape, args)
            row["tflops"] = flops / seconds / 1e12
            row["mfu"] = flops / seconds / peaks[precision]
            executed = workloads.workload_flops(workload, shape, args, system)
            row["executed_mfu"] = executed / seconds / peaks[precision]
        rows[(workload, shape, precision, system)] = row
    return rows


def ratio_rows(rows):
    """Per workload/shape/precision: bert_keras vs each peer and the fastest."""
    table = []
    for (workload, shape, precision, system), row in sorted(rows.items()):
        if system != "bert_keras":
            continue
        peers = {
            peer: rows[(workload, shape, precision, peer)]
            for peer in ("keras_hub", "torch")
            if (workload, shape, precision, peer) in rows
        }
        entry = {
            "workload": workload,
            "shape": shape,
            "precision": precision,
            "bert_keras": row,
            "peers": peers,
        }
        if workload == "sst2":
            entry["speedup"] = {
                peer: row["examples_per_second"] / p["examples_per_second"]
                for peer, p in peers.items()
            }
        else:
            entry["time_ratio"] = {
                peer: row["step_seconds"] / p["step_seconds"]
                for peer, p in peers.items()
            }
        table.append(entry)
    return table


def targets(table):
    """The issue's acceptance targets that these rows can decide."""
    checks = []
    for entry in table:
        w, shape, precision = entry["workload"], entry["shape"], entry["precision"]
        name = f"{w} {shape} {precision}"
        if w in ("train", "infer") and entry["time_ratio"]:
            bound = {"train": {"bf16": 0.80, "fp32": 0.90}, "infer": {"bf16": 0.85}}
            limit = bound[w].get(precision)
            if limit is not None:
                # bert_keras time over the fastest peer's: the largest ratio.
                worst = max(entry["time_ratio"].values())
                checks.append(
                    (f"{name}: time / fastest peer ≤ {limit}", worst, worst <= limit)
                )
            if w == "train" and precision == "bf16":
                mfu = entry["bert_keras"]["mfu"]
                checks.append((f"{name}: MFU ≥ 60%", mfu, mfu >= 0.60))
            if w == "train" and "keras_hub" in entry["peers"]:
                ours = entry["bert_keras"]["peak_rss_mib"]
                theirs = entry["peers"]["keras_hub"]["peak_rss_mib"]
                checks.append(
                    (f"{name}: peak RSS ≤ keras-hub's", ours / theirs, ours <= theirs)
                )
        if w == "pretrain" and "torch" in entry["peers"]:
            speedup = 1 / entry["time_ratio"]["torch"]
            checks.append((f"{name}: ≥ 2.0× PyTorch tokens/s", speedup, speedup >= 2.0))
        if w == "sst2":
            speed = entry["speedup"]
            if "torch" in speed:
                checks.append(
                    (
                        f"{name}: ≥ 2.0× PyTorch examples/s",
                        speed["torch"],
                        speed["torch"] >= 2.0,
                    )
                )
            if "keras_hub" in speed:
                checks.append(
                    (
                        f"{name}: ≥ 1.5× keras-hub examples/s",
                        speed["keras_hub"],
                        speed["keras_hub"] >= 1.5,
                    )
                )
            best = (
                max(p["accuracy"] for p in entry["peers"].values())
                if entry["peers"]
                else None
            )
            if best is not None:
                gap = entry["bert_keras"]["accuracy"] - best
                checks.append((f"{name}: accuracy ≥ best peer − 0.5", gap, gap >= -0.5))
    sst2 = {
        e["precision"]: e["bert_keras"]["accuracy"]
        for e in table
        if e["workload"] == "sst2"
    }
    if {"bf16", "fp32"} <= set(sst2):
        gap = sst2["bf16"] - sst2["fp32"]
        checks.append(("sst2 bert_keras: bf16 accuracy ≥ fp32 − 0.5", gap, gap >= -0.5))
    return checks


def format_report(table, checks, peaks):
    lines = [
        "| workload | shape | precision | system | step ms | tokens/s or examples/s "
        "| TFLOP/s | MFU | peak RSS MiB | bert_keras / system |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in table:
        systems = {"bert_keras": entry["bert_keras"], **entry["peers"]}
        for system, row in systems.items():
            if entry["workload"] == "sst2":
                speed = (
                    f"{row['examples_per_second']:.1f} ex/s, acc {row['accuracy']:.2f}"
                )
                step = tflops = mfu = "–"
                ratio = entry["speedup"].get(system)
                ratio = "–" if ratio is None else f"{1 / ratio:.2f} (time)"
            else:
                step = f"{1000 * row['step_seconds']:.0f}"
                speed = f"{row['tokens_per_second']:.0f} tok/s"
                tflops = f"{row['tflops']:.2f}"
                mfu = f"{100 * row['mfu']:.0f}%"
                if system == "bert_keras":
                    mfu += f" ({100 * row['executed_mfu']:.0f}% executed)"
                ratio = entry["time_ratio"].get(system)
                ratio = "–" if ratio is None else f"{ratio:.2f}"
            lines.append(
                f"| {entry['workload']} | {entry['shape']} | {entry['precision']} "
                f"| {system} | {step} | {speed} | {tflops} | {mfu} "
                f"| {row['peak_rss_mib']:.0f} | {ratio} |"
            )
    lines.append("")
    lines.append(
        "Peak (matrix product): "
        + ", ".join(f"{p} {v / 1e12:.2f} TFLOP/s" for p, v in peaks.items())
    )
    lines.append("")
    for name, value, ok in checks:
        lines.append(f"- {'PASS' if ok else 'FAIL'} {name} (measured {value:.3f})")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="compare_")
    os.makedirs(work_dir, exist_ok=True)
    runs = []
    settings = {k: v for k, v in vars(args).items() if k != "work_dir"}
    payload = {**results.header(settings), "runs": runs}

    def save():
        results.write_json(args.output, payload)

    payload["peak_flops"] = peaks = measure_peaks(args, work_dir, runs, save)
    for workload in args.workloads:
        shapes = ["minilm"] if workload == "sst2" else args.shapes
        repeats = args.sst2_repeats if workload == "sst2" else args.repeats
        for shape in shapes:
            for precision in args.precisions:
                systems = SYSTEMS[workload]
                for repeat in range(repeats):
                    for system in processes.in_turn(systems, repeat):
                        result = run_worker(
                            system,
                            workload,
                            shape,
                            precision,
                            args,
                            work_dir,
                            len(runs),
                        )
                        runs.append(result)
                        save()
                        shown = result.get("median_step_seconds")
                        shown = (
                            f"{1000 * shown:.0f} ms/step"
                            if shown is not None
                            else f"{result['examples_per_second']:.1f} ex/s, "
                            f"acc {result['accuracy']:.2f}"
                        )
                        print(
                            f"{workload} {shape} {precision} {system} "
                            f"(repeat {repeat + 1}/{repeats}): {shown}, "
                            f"peak RSS {result['peak_rss_mib']:.0f} MiB",
                            flush=True,
                        )
    table = ratio_rows(summarize(runs, peaks, args))
    checks = targets(table)
    payload["table"] = table
    payload["targets"] = [
        {"target": name, "measured": value, "pass": ok} for name, value, ok in checks
    ]
    save()
    print()
    print(format_report(table, checks, peaks))
    return all(ok for _, _, ok in checks)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
