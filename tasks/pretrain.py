"""Pretrain BERT from raw text with masked LM + next-sentence prediction.

    python -m tasks.pretrain --corpus PATH --output-dir OUT \\
        [--vocab-size 8000 | --tokenizer NAME_OR_DIR | --model CKPT] \\
        [--config JSON_OR_DIR] [--mlm-only [--line-by-line]] \\
        --max-steps 2000 --batch-size 32 [--save-steps 200] [--mixed-precision] \\
        [--strategy default|mirrored|multiworker|tpu]

The corpus is BERT's format (sentence per line, blank line between documents)
or WikiText's raw layout (detected from its ` = Title = ` lines): files or a
folder of them. `--model CKPT` continues from a checkpoint's weights and
tokenizer (domain-adaptive pretraining, transformers' run_mlm use case);
`--mlm-only` drops next-sentence prediction, for text without document
structure. A run killed at any point and restarted with the same command
resumes from its last checkpoint (at most `--save-steps` steps lost) and stops
at `--max-steps`. OUT receives the HF checkpoint (`BertForPreTraining`, or
`BertForMaskedLM` with `--mlm-only`), the tokenizer, `results.json`, a model
card and `training_curves.png`.
"""

import argparse
import collections
import glob
import json
import os
import sys
import time

from .cli import AT_LEAST_ONE
from .cli import NON_NEGATIVE
from .cli import POSITIVE
from .cli import PROBABILITY
from .cli import SEED
from .cli import HelpFormatter
from .cli import add_output_arguments
from .cli import add_strategy_arguments
from .cli import check_flags
from .cli import check_min_seq_length
from .cli import check_model_positions
from .cli import load_tokenizer
from .cli import model_max_positions
from .observe_flags import add_observe_arguments
from .observe_flags import check_observe_arguments

SMALL_BERT = {
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tasks.pretrain",
        description=__doc__.splitlines()[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--corpus",
        required=True,
        nargs="+",
        help="text files or folders of them (BERT's format or WikiText's)",
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        help="where the checkpoint, tokenizer and results go; a rerun resumes",
    )
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--vocab-size", type=int, help="train a WordPiece vocabulary of this size"
    )
    start.add_argument(
        "--tokenizer", help="reuse this tokenizer (Hub id or dir); new weights"
    )
    start.add_argument(
        "--model",
        help="continue from this checkpoint (Hub id or dir): its config, weights "
        "and tokenizer; heads it lacks start fresh",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="BertConfig as a JSON string, a config.json file or a checkpoint "
        "dir (not with --model); default: 4 layers, hidden 256, 4 heads, "
        "intermediate 1024",
    )
    parser.add_argument(
        "--mlm-only",
        action="store_true",
        help="masked LM alone, no next-sentence prediction (text without "
        "document structure); OUT is a BertForMaskedLM checkpoint",
    )
    parser.add_argument(
        "--line-by-line",
        action="store_true",
        help="with --mlm-only: each line is one sequence (truncated) instead "
        "of a document's lines packed into --max-seq-length pieces",
    )
    parser.add_argument(
        "--max-seq-length", type=int, default=128, help="tokens per sequence"
    )
    parser.add_argument(
        "--max-predictions-per-seq",
        type=int,
        default=20,
        help="most masked tokens per sequence",
    )
    parser.add_argument(
        "--masked-lm-prob",
        type=float,
        default=0.15,
        help="share of tokens masked (80%% [MASK], 10%% random, 10%% kept)",
    )
    parser.add_argument(
        "--short-seq-prob",
        type=float,
        default=0.1,
        help="share of NSP instances given a shorter random length",
    )
    parser.add_argument(
        "--dupe-factor",
        type=int,
        default=5,
        help="copies of the corpus made into instances, each cut differently",
    )
    parser.add_argument(
        "--whole-word-masking",
        action="store_true",
        help="mask whole words, never part of one",
    )
    parser.add_argument(
        "--max-steps", type=int, default=1000, help="optimizer steps in all"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="global batch")
    parser.add_argument(
        "--learning-rate", type=float, default=1e-4, help="AdamW peak rate"
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        help="linear warmup steps, then linear decay to 0 (default: --max-steps / 10)",
    )
    parser.add_argument(
        "--weight-decay", type=float, default=0.01, help="AdamW weight decay"
    )
    parser.add_argument(
        "--save-steps",
        type=int,
        default=200,
        help="steps between resumable checkpoints (and history rows)",
    )
    parser.add_argument(
        "--num-shards",
        type=int,
        default=4,
        help="instance files (a multiple of the number of workers)",
    )
    parser.add_argument(
        "--seed", type=int, default=12345, help="data, masks and weights"
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="train with Keras' mixed_bfloat16 policy",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Keras fit verbosity: 0 silent, 1 progress bar, 2 a line per round",
    )
    add_observe_arguments(parser, save_steps=False, evaluation=False)
    add_output_arguments(parser)
    add_strategy_arguments(parser)
    parser.add_argument(
        "--data-wait",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="multiworker: how long the other workers wait for the chief to "
        "write the tokenizer and instances",
    )
    args = parser.parse_args(argv)
    if args.model is not None and args.config is not None:
        parser.error(
            "--config and --model both give the architecture: --model continues "
            "from its checkpoint's config.json and weights. Leave out --config "
            "(or give --tokenizer instead of --model to start from new weights). "
            f"Received: --model {args.model} --config {args.config}"
        )
    if args.line_by_line and not args.mlm_only:
        parser.error(
            "--line-by-line makes one sequence per line, which has no sentence "
            "pairs for next-sentence prediction. Add --mlm-only, or leave out "
            "--line-by-line. Received: --line-by-line without --mlm-only"
        )
    check_pretraining_arguments(parser, args)
    check_observe_arguments(parser, args)
    if args.warmup_steps is None:
        args.warmup_steps = args.max_steps // 10
    return args


