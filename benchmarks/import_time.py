"""How long `import bert_keras` takes, against TensorFlow's own import.

    .venv/bin/python benchmarks/import_time.py [--runs 5] [--output import_time.json]

Each run is a fresh interpreter timing one import in-process (so interpreter
start-up is not counted); the two imports alternate, run by run. Reports the
medians, bert_keras's extra time over TensorFlow's (target: at most 1 s) and
which heavy packages each import pulled in (target for bert_keras: neither
transformers nor torch).
"""

import argparse
import os
import statistics
import subprocess
import sys

from harness import results

PROBE = """
import sys, time
start = time.perf_counter()
import {module}
seconds = time.perf_counter() - start
heavy = sorted({{"transformers", "torch", "datasets"}} & set(sys.modules))
print(seconds, ",".join(heavy))
"""
MODULES = ("tensorflow", "bert_keras")


def time_import(module):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    seconds, _, heavy = completed.stdout.strip().splitlines()[-1].partition(" ")
    return float(seconds), [name for name in heavy.split(",") if name]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", default="import_time.json")
    args = parser.parse_args(argv)
    times = {module: [] for module in MODULES}
    heavy = {}
    for _ in range(args.runs):
        for module in MODULES:
            seconds, imported = time_import(module)
            times[module].append(round(seconds, 3))
            heavy[module] = imported
    medians = {module: statistics.median(values) for module, values in times.items()}
    extra = medians["bert_keras"] - medians["tensorflow"]
    report = {
        **results.header(vars(args)),
        "seconds": times,
        "median_seconds": medians,
        "bert_keras_extra_seconds": round(extra, 3),
        "heavy_modules_imported": heavy,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), args.output)
    results.write_json(path, report)
    print(
        f"tensorflow {medians['tensorflow']:.2f} s, bert_keras "
        f"{medians['bert_keras']:.2f} s (+{extra:.2f} s); heavy modules: {heavy}"
    )


if __name__ == "__main__":
    main()
