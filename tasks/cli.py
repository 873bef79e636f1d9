"""Command-line pieces the task modules share: training flags and logging."""

import logging
import os


def add_training_arguments(
    parser, *, epochs, batch_size, eval_batch_size, learning_rate, max_seq_length
):
    """Adds the fine-tuning flags every task takes, with task-specific defaults.

    Flags: --epochs --batch-size --eval-batch-size --learning-rate
    --max-seq-length --warmup-ratio --weight-decay --seed --max-train-samples
    --max-eval-samples --mixed-precision --push-to-hub --verbose.
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


def check_training_arguments(parser, args, positive=()):
    """Rejects non-positive sizes/rates and a warmup ratio outside [0, 1]."""
    names = ("epochs", "batch_size", "learning_rate", "max_seq_length", *positive)
    for name in names:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.warmup_ratio <= 1:
        parser.error("--warmup-ratio must be in [0, 1]")


def configure_logging():
    """INFO logs for the run's own reports; TensorFlow's C++ chatter muted."""
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
