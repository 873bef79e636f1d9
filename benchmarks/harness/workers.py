"""`compare_worker.py`, the process every speed measurement runs in, and the
ONNX file of transformers' model its `onnxruntime` peer runs."""

import json
import os
import sys

from harness import REPO_ROOT
from harness import flags
from harness import processes

WORKER = os.path.join(REPO_ROOT, "benchmarks", "compare_worker.py")


def run_worker(
    system,
    workload,
    shape,
    precision,
    args,
    work_dir,
    index,
    onnx_path=None,
    extra_argv=(),
):
    """One `compare_worker.py` process; its results JSON, with the load average.

    `args` carries the step flags and `--threads`; `extra_argv` goes on the
    worker's command line as it is (e.g. `["--runtime", "onnxruntime"]`)."""
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
    if onnx_path is not None:
        command += ["--onnx-path", onnx_path]
    command += list(extra_argv)
    log_path = output.replace(".json", ".log")
    processes.run_logged(command, log_path, f"{system} {workload}", args.threads)
    with open(output, encoding="utf-8") as handle:
        result = json.load(handle)
    result["load_average"] = os.getloadavg()[0]
    return result


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
