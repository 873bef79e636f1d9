"""LoRA flags of the task CLIs: fine-tune low-rank adapters instead of every weight.

    python -m tasks.glue ... --lora-rank 8 [--lora-alpha 16] \\
        [--lora-target-modules query value] [--lora-dropout 0.1]

The flags are PEFT's `LoraConfig` fields (`r`, `lora_alpha`,
`target_modules`, `lora_dropout`) with PEFT's defaults; `bert_keras.lora`
does the work (docs/lora.md). OUT stays an ordinary checkpoint, the adapters
merged into its kernels (transformers and the other task CLIs load it as
any), and OUT/adapter holds them in PEFT's format (`adapter_config.json`,
`adapter_model.safetensors`), which `peft.PeftModel.from_pretrained` opens on
the base model. A killed run resumes with its adapters: `ResumableCheckpoint` backs up
the LoRA layers' base kernels and factors.
"""

import logging
import os
import re

import numpy as np

from .cli import AT_LEAST_ONE
from .cli import POSITIVE
from .cli import check_flags
from .cli import flag_name

ADAPTER_DIR = "adapter"
# PEFT's LoraConfig defaults (peft 0.21): lora_alpha=8, lora_dropout=0.0.
DEFAULT_ALPHA = 8
DEFAULT_DROPOUT = 0.0
# bert_keras.enable_lora's default, PEFT's choice for BERT (q and v projections).
DEFAULT_TARGET_MODULES = ("query", "value")
# PEFT's shorthand for every Linear but the output head; in BERT's module
# names every such Linear is one of these (the head is in modules_to_save).
ALL_LINEAR = "all-linear"
ALL_LINEAR_MODULES = ("query", "key", "value", "dense")
LORA_FLAGS = ("lora_rank", "lora_alpha", "lora_target_modules", "lora_dropout")
# A module name or its dotted end: "query", "attention.output.dense".
_MODULE_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
_PROBABILITY_BELOW_ONE = (
    lambda value: 0 <= value < 1,
    "a number in [0, 1) (PEFT's lora_dropout)",
)
logger = logging.getLogger("tasks.lora_cli")


def add_lora_arguments(parser):
    """Adds --lora-rank, --lora-alpha, --lora-target-modules and --lora-dropout.

    `check_lora_arguments` checks them once parsed. LoRA is off unless
    --lora-rank is given.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> add_lora_arguments(parser)
    >>> args = parser.parse_args(["--lora-rank", "8"])
    >>> check_lora_arguments(parser, args)
    >>> args.lora_alpha, args.lora_target_modules
    (8, ['query', 'value'])
    """
    group = parser.add_argument_group(
        "LoRA", "train low-rank adapters instead of every weight (docs/lora.md)"
    )
    group.add_argument(
        "--lora-rank",
        type=int,
        default=None,
        metavar="R",
        help="fine-tune with LoRA adapters of rank R (PEFT's r); OUT gets the "
        f"merged checkpoint, OUT/{ADAPTER_DIR} the PEFT adapter (default: off, "
        "full fine-tuning)",
    )
    group.add_argument(
        "--lora-alpha",
        type=float,
        default=None,
        metavar="ALPHA",
        help="the adapters' output is scaled by ALPHA / R (PEFT's lora_alpha; "
        f"default: {DEFAULT_ALPHA}, PEFT's)",
    )
    group.add_argument(
        "--lora-target-modules",
        nargs="+",
        default=None,
        metavar="NAME",
        help="Hugging Face module names that get adapters, matched as PEFT does "
        "(a module whose name is NAME or ends with .NAME, e.g. query key value "
        f"attention.output.dense; commas also separate), or {ALL_LINEAR} "
        f"(default: {' '.join(DEFAULT_TARGET_MODULES)})",
    )
    group.add_argument(
        "--lora-dropout",
        type=float,
        default=None,
        metavar="P",
        help="dropout on the adapters' input in training (PEFT's lora_dropout; "
        f"default: {DEFAULT_DROPOUT})",
    )


