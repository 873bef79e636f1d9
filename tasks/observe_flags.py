"""The flags of observable runs (`tasks.observe`), as transformers names them.

--logging-steps --eval-steps --save-steps --save-total-limit
--metric-for-best-model --greater-is-better --load-best-model-at-end
--early-stopping-patience --early-stopping-threshold --report-to, with
`TrainingArguments` semantics: a step count, or a fraction (< 1) of all
optimizer updates.

Example:

>>> add_observe_arguments(parser)
>>> args = parser.parse_args(argv)
>>> check_observe_arguments(parser, args, ("accuracy", "loss"), "accuracy")
>>> args.metric_for_best_model
'eval_accuracy'
"""

import math


def add_observe_arguments(parser, *, save_steps=True, evaluation=True):
    """Adds the logging, evaluation, checkpoint and early-stopping flags.

    Flags (transformers `TrainingArguments` semantics): --logging-steps
    --eval-steps --save-steps --save-total-limit --metric-for-best-model
    --greater-is-better --load-best-model-at-end --early-stopping-patience
    --early-stopping-threshold --report-to. `check_observe_arguments` checks
    them; `resolve_steps` turns a ratio into steps.

    Args:
        parser: the `argparse.ArgumentParser`.
        save_steps: bool, whether to add --save-steps and --save-total-limit
            (a command with its own checkpointing leaves them out).
        evaluation: bool, whether to add the evaluation flags (--eval-steps,
            best model, early stopping); a command without a dev set leaves
            them out.
    """
    group = parser.add_argument_group("logging, evaluation and checkpoints")
    group.add_argument(
        "--logging-steps",
        type=float,
        default=None,
        metavar="N",
        help="log the train loss (mean since the last log) and learning rate "
        "every N optimizer updates to TensorBoard (OUT/runs/), trainer_state.json "
        "and training_curves.png; a value below 1 is a fraction of all updates "
        "(default: a tenth of an epoch, at least 1)",
    )
    if evaluation:
        group.add_argument(
            "--eval-steps",
            type=float,
            default=None,
            metavar="N",
            help="evaluate on the dev set every N optimizer updates; a value "
            "below 1 is a fraction of all updates (default: at the end of each "
            "epoch)",
        )
    if save_steps:
        group.add_argument(
            "--save-steps",
            type=float,
            default=None,
            metavar="N",
            help="save OUT/checkpoint-STEP (model, tokenizer, trainer_state.json; "
            "loads with from_pretrained) every N optimizer updates; a value below "
            "1 is a fraction of all updates (default: none; killed runs resume "
            "from the per-epoch backup either way)",
        )
        group.add_argument(
            "--save-total-limit",
            type=int,
            default=None,
            metavar="K",
            help="keep at most K checkpoint-STEP directories, deleting the oldest; "
            "the newest and the best (--load-best-model-at-end) are always kept "
            "(default: keep all)",
        )
    if evaluation:
        add_best_model_arguments(group)
    group.add_argument(
        "--report-to",
        choices=("tensorboard", "none"),
        default="tensorboard",
        help="where step logs go besides trainer_state.json: TensorBoard event "
        "files in OUT/runs/, or nowhere (default: %(default)s)",
    )


def add_best_model_arguments(group):
    """--metric-for-best-model, --load-best-model-at-end and early stopping."""
    group.add_argument(
        "--metric-for-best-model",
        default=None,
        metavar="NAME",
        help="evaluation metric that picks the best model and drives early "
        "stopping, e.g. accuracy, f1, loss (the eval_ prefix is optional) "
        "(default: the task's main metric)",
    )
    group.add_argument(
        "--greater-is-better",
        choices=("true", "false"),
        default=None,
        help="whether a higher --metric-for-best-model is better (default: true, "
        "false for a metric ending in loss)",
    )
    group.add_argument(
        "--load-best-model-at-end",
        action="store_true",
        help="after training, keep the weights of the best evaluation (by "
        "--metric-for-best-model) instead of the last: OUT, its scores and "
        "predictions are of that model (kept in memory, one copy of the weights)",
    )
    group.add_argument(
        "--early-stopping-patience",
        type=int,
        default=None,
        metavar="P",
        help="stop training after P evaluations in a row without improving "
        "--metric-for-best-model by more than --early-stopping-threshold "
        "(default: never stop early)",
    )
    group.add_argument(
        "--early-stopping-threshold",
        type=float,
        default=0.0,
        metavar="DELTA",
        help="the least change of --metric-for-best-model that counts as an "
        "improvement for --early-stopping-patience (default: %(default)s)",
    )


