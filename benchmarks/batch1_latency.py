"""Single-request latency: `bk.Predictor` on TensorFlow and on ONNX Runtime.

    .venv/bin/python benchmarks/batch1_latency.py [--shape minilm]
        [--precision fp32] [--repeats 5] [--steps 60] [--warmup 5]
        [--systems ...] [--threads 2] [--output batch1_latency.json]
        [--work-dir DIR]

A sequence classifier of `--shape` (random weights) at batch 1 x 128, ids in,
logits out as numpy, through `benchmarks/compare_worker.py --workload infer`
(the cost curves' workers, so the same method and peers):

- `bert_keras`: `bk.Predictor(model)` (TensorFlow);
- `bert_keras_onnxruntime`: `bk.Predictor(model, runtime="onnxruntime")`,
  the bert_keras model converted by tf2onnx once, run by ONNX Runtime;
- `onnxruntime`: transformers' model exported with `torch.onnx.export`
  (the curves' ONNX Runtime peer);
- `torch`, `torch_compile`, `keras_hub` when listed in `--systems`.

Every run is a fresh process pinned to `--threads`; the systems take turns
going first; each run times `--steps` calls after `--warmup` and reports their
median; the table gives the median over `--repeats` runs and each run's
median, and the ratio of each bert_keras runtime to the fastest peer.
"""

import argparse
import os
import statistics
import tempfile

from harness import flags
from harness import processes
from harness import results
from harness import workers

BERT_KERAS = ("bert_keras", "bert_keras_onnxruntime")
PEERS = ("onnxruntime", "torch", "torch_compile", "keras_hub")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("minilm", "base"), default="minilm")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--systems",
        nargs="+",
        choices=BERT_KERAS + PEERS,
        default=["bert_keras", "bert_keras_onnxruntime", "onnxruntime"],
    )
    flags.add_threads(parser)
    flags.add_work_dir(parser)
    parser.add_argument("--output", default="batch1_latency.json")
    args = parser.parse_args(argv)
    args.batch_size, args.seq_length, args.masked_positions = 1, 128, 20
    if "bert_keras_onnxruntime" in args.systems and args.precision != "fp32":
        parser.error("bert_keras_onnxruntime runs float32 only: --precision fp32")
    return args


def run(system, args, work_dir, index, onnx_path):
    if system == "bert_keras_onnxruntime":
        return workers.run_worker(
            "bert_keras", "infer", args.shape, args.precision, args, work_dir,
            index, extra_argv=["--runtime", "onnxruntime"],
        )  # fmt: skip
    return workers.run_worker(
        system, "infer", args.shape, args.precision, args, work_dir, index,
        onnx_path=onnx_path if system == "onnxruntime" else None,
    )  # fmt: skip


def main(argv=None):
    args = parse_args(argv)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="batch1_")
    os.makedirs(work_dir, exist_ok=True)
    payload = results.header(
        {
            key: getattr(args, key)
            for key in ("shape", "precision", "repeats", "steps", "warmup")
        }
        | {"systems": args.systems, "threads": args.threads, "batch x seq": "1x128"}
    )
    onnx_path = None
    if "onnxruntime" in args.systems:
        onnx_path = workers.export_onnx(args.shape, args, work_dir, payload)
    runs = []
    for repeat in range(args.repeats):
        for system in processes.in_turn(args.systems, repeat):
            result = run(system, args, work_dir, len(runs), onnx_path)
            row = {
                "system": system,
                "repeat": repeat,
                "median_ms": 1000 * result["median_step_seconds"],
                "peak_rss_mib": result["peak_rss_mib"],
            }
            if "made_seconds" in result:
                row["made_seconds"] = result["made_seconds"]
            runs.append(row)
            print(
                f"{system} (repeat {repeat + 1}): {row['median_ms']:.2f} ms", flush=True
            )
    table = {}
    for system in args.systems:
        medians = [r["median_ms"] for r in runs if r["system"] == system]
        table[system] = {"median_ms": statistics.median(medians), "runs_ms": medians}
    peers = [s for s in args.systems if s in PEERS]
    if peers:
        fastest = min(peers, key=lambda s: table[s]["median_ms"])
        for system in (s for s in args.systems if s in BERT_KERAS):
            table[system]["fastest_peer"] = fastest
            table[system]["ratio_to_fastest_peer"] = (
                table[system]["median_ms"] / table[fastest]["median_ms"]
            )
    payload.update(runs=runs, table=table)
    if args.work_dir:
        payload["command"] = payload["command"].replace(args.work_dir, "WORK_DIR")
    results.write_json(args.output, payload)
    print(f"\n| {args.shape} {args.precision} batch 1 x 128 | median ms | runs |")
    print("|---|---:|---|")
    for system, row in table.items():
        runs_ms = ", ".join(f"{ms:.2f}" for ms in row["runs_ms"])
        ratio = row.get("ratio_to_fastest_peer")
        note = f" ({ratio:.2f} of {row['fastest_peer']})" if ratio else ""
        print(f"| {system}{note} | {row['median_ms']:.2f} | {runs_ms} |")
    return payload


if __name__ == "__main__":
    main()
