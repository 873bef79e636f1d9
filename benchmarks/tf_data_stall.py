"""How long destroying an exhausted tf.data iterator takes, with and without autotuning.

Why `to_tf_dataset` turns tf.data autotuning off: the iterator's destructor
can wait out the autotuning thread's timed sleep (see benchmarks/RESULTS.md).
This script shows it with plain tf.data: an epoch of `--batches` batches
consumed at a training-like pace, then the iterator is deleted.

    python benchmarks/tf_data_stall.py [--runs 3] [--batches 250] [--pause 0.2]

Each run is its own process (the stall depends on the thread's state); the
script prints the deletion time of every run, autotuning on and off,
alternating.
"""

import argparse
import json
import subprocess
import sys
import time


def one_run(autotune, batches, pause):
    import tensorflow as tf

    ds = (
        tf.data.Dataset.range(batches * 4)
        .shuffle(batches * 4, seed=0)
        .map(lambda i: i * 2, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(4)
        .prefetch(tf.data.AUTOTUNE)
    )
    options = tf.data.Options()
    options.autotune.enabled = autotune
    iterator = iter(ds.with_options(options))
    for _ in iterator:
        time.sleep(pause)  # the training step
    start = time.perf_counter()
    del iterator
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=250)
    parser.add_argument("--pause", type=float, default=0.2)
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seconds = one_run(args.child == "on", args.batches, args.pause)
        print(json.dumps(seconds))
        return
    results = {"on": [], "off": []}
    for _ in range(args.runs):
        for mode in ("on", "off"):
            child = subprocess.run(
                [sys.executable, __file__, "--child", mode,
                 "--batches", str(args.batches), "--pause", str(args.pause)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            seconds = json.loads(child.stdout.strip().splitlines()[-1])
            results[mode].append(seconds)
            print(f"autotune {mode:3s}: deleting the iterator took {seconds:6.2f} s")
    for mode, values in results.items():
        print(f"autotune {mode}: " + ", ".join(f"{v:.2f}" for v in values) + " s")


if __name__ == "__main__":
    main()