def check_observe_arguments(
    parser, args, metrics=(), default_metric=None, evaluates=True
):
    """Refuses bad observe flags; resolves --metric-for-best-model in place.

    Afterwards `args.metric_for_best_model` is the full log key ("eval_f1")
    and `args.greater_is_better` a bool.

    Args:
        parser: the `argparse.ArgumentParser`; a refusal is its `error`.
        args: the parsed flags.
        metrics: the metric names an evaluation of this run gives (without
            the eval_ prefix), e.g. ("accuracy", "f1", "loss").
        default_metric: str, the task's main metric (one of `metrics`).
        evaluates: bool, whether the run evaluates during training at all
            (e.g. tasks.squad without --eval-file does not).
    """
    for name in ("logging_steps", "eval_steps", "save_steps"):
        value = getattr(args, name, None)
        if value is None:
            continue
        if not (math.isfinite(value) and value > 0) or (
            value > 1 and value != int(value)
        ):
            flag = "--" + name.replace("_", "-")
            parser.error(
                f"{flag} must be a whole number of optimizer updates >= 1, or a "
                f"fraction of all updates in (0, 1). Received: {flag} {value:g}"
            )
    limit = getattr(args, "save_total_limit", None)
    if limit is not None and limit < 1:
        parser.error(
            "--save-total-limit must be at least 1 (leave it out to keep every "
            f"checkpoint). Received: --save-total-limit {limit}"
        )
    if not hasattr(args, "metric_for_best_model"):
        return  # added with evaluation=False
    patience = args.early_stopping_patience
    if patience is not None and patience < 1:
        parser.error(
            "--early-stopping-patience must be at least 1 evaluation (leave it "
            f"out to never stop early). Received: --early-stopping-patience {patience}"
        )
    if not math.isfinite(args.early_stopping_threshold) or (
        args.early_stopping_threshold < 0
    ):
        parser.error(
            "--early-stopping-threshold must be a finite number >= 0. Received: "
            f"--early-stopping-threshold {args.early_stopping_threshold}"
        )
    if not evaluates:
        for flag, given in (
            ("--early-stopping-patience", patience is not None),
            ("--load-best-model-at-end", args.load_best_model_at_end),
            ("--eval-steps", args.eval_steps is not None),
        ):
            if given:
                parser.error(
                    f"{flag} needs evaluations during training, and this run has "
                    "none (no training or no evaluation data). Give both, or "
                    f"drop {flag}."
                )
    name = args.metric_for_best_model or default_metric
    short = name[len("eval_") :] if name.startswith("eval_") else name
    if short not in metrics:
        parser.error(
            f"--metric-for-best-model {name} is not a metric this run's "
            f"evaluation gives. Expected one of: {', '.join(metrics)} (the "
            f"eval_ prefix is optional). Received: --metric-for-best-model {name}"
        )
    args.metric_for_best_model = "eval_" + short
    if args.greater_is_better is None:
        args.greater_is_better = not short.endswith("loss")
    elif isinstance(args.greater_is_better, str):
        args.greater_is_better = args.greater_is_better == "true"


def resolve_steps(value, total_steps, default=None):
    """Steps of a step flag: an int as is, a fraction of `total_steps` rounded up."""
    if value is None:
        return default
    if value < 1:
        return max(1, math.ceil(value * total_steps))
    return int(value)


def default_logging_steps(updates_per_epoch):
    """A tenth of an epoch (at least 1 update): ten points per epoch on the curves."""
    return max(1, math.ceil(updates_per_epoch / 10))
