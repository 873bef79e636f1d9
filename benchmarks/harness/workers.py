"""`compare_worker.py`, the process every speed measurement runs in, and the
ONNX file of transformers' model its `onnxruntime` peer runs."""

import json
import os
import sys

from harness import REPO_ROOT
from harness import processes

WORKER = os.path.join(REPO_ROOT, "benchmarks", "compare_worker.py")


def export_onnx(shape, args, work_dir, payload):
    """transformers' classifier of `shape` as ONNX in `work_dir` (once)."""
    path = os.path.join(work_dir, f"bert_{shape}.onnx")
    if os.path.isfile(path):
        return path
    output = os.path.join(work_dir, f"export_{shape}.json")
    command = [
        sys.executable, WORKER, "--system", "torch", "--workload", "export_onnx",
        "--shape", shape, "--precision", "fp32", "--batch-size", "2",
        "--seq-length", "32", "--threads", str(args.threads),
        "--onnx-path", path, "--output", output,
    ]  # fmt: skip
    print(f"exporting {shape} to ONNX", flush=True)
    processes.run_logged(
        command, output.replace(".json", ".log"), f"ONNX export {shape}", args.threads
    )
    with open(output, encoding="utf-8") as handle:
        result = json.load(handle)
    payload.setdefault("exports", []).append(
        {key: result[key] for key in ("shape", "onnx_bytes", "wall_seconds")}
    )
    return path
