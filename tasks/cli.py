"""Command-line pieces the task modules share: training flags and logging."""

import argparse
import logging
import math
import os


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each flag's default, unless its help already says it.

    A flag whose default is None or off (store_true) explains in its own help
    what leaving it out does; "(default: None)" would say nothing.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        # `is`: a default of 0 or 0.0 is shown (0.0 == False).
        if "default" in text or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


def add_training_arguments(
    parser, *, epochs, batch_size, eval_batch_size, learning_rate, max_seq_length
):
    """Adds the fine-tuning flags every task takes, with task-specific defaults.

    Flags: --epochs --batch-size --eval-batch-size --learning-rate
    --max-seq-length --warmup-ratio --weight-decay
    --gradient-accumulation-steps --layer-lr-decay --seed --group-by-length
    --max-train-samples
    --max-eval-samples --mixed-precision --push-to-hub --verbose
    --overwrite-output-dir (`add_output_arguments`), and the
    strategy flags (`add_strategy_arguments`). `training_optimizer` builds
    the optimizer they describe.
    """
    parser.add_argument(
        "--epochs", type=int, default=epochs, help="passes over the training set"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help="training examples per batch (global: all devices and workers)",
    )
    parser.add_argument(
        "--eval-batch-size",
        type=int,
        default=eval_batch_size,
        help="examples per batch when predicting the dev set",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=learning_rate,
        help="peak AdamW learning rate, reached after the warmup",
    )
    parser.add_argument(
        "--max-seq-length",
        type=int,
        default=max_seq_length,
        help="tokens per example, special tokens included; longer text is cut",
    )
    parser.add_argument(
        "--warmup-ratio",
        type=float,
        default=0.1,
        help="fraction of the updates over which the learning rate rises "
        "linearly from 0 (then it decays linearly to 0)",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=0.01,
        help="AdamW decoupled weight decay (not on biases and LayerNorm)",
    )
    parser.add_argument(
        "--gradient-accumulation-steps",
        type=int,
        default=1,
        metavar="N",
        help="update the weights every N batches with their mean gradient: the "
        "update of one batch of N * --batch-size; the schedule, warmup and "
        "the steps reported count updates (default: %(default)s, every batch)",
    )
    parser.add_argument(
        "--layer-lr-decay",
        type=float,
        default=1.0,
        metavar="D",
        help="layer-wise learning-rate decay: the head, pooler and top encoder "
        "layer train at --learning-rate, each layer below at D times the one "
        "above, the embeddings at D ** num_layers (default: %(default)s, off)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed of initialization, dropout and shuffling",
    )
    parser.add_argument(
        "--group-by-length",
        action="store_true",
        help="batch training examples of similar length together: less "
        "padding, faster, but other batches than transformers' Trainer "
        "(which does not by default) trains on; see docs/fidelity.md",
    )
    parser.add_argument(
        "--max-train-samples",
        type=int,
        default=None,
        metavar="N",
        help="train on the first N training examples only (default: all)",
    )
    parser.add_argument(
        "--max-eval-samples",
        type=int,
        default=None,
        metavar="N",
        help="evaluate on the first N dev examples only (default: all)",
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="train with Keras' mixed_bfloat16 policy",
    )
    parser.add_argument(
        "--push-to-hub",
        metavar="REPO_ID",
        default=None,
        help="upload the output directory to this Hub repository when done "
        "(default: no upload)",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Keras verbosity: 0 silent, 1 progress bars (training and "
        "evaluation), 2 one line per epoch",
    )
    add_output_arguments(parser)
    add_strategy_arguments(parser)


def check_training_arguments(parser, args, rules=None, min_seq_length=3, layout=""):
    """Refuses, before any work, every training flag that would give nonsense.

    Args:
        parser: the `argparse.ArgumentParser`; a refusal is its `error` (exit 2).
        args: the parsed flags.
        rules: optional `{attribute: (valid, expected)}` for the task's own flags.
        min_seq_length: int, the shortest --max-seq-length that leaves the task
            room for text; `layout` shows why (e.g. "[CLS] A [SEP] B [SEP]").
    """
    check_flags(
        parser,
        args,
        {
            "epochs": AT_LEAST_ONE,
            "batch_size": AT_LEAST_ONE,
            "eval_batch_size": AT_LEAST_ONE,
            "learning_rate": POSITIVE,
            "max_seq_length": AT_LEAST_ONE,
            "warmup_ratio": PROBABILITY,
            "weight_decay": NON_NEGATIVE,
            "gradient_accumulation_steps": AT_LEAST_ONE,
            "layer_lr_decay": DECAY_FACTOR,
            "seed": SEED,
            "max_train_samples": SAMPLES,
            "max_eval_samples": SAMPLES,
            "collective_timeout": NON_NEGATIVE,
            **(rules or {}),
        },
    )
    check_min_seq_length(parser, args.max_seq_length, min_seq_length, layout)
    check_model_positions(parser, args.max_seq_length, args.model, "--model")


def _finite(value):
    # Ints pass whatever their size (math.isfinite overflows on huge ints).
    return isinstance(value, int) or math.isfinite(value)


# Flag rules, `(valid(value), what is expected)`, for `check_flags`.
AT_LEAST_ONE = (lambda value: value >= 1, "at least 1")
NON_NEGATIVE = (
    lambda value: _finite(value) and value >= 0,
    "a finite number >= 0",
)
POSITIVE = (lambda value: _finite(value) and value > 0, "a finite number > 0")
PROBABILITY = (
    lambda value: _finite(value) and 0 <= value <= 1,
    "a finite number in [0, 1]",
)
FINITE = (_finite, "a finite number")
DECAY_FACTOR = (
    lambda value: _finite(value) and 0 < value <= 1,
    "a finite number in (0, 1] (1: no decay)",
)
SEED = (lambda value: 0 <= value < 2**32, "in [0, 2**32 - 1] (NumPy's seed range)")
SAMPLES = (
    lambda value: value >= 1,
    "at least 1 (leave the flag out to use every example)",
)


def training_optimizer(args, batches_per_epoch, num_layers=None):
    """The optimizer the training flags describe, and its number of updates.

    `create_optimizer` with --learning-rate, --warmup-ratio, --weight-decay,
    --gradient-accumulation-steps and --layer-lr-decay; the linear schedule
    runs over `count_updates(batches_per_epoch * --epochs, N)` updates.

    Args:
        args: the parsed flags (`add_training_arguments`).
        batches_per_epoch: int, (global) batches in one epoch.
        num_layers: int or None, the model's encoder layers (for
            --layer-lr-decay; None: found from the variables).

    Returns:
        `(optimizer, total_steps)`.

    Example:

    >>> optimizer, total_steps = training_optimizer(args, len(train_batches))
    >>> model.compile(optimizer=optimizer)
    """
    from bert_keras.training.optimization import count_updates
    from bert_keras.training.optimization import create_optimizer

    steps = args.gradient_accumulation_steps
    total_steps = count_updates(batches_per_epoch * args.epochs, steps)
    optimizer = create_optimizer(
        args.learning_rate,
        total_steps=total_steps,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        gradient_accumulation_steps=steps,
        layer_lr_decay=None if args.layer_lr_decay == 1 else args.layer_lr_decay,
        num_layers=num_layers,
    )
    return optimizer, total_steps


def recipe_record(args):
    """The training recipe a results file records, from `add_training_arguments`
    flags (also what the PyTorch reference benchmarks record)."""
    return {
        "learning_rate": args.learning_rate,
        "train_batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "epochs": args.epochs,
        "max_seq_length": args.max_seq_length,
        "warmup_ratio": args.warmup_ratio,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "max_train_samples": args.max_train_samples,
    }


def flag_name(attribute):
    """The flag of an `argparse` attribute: max_seq_length -> --max-seq-length."""
    return "--" + attribute.replace("_", "-")


def check_flags(parser, args, rules):
    """Refuses the first flag that breaks its rule; flags left at None pass.

    `rules` maps attribute names to `(valid, expected)`, e.g. `POSITIVE`. NaN
    fails every rule: the checks test what a value is, not what it is not.
    """
    for name, (valid, expected) in rules.items():
        value = getattr(args, name)
        if value is not None and not valid(value):
            parser.error(
                f"{flag_name(name)} must be {expected}. "
                f"Received: {flag_name(name)} {value}"
            )


def check_min_seq_length(parser, max_seq_length, minimum, layout):
    """Refuses a --max-seq-length that leaves no text (or disables truncation)."""
    if max_seq_length < minimum:
        parser.error(
            f"--max-seq-length {max_seq_length} leaves no room for the text: "
            f"{layout} needs at least {minimum} tokens. Use --max-seq-length "
            f"{minimum} or more. Received: --max-seq-length {max_seq_length}"
        )


def check_model_positions(parser, max_seq_length, max_positions, source):
    """Refuses a --max-seq-length longer than the model has position embeddings.

    `max_positions` is the model's `max_position_embeddings`, or a --model
    (Hub id or checkpoint dir) to read it from; when its config cannot be read
    here, the model's own loading reports why later.
    """
    if isinstance(max_positions, str):
        max_positions = model_max_positions(max_positions)
    if max_positions is not None and max_seq_length > max_positions:
        parser.error(
            f"--max-seq-length {max_seq_length} is longer than the model's "
            f"max_position_embeddings={max_positions} ({source}): positions past "
            f"it have no embedding. Use --max-seq-length {max_positions} or less. "
            f"Received: --max-seq-length {max_seq_length}"
        )


def model_max_positions(name_or_path):
    """`max_position_embeddings` of a Hub id or checkpoint dir; None if unreadable.

    Only config.json is read (fetched alone for a Hub id, through the Hugging
    Face cache), with the library's size-capped JSON reader.
    """
    import huggingface_hub

    from bert_keras.checkpoints.files import read_json

    try:
        if os.path.isdir(name_or_path):
            path = os.path.join(name_or_path, "config.json")
        else:
            path = huggingface_hub.hf_hub_download(name_or_path, "config.json")
        config = read_json(path, ValueError)
    except Exception:  # missing, offline, not JSON: the model load says why later
        return None
    if not isinstance(config, dict):
        return None
    value = config.get("max_position_embeddings", 512)  # BertConfig's default
    return value if isinstance(value, int) else None


# Common English words with common letters only: any tokenizer meant for
# English text (or trained on an English corpus) encodes them without [UNK].
PROBE_TEXT = "The people said that this was a good time to go home and eat."


def load_tokenizer(name_or_path, flag):
    """`AutoTokenizer.from_pretrained`, refusing one that cannot encode text.

    transformers 5 builds a placeholder tokenizer of 5 special tokens for a
    directory without tokenizer files; everything it encodes is [UNK]. A
    tokenizer that maps most of `PROBE_TEXT` to its unknown token is refused.

    Args:
        name_or_path: str, Hub id or directory.
        flag: str, the flag it came from (e.g. "--model"), for the message.

    Returns:
        the tokenizer.

    Raises:
        ValueError: naming the flag, the path, the vocabulary size and the fix.

    Example:

    >>> tokenizer = load_tokenizer(args.model, "--model")
    """
    import bert_keras as bk

    tokenizer = bk.AutoTokenizer.from_pretrained(name_or_path)
    ids = tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]
    unknown = sum(1 for i in ids if i == tokenizer.unk_token_id)
    if ids and 2 * unknown <= len(ids):
        return tokenizer
    special = len(set(tokenizer.all_special_ids))
    fix = (
        "pass --tokenizer a directory (or Hub id) holding a real tokenizer, or "
        "--vocab-size N instead to train one on the corpus"
        if flag == "--tokenizer"
        else f"save the tokenizer the model was trained with into {name_or_path} "
        "(tokenizer.save_pretrained(...) of its base model)"
    )
    raise ValueError(
        f"{flag} {name_or_path}: its tokenizer cannot encode ordinary text: "
        f"{unknown} of the {len(ids)} pieces of {PROBE_TEXT!r} are the unknown "
        f"token {tokenizer.unk_token!r}; vocabulary of {len(tokenizer)} tokens "
        f"({special} special). A directory without tokenizer files gets such a "
        "placeholder from transformers. Expected tokenizer.json or vocab.txt "
        f"(with tokenizer_config.json) there. To fix: {fix}."
    )


