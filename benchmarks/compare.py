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
        [--steps 10] [--warmup 3] [--systems ...] [--output compare.json]
    python benchmarks/compare.py --curves [--curve-kinds seq batch large] \\
        [--shapes minilm base] [--large-batch 8] [--resume] \\
        [--output benchmarks/curves.json] [--plot-dir docs/images]
    python benchmarks/compare.py --plot-only benchmarks/curves.json

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

Systems: `bert_keras`, `keras_hub` and `torch` (transformers, eager) as
above; `torch_compile`, the same transformers model under `torch.compile`
(inductor, compiled in the untimed warm-up steps; a failed compile fails the
run); `onnxruntime` (inference only), transformers' classifier exported once
per shape to ONNX (opset 17, dynamic batch and sequence) into the work dir and
run by an `InferenceSession` (`ORT_ENABLE_ALL`, CPU provider, `--threads`
intra-op threads) in a process importing neither torch nor TensorFlow. ORT's
CPU provider has no bfloat16 matrix kernels: in the bf16 rows it runs float32
(`"ran_precision": "fp32"`, MFU over the fp32 peak).

Cost curves (`--curves`, `harness/curves.py`): each point is measured for
every system of its workload (train: all but onnxruntime; infer: all five), in
each of `--precisions`:

- `seq`: train and infer at sequence 64, 128, 256, 512 with 4,096 tokens a
  batch (batch 64, 32, 16, 8), shapes minilm and base (`--shapes`).
- `batch`: infer at batch 1, 8, 32, sequence 128, minilm and base.
- `large`: BERT-large (24 x 1024), train and infer at `--large-batch` x 128.