def check_lora_arguments(parser, args, training=True):
    """Refuses bad LoRA flags; fills in the defaults when LoRA is on.

    With --lora-rank, unset flags get PEFT's defaults and
    `args.lora_target_modules` becomes a list of names; without it, every
    LoRA flag stays None (so runs without LoRA record the same settings as
    before these flags existed).

    Args:
        parser: the `argparse.ArgumentParser`; a refusal is its `error` (exit 2).
        args: the parsed flags.
        training: bool, whether the command trains (LoRA needs training).
    """
    given = [name for name in LORA_FLAGS[1:] if getattr(args, name) is not None]
    if args.lora_rank is None:
        if given:
            flags = ", ".join(flag_name(name) for name in given)
            parser.error(
                f"{flags} only apply with --lora-rank: without it the run is a "
                "full fine-tuning. Pass --lora-rank R (e.g. 8) to train LoRA "
                f"adapters, or drop {flags}. Received: {flags} without --lora-rank"
            )
        return
    if not training:
        parser.error(
            "--lora-rank trains adapters, but this run only evaluates (no "
            "training data). Give training data, or drop the LoRA flags to "
            f"evaluate. Received: --lora-rank {args.lora_rank}"
        )
    check_flags(
        parser,
        args,
        {
            "lora_rank": AT_LEAST_ONE,
            "lora_alpha": POSITIVE,
            "lora_dropout": _PROBABILITY_BELOW_ONE,
        },
    )
    if args.lora_alpha is None:
        args.lora_alpha = DEFAULT_ALPHA
    elif args.lora_alpha.is_integer():
        args.lora_alpha = int(args.lora_alpha)  # adapter_config.json: 16, not 16.0
    if args.lora_dropout is None:
        args.lora_dropout = DEFAULT_DROPOUT
    args.lora_target_modules = _target_modules(parser, args.lora_target_modules)


def _target_modules(parser, values):
    if values is None:
        return list(DEFAULT_TARGET_MODULES)
    received = "Received: --lora-target-modules " + " ".join(values)
    names = [name.strip() for value in values for name in value.split(",")]
    names = [name for name in names if name]
    if ALL_LINEAR in names:
        if names != [ALL_LINEAR]:
            parser.error(
                f"--lora-target-modules {ALL_LINEAR} already names every Linear "
                f"layer. Expected {ALL_LINEAR} alone, or a list of module names. "
                + received
            )
        return list(ALL_LINEAR_MODULES)
    bad = [name for name in names if not _MODULE_NAME.fullmatch(name)]
    if not names or bad:
        parser.error(
            "--lora-target-modules takes Hugging Face module names (letters, "
            "digits, _ and dots), not regexes or paths. Expected e.g. "
            "--lora-target-modules query value, or attention.output.dense "
            f"for one kind of layer. {received}"
        )
    return list(dict.fromkeys(names))


def lora_hyperparameters(args):
    """The LoRA flags for results.json and the model card ({} when LoRA is off)."""
    if args.lora_rank is None:
        return {}
    return {name: getattr(args, name) for name in LORA_FLAGS}


def apply_lora(model, args, resume_callbacks):
    """Enables LoRA on `model` as the flags ask (call before `compile`).

    Args:
        model: the freshly loaded bert_keras model (base weights, no LoRA).
        args: the checked flags (`check_lora_arguments`).
        resume_callbacks: the callbacks of `tasks.resume.resumable`.

    Returns:
        the callbacks to train with (`resume_callbacks`, as a new list: the
        backup keeps LoRA layers as they are, see `ResumableCheckpoint`).

    Example:

    >>> resume_callbacks = apply_lora(model, args, resume_callbacks)
    >>> model.compile(optimizer=optimizer)
    """
    if args.lora_rank is None:
        return resume_callbacks
    import bert_keras as bk

    modules = bk.enable_lora(
        model,
        rank=args.lora_rank,
        alpha=args.lora_alpha,
        target_modules=args.lora_target_modules,
        dropout=args.lora_dropout,
    )
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    logger.info(
        "LoRA rank %d, alpha %s on %d layers: %d of %d parameters trainable (%.2f%%)",
        args.lora_rank,
        args.lora_alpha,
        len(modules),
        trainable,
        total,
        100 * trainable / total,
    )
    return list(resume_callbacks)


def save_model(model, tokenizer, args, directory):
    """The run's checkpoint in `directory`, with OUT/adapter when training LoRA."""
    model.save_pretrained(directory, tokenizer=tokenizer)
    save_adapter(model, args, directory)


def save_adapter(model, args, out):
    """Writes the PEFT adapter to OUT/adapter (nothing when LoRA is off).

    `save_pretrained` has already written the merged checkpoint to OUT: a
    LoRA Dense layer's kernel reads as `W + alpha / r A B`.

    Returns:
        list of the paths written.
    """
    if args.lora_rank is None:
        return []
    import bert_keras as bk

    return bk.save_lora_adapter(
        model, os.path.join(out, ADAPTER_DIR), base_model_name(args.model)
    )


def base_model_name(model):
    """adapter_config.json's base_model_name_or_path: never a local absolute path.

    A Hub id as given; a local directory by its last part: its path means
    nothing on another machine, its name still tells a reader the base.
    """
    if os.path.isdir(model):
        return os.path.basename(os.path.normpath(os.path.abspath(model)))
    return model
