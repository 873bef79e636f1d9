"""Fine-tune a BERT checkpoint on a GLUE task with PyTorch `transformers`.

The command line of `harness.torch_glue`, which holds the loop because
`compare_worker.py` runs it in its own process; see that module for what it
does and writes.

    python benchmarks/torch_glue.py --task sst2 --model NAME_OR_DIR \\
        --output-dir OUT [--data-dir DIR] [--mixed-precision] [--num-threads 2]
"""

import sys

from harness import torch_glue

if __name__ == "__main__":
    sys.exit(0 if torch_glue.main() else 1)