def check_pretraining_arguments(parser, args):
    """Refuses, before any work, every flag that would give nonsense."""
    from .pretrain_vocab import SPECIAL_TOKENS

    check_flags(
        parser,
        args,
        {
            "vocab_size": (
                lambda value: value > len(SPECIAL_TOKENS),
                f"more than the {len(SPECIAL_TOKENS)} special tokens",
            ),
            "max_seq_length": AT_LEAST_ONE,
            "max_predictions_per_seq": AT_LEAST_ONE,
            "masked_lm_prob": (
                lambda value: PROBABILITY[0](value) and value > 0,
                "a finite number in (0, 1] (0 masks nothing to learn from)",
            ),
            "short_seq_prob": PROBABILITY,
            "dupe_factor": AT_LEAST_ONE,
            "max_steps": AT_LEAST_ONE,
            "batch_size": AT_LEAST_ONE,
            "learning_rate": POSITIVE,
            "warmup_steps": (
                lambda value: 0 <= value <= args.max_steps,
                f"in [0, --max-steps {args.max_steps}]",
            ),
            "weight_decay": NON_NEGATIVE,
            "save_steps": AT_LEAST_ONE,
            "num_shards": AT_LEAST_ONE,
            "seed": SEED,
            "collective_timeout": NON_NEGATIVE,
            "data_wait": NON_NEGATIVE,
        },
    )
    # Each epoch is --save-steps steps: a remainder would train past the end
    # of the schedule, at learning rate 0.
    planned = -(-args.max_steps // args.save_steps) * args.save_steps
    if planned != args.max_steps:
        parser.error(
            f"--max-steps {args.max_steps} is not a multiple of --save-steps "
            f"{args.save_steps}: the run trains whole rounds of --save-steps "
            f"steps, {planned} in all, the last {planned - args.max_steps} at "
            "learning rate 0. Make --max-steps a multiple of --save-steps. "
            f"Received: --max-steps {args.max_steps} --save-steps {args.save_steps}"
        )
    # A global batch takes the same number of instances from every shard.
    if args.batch_size % args.num_shards:
        parser.error(
            f"--batch-size {args.batch_size} cannot be split evenly over "
            f"--num-shards {args.num_shards} instance shards. Expected a batch "
            "size that is a multiple of the number of shards; change either flag. "
            f"Received: --batch-size {args.batch_size} --num-shards {args.num_shards}"
        )
    if args.mlm_only:
        check_min_seq_length(parser, args.max_seq_length, 3, "[CLS] text [SEP]")
    else:  # create_instances fills [CLS] A [SEP] B [SEP] with 1 token each
        check_min_seq_length(
            parser, args.max_seq_length, 5, "[CLS] A [SEP] B [SEP], 1 token each,"
        )
    if args.model is not None:
        check_model_positions(
            parser, args.max_seq_length, model_max_positions(args.model), "--model"
        )
    else:
        check_model_positions(
            parser,
            args.max_seq_length,
            config_max_positions(args.config),
            "--config" if args.config else "the default config",
        )


def config_max_positions(config):
    """--config's `max_position_embeddings` (or SMALL_BERT's); None if not an int.

    A --config that cannot be read is refused here, before any work.
    """
    value = {**SMALL_BERT, **config_fields(config)}.get("max_position_embeddings")
    return value if isinstance(value, int) else None


def corpus_files(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = glob.glob(os.path.join(path, "*"))
            files.extend(
                sorted(p for p in found if os.path.isfile(p) and not p.endswith(".md"))
            )
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"--corpus: no such file or directory: {path}")
    if not files:
        raise FileNotFoundError(f"--corpus: no files in {paths}")
    return files


def load_documents(files):
    import io

    from .data_files import read_utf8
    from .pretrain_data import bert_format_documents
    from .pretrain_data import wikitext_to_documents

    documents = []
    for path in files:
        # Universal newlines, as `open` reads text; a bad byte names its line.
        lines = io.StringIO(read_utf8(path), newline=None).readlines()
        if any(
            line.startswith(" = ") and line.rstrip().endswith(" =") for line in lines
        ):
            documents.extend(wikitext_to_documents(lines))
        else:
            documents.extend(bert_format_documents(lines))
    return documents


def round_metric_name(key, mlm_only):
    """A round's Keras metric as the step log names it (mlm_accuracy, ...)."""
    if mlm_only and key == "accuracy":
        return "mlm_accuracy"  # BertForMaskedLM's own name is "accuracy"
    return key


def build_model(args, tokenizer):
    """The model to pretrain: new weights, or --model's (heads it lacks new).

    Masked LM is computed at the masked positions only
    (`max_predictions_per_seq`); the checkpoint is the plain class's.
    """
    import bert_keras as bk

    cls = bk.BertForMaskedLM if args.mlm_only else bk.BertForPreTraining
    dtype = "mixed_bfloat16" if args.mixed_precision else None
    if args.model is None:
        config = build_config(args, tokenizer)
    else:
        # Loaded as the plain class (the loading report names new heads),
        # then its weights go to the same model computing masked rows only.
        loaded = cls.from_pretrained(args.model, dtype=dtype)
        config = loaded.config
        if len(tokenizer) > config.vocab_size:
            raise ValueError(
                f"--model {args.model}: its tokenizer has {len(tokenizer)} tokens "
                f"but the model's vocab_size is {config.vocab_size}: ids past "
                f"{config.vocab_size - 1} have no embedding. Expected the "
                "tokenizer the checkpoint was trained with; save it into the "
                "checkpoint directory (or resize the model's embeddings first)."
            )
    model = cls(
        config, max_predictions_per_seq=args.max_predictions_per_seq, dtype=dtype
    )
    if args.model is not None:
        model.set_weights(loaded.get_weights())
    return model


def build_config(args, tokenizer):
    import bert_keras as bk

    fields = {**SMALL_BERT, **config_fields(args.config)}
    fields["vocab_size"] = len(tokenizer)
    fields["pad_token_id"] = tokenizer.pad_token_id
    return bk.BertConfig(**{k: v for k, v in fields.items() if k != "architectures"})


CONFIG_FORMS = (
    "--config takes a JSON string (e.g. '{\"num_hidden_layers\": 2}'), a "
    "config.json file or a checkpoint directory that holds one"
)


def config_fields(value):
    """The BertConfig fields that --config gives ({} without the flag).

    Raises:
        ValueError: naming --config, the file (and line) and the forms it takes.
    """
    if value is None:
        return {}
    if os.path.isdir(value):
        path = os.path.join(value, "config.json")
        if not os.path.isfile(path):
            raise ValueError(
                f"--config {value} is a directory without a config.json. "
                f"{CONFIG_FORMS}. Received: --config {value}"
            )
    elif os.path.isfile(value):
        path = value
    elif value.lstrip().startswith("{"):
        path = None
    else:
        raise ValueError(
            f"--config {value}: no such file or directory, and not a JSON object "
            f"either. {CONFIG_FORMS}. Check the path. Received: --config {value}"
        )
    source = "--config's JSON string" if path is None else path
    try:
        if path is None:
            fields = json.loads(value)
        else:
            with open(path, encoding="utf-8") as handle:
                fields = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno}. {CONFIG_FORMS}. Received: --config {value}"
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{source} is not UTF-8 text ({error.reason} at byte {error.start}). "
            f"{CONFIG_FORMS}. Received: --config {value}"
        ) from None
    if not isinstance(fields, dict):
        raise ValueError(
            f"{source} holds a JSON {type(fields).__name__}, not an object of "
            f"BertConfig fields. {CONFIG_FORMS}. Received: --config {value}"
        )
    return fields