Per point: the median over repeats of each system's median step time,
bert_keras over each peer and over the fastest, MFU and peak RSS; a markdown
table (also in the JSON) and PASS/FAIL for: train, bert_keras / fastest peer
≤ 0.85; infer, bert_keras / keras_hub, / torch and / torch_compile ≤ 0.85 and
bert_keras / onnxruntime ≤ 1.0. Runs are saved as they finish; `--resume`
skips the point, system and repeat triples already in `--output`. Plots go to
`--plot-dir`: `curves_seq_{shape}_{precision}.png`,
`curves_batch_{shape}_{precision}.png`, `curves_large.png`; `--plot-only
FILE` redraws them from a results file without measuring.
"""

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile

from harness import REPO_ROOT
from harness import curves
from harness import flags
from harness import processes
from harness import results
from harness import workers
from harness import workloads

DEFAULT_DATA = os.path.join(REPO_ROOT, "tasks", "data", "glue")
SYSTEMS = {
    "train": ("bert_keras", "keras_hub", "torch"),
    "infer": ("bert_keras", "keras_hub", "torch"),
    "sst2": ("bert_keras", "keras_hub", "torch"),
    "pretrain": ("bert_keras", "torch"),
}


DEFAULT_CURVES = os.path.join(REPO_ROOT, "benchmarks", "curves.json")
DEFAULT_PLOTS = os.path.join(REPO_ROOT, "docs", "images")


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
    parser.add_argument(
        "--systems",
        nargs="+",
        choices=curves.ALL_SYSTEMS,
        default=list(curves.ALL_SYSTEMS),
        help="measure only these (default: every system of each workload)",
    )
    parser.add_argument(
        "--curves", action="store_true", help="run the cost-curve plan instead"
    )
    parser.add_argument(
        "--curve-kinds", nargs="+", choices=curves.KINDS, default=list(curves.KINDS)
    )
    # Smoke runs of the script: these shapes for every kind, large included.
    parser.add_argument(
        "--curve-shapes",
        nargs="+",
        choices=sorted(workloads.SHAPES),
        default=None,
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--large-batch", type=int, default=8, help="batch of the large kind"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="--curves: skip the runs already in --output",
    )
    parser.add_argument("--plot-dir", default=DEFAULT_PLOTS)
    parser.add_argument(
        "--plot-only", metavar="FILE", default=None, help="redraw FILE's curves"
    )
    parser.add_argument(
        "--output", default=None, help="default: compare.json, with --curves "
        "benchmarks/curves.json",
    )  # fmt: skip
    flags.add_work_dir(parser)
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = DEFAULT_CURVES if args.curves else "compare.json"
    if "sst2" in args.workloads and args.model is None:
        args.model = flags.default_model()
    return args


# === Running workers ===


def measure_peaks(args, work_dir, runs, save, precisions=None, done=()):
    """The faster square matrix product per precision, over the runs of this
    call and those already in `runs`; runs whose key is in `done` are kept."""
    peaks = {}
    for precision in precisions or args.precisions:
        for repeat in range(args.repeats):
            for system in processes.in_turn(("bert_keras", "torch"), repeat):
                result = {"kind": "peak", "workload": "peak", "shape": "minilm"}
                result.update(precision=precision, system=system, repeat=repeat)
                if curves.run_key(result) in done:
                    continue
                result = workers.run_worker(
                    system, "peak", "minilm", precision, args, work_dir, len(runs)
                )
                result.update(kind="peak", repeat=repeat)
                runs.append(result)
                save()
        best = max(
            r["flops_per_step"] / r["median_step_seconds"]
            for r in runs
            if r["workload"] == "peak" and r["precision"] == precision
        )
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
    return "\n".join(lines + curves.peak_and_targets(peaks, checks))


# === Cost curves ===


def report(payload):
    """Summaries, checks and the markdown table of a curves results file."""
    peaks = payload.get("peak_flops", {})
    entries = curves.summarize(payload["runs"], peaks)
    checks = curves.targets(entries)
    return entries, checks, curves.format_report(entries, checks, peaks)


def plot_only(args):
    with open(args.plot_only, encoding="utf-8") as handle:
        payload = json.load(handle)
    entries, checks, text = report(payload)
    print(text)
    for path in curves.plot(entries, args.plot_dir):
        print(f"wrote {path}")
    return all(ok for _, _, ok in checks)


def run_curves(args):
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="curves_")
    os.makedirs(work_dir, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "work_dir"}
    if args.resume and os.path.isfile(args.output):
        with open(args.output, encoding="utf-8") as handle:
            payload = json.load(handle)
        payload.setdefault("resumed", []).append(results.header(settings))
    else:
        payload = {**results.header(settings), "runs": []}
    runs = payload["runs"]
    done = {curves.run_key(run) for run in runs}

    def save():
        results.write_json(args.output, payload)

    points = curves.plan(
        args.curve_kinds,
        args.shapes,
        args.precisions,
        args.large_batch,
        args.curve_shapes,
    )
    precisions = list(args.precisions)
    if "fp32" not in precisions and any(
        "onnxruntime" in curves.systems_of(p, args.systems) for p in points
    ):
        precisions.append("fp32")  # onnxruntime's MFU: it runs float32
    peaks = measure_peaks(args, work_dir, runs, save, precisions, done)
    payload["peak_flops"] = {**payload.get("peak_flops", {}), **peaks}
    save()
    for number, point in enumerate(points, 1):
        systems = curves.systems_of(point, args.systems)
        point_args = copy.copy(args)
        point_args.batch_size = point.batch_size  # the point's, not the flags'
        point_args.seq_length = point.seq_length
        for repeat in range(args.repeats):
            for system in processes.in_turn(systems, repeat):
                fields = {**point._asdict(), "system": system, "repeat": repeat}
                if curves.run_key(fields) in done:
                    continue
                onnx_path = None
                if system == "onnxruntime":
                    onnx_path = workers.export_onnx(
                        point.shape, args, work_dir, payload
                    )
                result = workers.run_worker(
                    system, point.workload, point.shape, point.precision,
                    point_args, work_dir, len(runs), onnx_path,
                )  # fmt: skip
                result.update(kind=point.kind, repeat=repeat)
                runs.append(result)
                save()
                print(
                    f"[{number}/{len(points)}] {curves.label(point._asdict())} "
                    f"{system} (repeat {repeat + 1}/{args.repeats}): "
                    f"{1000 * result['median_step_seconds']:.1f} ms/step, "
                    f"peak RSS {result['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
    entries, checks, text = report(payload)
    payload["table"] = entries
    payload["markdown"] = text
    payload["targets"] = [
        {"target": name, "measured": value, "pass": ok} for name, value, ok in checks
    ]
    save()
    print()
    print(text)
    for path in curves.plot(entries, args.plot_dir):
        print(f"wrote {path}")
    return all(ok for _, _, ok in checks)


def main(argv=None):
    args = parse_args(argv)
    if args.plot_only:
        return plot_only(args)
    if args.curves:
        return run_curves(args)
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
                systems = [s for s in SYSTEMS[workload] if s in args.systems]
                for repeat in range(repeats):
                    for system in processes.in_turn(systems, repeat):
                        result = workers.run_worker(
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
