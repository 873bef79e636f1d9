"""What the benchmark scripts share: flags, child processes, results, the torch loop.

A library for the scripts in `benchmarks/`, which import it as `harness`
(Python puts a script's own folder on `sys.path`). No module here imports
torch, transformers or TensorFlow at import time: the TensorFlow workers of
`compare_worker.py` must never load torch.
"""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