def main(argv=None):
    args = parse_args(argv)
    from bert_keras.training.distribute import output_directory

    from .cli import configure_logging
    from .cli import start_strategy

    configure_logging()
    strategy = start_strategy(args)
    from bert_keras.training.distribute import is_chief

    from .outputs import claim_output_dir

    # Only the chief writes to --output-dir; other workers make their own
    # tokenizer and instances (the same, checked) in a temporary directory.
    if is_chief(strategy):
        claim_output_dir(args.output_dir, "tasks.pretrain", args.overwrite_output_dir)
    with output_directory(args.output_dir, strategy) as out:
        return pretrain(args, strategy, out)


def pretrain(args, strategy, out):
    """Trains on the chief's data in --output-dir/work, saves to `out`."""
    import keras

    import bert_keras as bk
    from bert_keras.checkpoints.model_card import model_card
    from bert_keras.training.callbacks import ResumableCheckpoint
    from bert_keras.training.callbacks import StopOnNonFiniteLoss
    from bert_keras.training.distribute import is_chief
    from bert_keras.training.distribute import worker_count
    from bert_keras.training.optimization import create_optimizer

    from . import observe
    from . import reporting

    keras.utils.set_random_seed(args.seed)
    os.makedirs(out, exist_ok=True)
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)

    # Tokenizer and instances are made once, by the chief, in --output-dir;
    # a resumed run reuses them, and the other workers read them there.
    data_dir = os.path.join(args.output_dir, "work")
    if is_chief(strategy):
        prepare_data(args, data_dir, check_run_settings(args, data_dir))
    else:
        wait_for_data(data_dir, args.data_wait)
        check_run_settings(args, data_dir, chief=False)
    tokenizer = bk.AutoTokenizer.from_pretrained(os.path.join(data_dir, "tokenizer"))
    pattern = os.path.join(data_dir, "instances", "instances-*.tfrecord")
    with open(os.path.join(data_dir, "instances.json")) as handle:
        corpus_stats = json.load(handle)

    if worker_count(strategy) > 1:
        check_workers_share_data(strategy, tokenizer, pattern)
        # Each worker reads its own shard files (see masked_batches).
        dataset = strategy.distribute_datasets_from_function(
            lambda context: masked_batches(
                pattern, tokenizer, args, repeat=True, input_context=context
            )
        )
    else:
        dataset = masked_batches(pattern, tokenizer, args, repeat=True)
    with strategy.scope():
        model = build_model(args, tokenizer)
        config = model.config
        model.compile(
            optimizer=create_optimizer(
                args.learning_rate,
                total_steps=args.max_steps,
                warmup_steps=args.warmup_steps,
                weight_decay=args.weight_decay,
            )
        )
    # Epoch = save_steps steps; each epoch ends with an atomic checkpoint, the
    # last two are kept, and a rerun of the same command resumes from the
    # newest one that loads.
    epochs = -(-args.max_steps // args.save_steps)
    history = reporting.EpochHistory()
    history_path = os.path.join(work, "history.json")
    if os.path.isfile(history_path):
        with open(history_path) as handle:
            history.epochs = json.load(handle)

    chief = is_chief(strategy)
    per_data_epoch = corpus_stats["instances"] / args.batch_size
    step_logger = observe.StepLogger(
        os.path.join(out, observe.LOG_DIR) if args.report_to == "tensorboard" else None,
        observe.resolve_steps(
            args.logging_steps,
            args.max_steps,
            min(observe.default_logging_steps(per_data_epoch), args.save_steps),
        ),
        samples_per_epoch=corpus_stats["instances"],
        chief=chief,
        updates_per_epoch=per_data_epoch,  # rows' epoch: passes over the data
        total_steps=args.max_steps,
    )
    step_log_path = os.path.join(work, "log_history.json")
    checkpoint = ResumableCheckpoint(
        os.path.join(args.output_dir, "work", "backup"), keep=2
    )

    class SaveHistory(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            # After the restore: the rows of the rounds the backup holds.
            if os.path.isfile(step_log_path):
                with open(step_log_path) as handle:
                    rows = json.load(handle)
                done = checkpoint.restored_epoch * args.save_steps
                step_logger.log_history = [r for r in rows if r["step"] <= done]

        def on_epoch_end(self, epoch, logs=None):
            history.epochs = [
                row for row in history.epochs if row["epoch"] <= epoch + 1
            ]
            # Each round's metrics (MLM accuracy, ...) on the step curves too.
            step_logger.log(
                {
                    round_metric_name(key, args.mlm_only): value
                    for key, value in (logs or {}).items()
                    if key != "loss"
                },
                (epoch + 1) * args.save_steps,
            )
            reporting.write_json(history_path, history.epochs)
            reporting.write_json(step_log_path, step_logger.log_history)

    class Throughput(keras.callbacks.Callback):
        """Steps and seconds of this process (after any restore)."""

        first_step = start = None

        def on_train_batch_begin(self, batch, logs=None):
            if self.start is None:
                self.first_step = int(self.model.optimizer.iterations.numpy())
                self.start = time.perf_counter()

    throughput = Throughput()
    start = time.perf_counter()
    model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=args.save_steps,
        callbacks=[
            step_logger,
            # Before the checkpoint: a step with a NaN loss is never saved.
            StopOnNonFiniteLoss(),
            # Read by every worker, written by the chief.
            checkpoint,
            history,
            SaveHistory(),
            throughput,
        ],
        shuffle=False,  # the instances are shuffled in the tf.data pipeline
        verbose=args.verbose,
    )
    train_time = time.perf_counter() - start
    run_seconds = time.perf_counter() - (throughput.start or time.perf_counter())
    steps = int(model.optimizer.iterations.numpy())

    model.save_pretrained(out, tokenizer=tokenizer)
    if not is_chief(strategy):
        return {"chief": False, "steps": steps}
    tokens_per_step = args.batch_size * args.max_seq_length
    run_steps = steps - (
        steps if throughput.first_step is None else throughput.first_step
    )
    results = {
        "steps": steps,
        "planned_steps": epochs * args.save_steps,
        "epochs": history.epochs,
        "final": history.epochs[-1] if history.epochs else {},
        "architecture": model.hf_architecture,
        # The accuracy of always predicting the corpus' most frequent
        # non-special token: what MLM accuracy must rise well above.
        "mlm_unigram_baseline_accuracy": corpus_stats.get("unigram_baseline"),
        "train_time_seconds_this_run": train_time,
        "steps_this_run": run_steps,
        # Padded slots (batch x max_seq_length), compile time included.
        "tokens_per_second": tokens_per_step * run_steps / max(run_seconds, 1e-9),
        "corpus": corpus_stats,
        "config": reporting.shareable(config.to_dict()),
        "replicas": strategy.num_replicas_in_sync,
        "workers": worker_count(strategy),
        "hyperparameters": reporting.shareable(
            {k: v for k, v in vars(args).items() if k != "output_dir"}
        ),
        "framework_versions": reporting.framework_versions(),
    }
    if not args.mlm_only:
        # The share of the more frequent next-sentence label (about 0.5).
        results["nsp_baseline_accuracy"] = corpus_stats["nsp_baseline_accuracy"]
    reporting.write_json(os.path.join(out, "results.json"), results)
    observe.write_trainer_files(
        out,
        train=observe.train_results(step_logger, corpus_stats["instances"]),
        state=observe.trainer_state(
            step_logger,
            output_dir=out,
            max_steps=args.max_steps,
            num_train_epochs=step_logger.epoch_of(args.max_steps),
            train_batch_size=args.batch_size,
            save_steps=args.save_steps,
        ),
    )
    objective = "MLM" if args.mlm_only else "MLM + NSP"
    if step_logger.log_history:
        reporting.plot_curves(
            os.path.join(out, "training_curves.png"),
            step_logger.log_history,
            objective,
        )
    objective = (
        "masked LM" if args.mlm_only else "masked LM and next-sentence prediction"
    )
    origin = (
        "pretrained from scratch"
        if args.model is None
        else f"pretrained further from {reporting.shareable(args.model)}"
    )
    card = model_card(
        model,
        model_name=os.path.basename(os.path.abspath(out)),
        base_model=args.model if args.model and not os.path.isdir(args.model) else None,
        description=f"BERT {origin} with {objective} using bert_keras.",
        results={k: round(v, 4) for k, v in results["final"].items() if k != "epoch"},
        training_hyperparameters=results["hyperparameters"],
        tags=["pretraining"],
    )
    card.save(os.path.join(out, "README.md"))
    print(f"\npretraining done: {steps} steps; outputs in {os.path.abspath(out)}")
    return results


def check_workers_share_data(strategy, tokenizer, pattern):
    """Every worker made the same vocabulary and instances, or none trains."""
    import glob
    import hashlib

    import numpy as np
    import tensorflow as tf

    digest = hashlib.sha256(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    for path in sorted(glob.glob(pattern)):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    mine = int.from_bytes(digest.digest()[:7], "little")
    everyone = strategy.gather(
        strategy.run(lambda: tf.constant([mine], tf.int64)), axis=0
    )
    if len(set(np.asarray(everyone).tolist())) > 1:
        raise ValueError(
            "The workers built different vocabularies or pretraining instances "
            "from --corpus (a corpus that differs between machines, or "
            "WordPiece training that broke ties differently). Expected the same "
            "on every worker: give each the same --corpus files, and pass "
            "--tokenizer with one shared tokenizer (e.g. the chief's "
            "OUT/work/tokenizer)."
        )


def prepare_data(args, work, settings=None):
    """Makes `work`/tokenizer and `work`/instances; instances.json marks them done.

    `settings` (from `check_run_settings`) go to `work`/run.json once the data
    is made, before instances.json.
    """
    import bert_keras as bk

    from . import reporting
    from .pretrain_data import create_instances
    from .pretrain_data import create_mlm_instances
    from .pretrain_data import tokenize_documents
    from .pretrain_data import write_instances
    from .pretrain_vocab import train_wordpiece

    tokenizer_dir = os.path.join(work, "tokenizer")
    if os.path.isfile(os.path.join(work, "instances.json")):
        return
    files = corpus_files(args.corpus)
    documents = load_documents(files)
    check_documents(documents, files, args.mlm_only)
    if os.path.isfile(os.path.join(tokenizer_dir, "tokenizer.json")):
        tokenizer = bk.AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        if args.tokenizer or args.model:
            flag = "--tokenizer" if args.tokenizer else "--model"
            tokenizer = load_tokenizer(args.tokenizer or args.model, flag)
        else:
            tokenizer = train_wordpiece(
                (s for d in documents for s in d), args.vocab_size
            )
        tokenizer.save_pretrained(tokenizer_dir)
    tokenized = tokenize_documents(documents, tokenizer)
    instances = []
    for copy in range(args.dupe_factor):
        if args.mlm_only:
            instances += create_mlm_instances(
                tokenized,
                tokenizer.cls_token_id,
                tokenizer.sep_token_id,
                max_seq_length=args.max_seq_length,
                line_by_line=args.line_by_line,
                # The first copy is cut at each document's start.
                seed=args.seed + copy if copy else None,
            )
        else:
            instances += create_instances(
                tokenized,
                tokenizer.cls_token_id,
                tokenizer.sep_token_id,
                max_seq_length=args.max_seq_length,
                short_seq_prob=args.short_seq_prob,
                seed=args.seed + copy,
            )
    labels = check_instances(instances, documents, files, args)
    sentence_pairs = {}
    if not args.mlm_only:
        sentence_pairs = {
            "random_next_instances": labels[1],
            "nsp_baseline_accuracy": max(labels.values()) / len(instances),
        }
    write_instances(
        instances, os.path.join(work, "instances"), num_shards=args.num_shards
    )
    if settings is not None:
        reporting.write_json(os.path.join(work, "run.json"), settings)
    reporting.write_json(
        os.path.join(work, "instances.json"),
        {
            "instances": len(instances),
            "documents": len(documents),
            **sentence_pairs,
            **unigram_baseline(instances, tokenizer.all_special_ids),
        },
    )


def _names(files, most=3):
    shown = ", ".join(files[:most])
    return shown + (f" (and {len(files) - most} more)" if len(files) > most else "")


def check_documents(documents, files, mlm_only=False):
    """Refuses a corpus with no text, or (for NSP) fewer than 2 documents.

    Raises:
        ValueError: naming the corpus files, what they hold and what is needed.
    """
    layout = (
        "Expected BERT's format: one sentence per line, a blank line between "
        "documents (or WikiText's ` = Title = ` lines), and at least 2 documents"
    )
    if not documents:
        raise ValueError(
            f"--corpus {_names(files)} holds no text (every line is blank). "
            f"{layout}. Received: {len(files)} file(s), 0 documents"
        )
    if len(documents) < 2 and not mlm_only:
        raise ValueError(
            f"--corpus {_names(files)} holds a single document "
            f"({len(documents[0])} line(s), no blank line between documents). "
            "Next-sentence prediction draws its 'random next' sentences from "
            "another document: with one, every pair is a true continuation and "
            f"NSP accuracy is high without learning anything. {layout}: put a "
            "blank line between documents, or train masked LM alone "
            "(--mlm-only). Received: 1 document"
        )


def check_instances(instances, documents, files, args):
    """Refuses too few instances, or instances of one next-sentence label only.

    Returns:
        `collections.Counter` of the next-sentence labels (0 true, 1 random).

    Raises:
        ValueError: naming the corpus, the counts and what would give more.
    """
    labels = collections.Counter(
        i["next_sentence_label"] for i in instances if "next_sentence_label" in i
    )
    made = (
        f"{len(instances)} instance(s) from {len(documents)} documents "
        f"(--dupe-factor {args.dupe_factor}, --max-seq-length {args.max_seq_length})"
    )
    if len(instances) < args.num_shards:
        raise ValueError(
            f"--corpus {_names(files)} gave {made}; expected at least one for "
            f"each of the --num-shards {args.num_shards} instance files. Documents "
            "of a single sentence whose tokens are all dropped, or too little "
            "text, make none. Add text (documents of 2 or more sentences, a blank "
            "line between documents) or raise --dupe-factor."
        )
    if args.mlm_only:
        return labels
    if not labels[0]:
        raise ValueError(
            f"--corpus {_names(files)} gave {made}, none a true continuation "
            "(next-sentence label 0): every document has a single sentence, so "
            "sentence B always comes from another document and NSP would score "
            "without learning. Expected documents of 2 or more sentences, one "
            "per line, with a blank line between documents."
        )
    if not labels[1]:
        raise ValueError(
            f"--corpus {_names(files)} gave {made}, none with a random next "
            "sentence (label 1), so NSP would score without learning. Expected "
            "at least 2 documents with a blank line between them."
        )
    return labels


# Flags that may change between a run and its resume, besides tasks.cli's.
PRETRAIN_RESUMABLE_FLAGS = ("output_dir", "data_wait")
# The files of a --tokenizer directory that make the tokenizer (not weights).
TOKENIZER_FILES = (
    "added_tokens.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
)
# Run settings of file contents; only the chief reads the corpus.
DATA_SETTINGS = ("corpus_contents", "tokenizer_contents", "model_contents")


def file_sha256(path):
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_settings(args, data=True):
    """Everything a run's tokenizer, instances and checkpoint depend on.

    The flags (but those a resume may change), --config's fields and, with
    `data`, the SHA-256 of each corpus file and --tokenizer file: a corpus
    edited in place makes another run.
    """
    from .cli import RESUMABLE_FLAGS

    skip = (*RESUMABLE_FLAGS, *PRETRAIN_RESUMABLE_FLAGS)
    settings = {k: v for k, v in vars(args).items() if k not in skip}
    settings["config_fields"] = config_fields(args.config)
    if data:
        settings["corpus_contents"] = {
            path: file_sha256(path) for path in corpus_files(args.corpus)
        }
        if args.tokenizer and os.path.isdir(args.tokenizer):
            settings["tokenizer_contents"] = {
                name: file_sha256(os.path.join(args.tokenizer, name))
                for name in TOKENIZER_FILES
                if os.path.isfile(os.path.join(args.tokenizer, name))
            }
        if args.model:
            from .resume import checkpoint_fingerprints

            settings["model_contents"] = checkpoint_fingerprints(args.model)
    return json.loads(json.dumps(settings, default=str))


def _describe_change(key, then, now):
    if key in DATA_SETTINGS or key == "config_fields":
        then, now = then or {}, now or {}
        names = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
        what = {
            "corpus_contents": "the contents of --corpus file(s)",
            "tokenizer_contents": "the files of the --tokenizer directory",
            "model_contents": "the --model checkpoint",
            "config_fields": "the fields of --config",
        }[key]
        return f"{what} changed ({', '.join(names)})"
    flag = "--" + key.replace("_", "-")
    return f"{flag} was {then}, is {now}"


def check_run_settings(args, work, chief=True):
    """Refuses to mix this run with the data or checkpoint of another in `work`.

    `work`/run.json holds the settings (`run_settings`) that its tokenizer,
    instances and backup were made with. The same command resumes; other
    flags, --config fields, corpus or --tokenizer contents are refused, naming
    what changed. A preparation that never finished (no run.json) is redone.

    Returns:
        this run's settings (for `prepare_data`).
    """
    settings = run_settings(args, data=chief)
    run_file = os.path.join(work, "run.json")
    if os.path.isfile(run_file):
        with open(run_file, encoding="utf-8") as handle:
            saved = json.load(handle)
        if not chief:
            saved = {k: v for k, v in saved.items() if k not in DATA_SETTINGS}
        changed = [
            key
            for key in sorted(set(saved) | set(settings))
            if saved.get(key) != settings.get(key)
        ]
        if changed:
            what = "; ".join(
                _describe_change(k, saved.get(k), settings.get(k)) for k in changed
            )
            raise SystemExit(
                f"--output-dir {args.output_dir} holds a pretraining run made with "
                "other settings, whose tokenizer, instances and checkpoint this "
                f"run would reuse: {what}. Rerun that run's own command (same "
                "flags and files) to resume it, or give a new or empty "
                "--output-dir (or --overwrite-output-dir to start over there)."
            )
        return settings
    left = [
        name
        for name in ("instances.json", "history.json", "backup")
        if os.path.exists(os.path.join(work, name))
    ]
    if left:
        raise SystemExit(
            f"{work} holds {', '.join(left)} of a pretraining run whose settings "
            "were not recorded (no run.json, an older version made it), so this "
            "run cannot tell whether it may resume it. Give a new or empty "
            "--output-dir, or --overwrite-output-dir to start over there."
        )
    if chief:
        import shutil

        for name in ("tokenizer", "instances"):
            shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    return settings


def wait_for_data(work, seconds):
    """Waits (bounded) until the chief has written the tokenizer and instances."""
    import logging

    marker = os.path.join(work, "instances.json")
    deadline = time.monotonic() + seconds
    next_report = 0.0
    while not os.path.isfile(marker):
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(
                f"Waited {seconds:.0f} s for the chief to write {marker}. Expected "
                "--output-dir on storage every worker shares (the chief writes "
                "the tokenizer and instances there, the others read them), and a "
                "running chief. Check the chief's log, or raise --data-wait."
            )
        if now >= next_report:
            logging.getLogger("tasks.pretrain").info(
                "Waiting for the chief's tokenizer and instances in %s", work
            )
            next_report = now + 30
        time.sleep(0.5)


def unigram_baseline(instances, special_ids):
    """Share of the most frequent non-special token among all of them."""
    counts = collections.Counter()
    special = set(special_ids)
    for instance in instances:
        counts.update(t for t in instance["input_ids"] if t not in special)
    total = sum(counts.values())
    if not total:
        return {"unigram_baseline": None}
    token, count = counts.most_common(1)[0]
    return {"unigram_baseline": count / total, "most_frequent_token_id": token}


def masked_batches(pattern, tokenizer, args, repeat=False, input_context=None):
    """Instances from TFRecord shards, shuffled, dynamically masked, batched.

    A global batch of B instances takes B / F consecutive instances from each
    of the F shard files (each file shuffled on its own, in its own order on
    every pass). So the global batches are the same whatever the number of
    workers: worker w of N reads only the files w, w + N, ... and builds its
    B / N share of each global batch (per replica when `input_context` comes
    from `strategy.distribute_datasets_from_function`). Masks are a function
    of (seed, file, position in the file's stream): new on every pass with
    `repeat`, identical on one device or many.
    """
    import glob

    import tensorflow as tf

    from bert_keras.training.masking import MaskedLMMasker
    from bert_keras.training.masking import continuation_ids_from_tokenizer

    from .pretrain_data import instance_records

    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No instance shards match {pattern}")
    workers = input_context.num_input_pipelines if input_context else 1
    worker = input_context.input_pipeline_id if input_context else 0
    if args.batch_size % len(files) or len(files) % workers:
        raise ValueError(
            f"--batch-size {args.batch_size} cannot be split evenly over the "
            f"{len(files)} instance shards and {workers} worker(s). Expected a "
            "batch size that is a multiple of the number of shards, and a "
            "number of shards that is a multiple of the number of workers. "
            "Change --batch-size, or --num-shards in a new --output-dir."
        )
    masker = MaskedLMMasker(
        vocab_size=len(tokenizer),
        mask_token_id=tokenizer.mask_token_id,
        special_token_ids=tokenizer.all_special_ids,
        max_predictions_per_seq=args.max_predictions_per_seq,
        mask_rate=args.masked_lm_prob,
        continuation_ids=continuation_ids_from_tokenizer(tokenizer),
        whole_word_masking=args.whole_word_masking,
        seed=args.seed,
    )
    labels_padding = {"labels": -100}
    if not args.mlm_only:
        labels_padding["next_sentence_label"] = 0
    padding = (
        {
            "input_ids": tokenizer.pad_token_id or 0,
            "token_type_ids": 0,
            "attention_mask": 0,
            "masked_lm_positions": 0,
        },
        labels_padding,
    )
    paths = tf.constant(files)
    num_files = len(files)

    def file_stream(file_index):
        stream = instance_records(
            tf.gather(paths, file_index), next_sentence=not args.mlm_only
        ).shuffle(10_000, seed=args.seed + file_index, reshuffle_each_iteration=True)
        if repeat:
            stream = stream.repeat()
        # A global example number: the mask seed, whatever the worker count.
        return stream.enumerate().map(
            lambda position, example: (position * num_files + file_index, example)
        )

    mine = list(range(worker, num_files, workers))
    batch_size = args.batch_size // workers
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(args.batch_size)
    return (
        tf.data.Dataset.from_tensor_slices(tf.constant(mine, tf.int64))
        .interleave(
            file_stream,
            cycle_length=len(mine),
            block_length=args.batch_size // num_files,
        )
        # Masks depend on (seed, index) only: parallel and still reproducible.
        .map(
            lambda index, example: masker(*example, index=index),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .padded_batch(batch_size, padding_values=padding, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