def encoding_fingerprint(dataset, tokenizer, *settings):
    """A `datasets` fingerprint for `dataset.map(<encode with tokenizer>)`.

    Without one, `map` pickles the encode function with its tokenizer to hash
    it (a third of a second of every CLI start). This hashes what decides the
    output instead: the input's fingerprint, the tokenizer's serialized
    state and the caller's settings (include the encode function's version).

    Args:
        dataset: the `datasets.Dataset` to be mapped.
        tokenizer: a transformers fast tokenizer.
        *settings: anything else the encoding depends on (reprs are hashed).

    Returns:
        str, 32 hex digits, for `map(new_fingerprint=...)`.
    """
    import hashlib
    import json

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    # Set by each call's own truncation/padding arguments, not state.
    backend.pop("truncation", None)
    backend.pop("padding", None)
    digest = hashlib.sha256()
    state = (
        dataset._fingerprint,
        type(tokenizer).__name__,
        json.dumps(backend, sort_keys=True),
        tuple(tokenizer.model_input_names),
        tokenizer.truncation_side,
        tokenizer.padding_side,
        tokenizer.model_max_length,
    ) + settings
    for part in state:
        digest.update(repr(part).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def add_output_arguments(parser):
    """Adds --overwrite-output-dir (`tasks.outputs.claim_output_dir`)."""
    parser.add_argument(
        "--overwrite-output-dir",
        action="store_true",
        help="start over in an --output-dir that holds an earlier run of this "
        "command: its outputs, checkpoints and backup are removed first (files "
        "the command does not write are still refused)",
    )


def add_strategy_arguments(parser):
    """Adds --strategy, --tpu and --collective-timeout (docs/distributed.md)."""
    from bert_keras.training.distribute import DEFAULT_COLLECTIVE_TIMEOUT
    from bert_keras.training.distribute import STRATEGIES

    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute strategy; multiworker reads TF_CONFIG. Batch sizes "
        "are global (all workers and devices together) (default: %(default)s)",
    )
    parser.add_argument(
        "--tpu",
        default=None,
        help="TPU name or grpc:// address (--strategy tpu; default: the local TPU)",
    )
    parser.add_argument(
        "--collective-timeout",
        type=float,
        default=DEFAULT_COLLECTIVE_TIMEOUT,
        metavar="SECONDS",
        help="multiworker: a step waiting longer than this for another worker "
        "fails (0: wait forever); a killed worker is detected in about 10 s "
        "(default: %(default)s)",
    )


def start_strategy(args):
    """The strategy the flags name; call it before any other TensorFlow work."""
    from bert_keras.training.distribute import make_strategy

    return make_strategy(
        args.strategy, collective_timeout=args.collective_timeout, tpu=args.tpu
    )


# Flags that may change between a run and its resume: not the run's settings.
RESUMABLE_FLAGS = (
    "verbose",
    "strategy",
    "tpu",
    "collective_timeout",
    # A run started with it resumes without it (the rerun of a kill).
    "overwrite_output_dir",
    # What a run shows, not what it trains (tasks.observe).
    "logging_steps",
    "report_to",
    "save_total_limit",
)


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
    "export": "export a checkpoint as a SavedModel, TFLite or ONNX model",
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
