"""Command-line pieces the task modules share: training flags and logging."""

import logging
import os


def add_training_arguments(
    parser, *, epochs, batch_size, eval_batch_size, learning_rate, max_seq_length
):
    """Adds the fine-tuning flags every task takes, with task-specific defaults.

    Flags: --epochs --batch-size --eval-batch-size --learning-rate
    --max-seq-length --warmup-ratio --weight-decay --seed --max-train-samples
    --max-eval-samples --mixed-precision --push-to-hub --verbose, and the
    strategy flags (`add_strategy_arguments`).
    """
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--eval-batch-size", type=int, default=eval_batch_size)
    parser.add_argument("--learning-rate", type=float, default=learning_rate)
    parser.add_argument("--max-seq-length", type=int, default=max_seq_length)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--max-eval-samples", type=int, default=None)
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="train with Keras' mixed_bfloat16 policy",
    )
    parser.add_argument("--push-to-hub", metavar="REPO_ID", default=None)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    add_strategy_arguments(parser)


def check_training_arguments(parser, args, positive=()):
    """Rejects non-positive sizes/rates and a warmup ratio outside [0, 1]."""
    names = ("epochs", "batch_size", "learning_rate", "max_seq_length", *positive)
    for name in names:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.warmup_ratio <= 1:
        parser.error("--warmup-ratio must be in [0, 1]")


def add_strategy_arguments(parser):
    """Adds --strategy, --tpu and --collective-timeout (docs/distributed.md)."""
    from bert_keras.training.distribute import DEFAULT_COLLECTIVE_TIMEOUT
    from bert_keras.training.distribute import STRATEGIES

    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute strategy; multiworker reads TF_CONFIG. Batch sizes "
        "are global (all workers and devices together)",
    )
    parser.add_argument(
        "--tpu", default=None, help="TPU name or grpc:// address (--strategy tpu)"
    )
    parser.add_argument(
        "--collective-timeout",
        type=float,
        default=DEFAULT_COLLECTIVE_TIMEOUT,
        metavar="SECONDS",
        help="multiworker: a step waiting longer than this for another worker "
        "fails (0: wait forever); a killed worker is detected in about 10 s",
    )


def start_strategy(args):
    """The strategy the flags name; call it before any other TensorFlow work."""
    from bert_keras.training.distribute import make_strategy

    return make_strategy(
        args.strategy, collective_timeout=args.collective_timeout, tpu=args.tpu
    )


# Flags that may change between a run and its resume: not the run's settings.
RESUMABLE_FLAGS = ("verbose", "strategy", "tpu", "collective_timeout")


def configure_logging():
    """INFO logs for the run's own reports; TensorFlow's C++ chatter muted."""
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # tf.distribute logs every collective it builds at INFO.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


COMMANDS = {
    "glue": "fine-tune and evaluate on a GLUE task",
    "squad": "fine-tune and evaluate on SQuAD v1.1 / v2.0",
    "pretrain": "pretrain with masked LM and next-sentence prediction",
    "demo": "fine-tune all-MiniLM-L6-v2 on the shipped SST-2 sample",
}


def main(argv=None):
    """`bert-keras COMMAND [flags]`: the console entry point of the task CLIs.

    Each command is the module of the same name (`bert-keras glue ...` runs
    what `python -m tasks.glue ...` runs from a checkout).
    """
    import importlib
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:<9} {help}" for name, help in COMMANDS.items()]
        usage = "usage: bert-keras COMMAND [flags]\n\ncommands:\n" + "\n".join(lines)
        if argv and argv[0] in ("-h", "--help"):
            print(usage)
            return 0
        received = argv[0] if argv else "nothing"
        print(f"{usage}\n\nbert-keras: unknown command. Received: {received}")
        return 2
    module = importlib.import_module(f"{__package__}.{argv[0]}")
    # The task mains return their results (falsy when the run failed).
    return 0 if module.main(argv[1:]) else 1
