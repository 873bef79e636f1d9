"""Pretrain BERT from raw text with masked LM + next-sentence prediction.

    python -m tasks.pretrain --corpus PATH --output-dir OUT \\
        [--vocab-size 8000 | --tokenizer NAME_OR_DIR] [--config JSON_OR_DIR] \\
        --max-steps 2000 --batch-size 32 [--save-steps 200] [--mixed-precision] \\
        [--strategy default|mirrored|multiworker|tpu]

The corpus is BERT's format (sentence per line, blank line between documents)
or WikiText's raw layout (detected from its ` = Title = ` lines): files or a
folder of them. A run killed at any point and restarted with the same command
resumes from its last checkpoint (at most `--save-steps` steps lost) and stops
at `--max-steps`. OUT receives the HF `BertForPreTraining` checkpoint, the
tokenizer, `results.json`, a model card and `training_curves.png`.
"""

import argparse
import collections
import glob
import json
import os
import sys
import time

from .cli import add_strategy_arguments

SMALL_BERT = {
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tasks.pretrain", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--corpus", required=True, nargs="+", help="files or dirs")
    parser.add_argument("--output-dir", required=True)
    vocab = parser.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--vocab-size", type=int, help="train a WordPiece vocab")
    vocab.add_argument("--tokenizer", help="reuse a tokenizer (Hub id or dir)")
    parser.add_argument(
        "--config",
        default=None,
        help="BertConfig as a JSON string, a config.json file or a checkpoint "
        "dir; default: 4 layers, hidden 256, 4 heads, intermediate 1024",
    )
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--max-predictions-per-seq", type=int, default=20)
    parser.add_argument("--masked-lm-prob", type=float, default=0.15)
    parser.add_argument("--short-seq-prob", type=float, default=0.1)
    parser.add_argument("--dupe-factor", type=int, default=5)
    parser.add_argument("--whole-word-masking", action="store_true")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=None)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--save-steps", type=int, default=200)
    parser.add_argument("--num-shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
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
    for name in ("max_steps", "batch_size", "save_steps", "max_seq_length"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.warmup_steps is None:
        args.warmup_steps = args.max_steps // 10
    return args


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
    from .pretrain_data import read_bert_format
    from .pretrain_data import wikitext_to_documents

    documents = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
        if any(
            line.startswith(" = ") and line.rstrip().endswith(" =") for line in lines
        ):
            documents.extend(wikitext_to_documents(lines))
        else:
            documents.extend(read_bert_format([path]))
    return documents


def build_config(args, tokenizer):
    import bert_keras as bk

    fields = dict(SMALL_BERT)
    if args.config:
        if os.path.isdir(args.config):
            path = os.path.join(args.config, "config.json")
            with open(path, encoding="utf-8") as handle:
                fields.update(json.load(handle))
        elif os.path.isfile(args.config):
            with open(args.config, encoding="utf-8") as handle:
                fields.update(json.load(handle))
        else:
            fields.update(json.loads(args.config))
    fields["vocab_size"] = len(tokenizer)
    fields["pad_token_id"] = tokenizer.pad_token_id
    return bk.BertConfig(**{k: v for k, v in fields.items() if k != "architectures"})


def main(argv=None):
    args = parse_args(argv)
    from bert_keras.training.distribute import output_directory

    from .cli import configure_logging
    from .cli import start_strategy

    configure_logging()
    strategy = start_strategy(args)
    # Only the chief writes to --output-dir; other workers make their own
    # tokenizer and instances (the same, checked) in a temporary directory.
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

    from . import reporting

    keras.utils.set_random_seed(args.seed)
    os.makedirs(out, exist_ok=True)
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)

    # Tokenizer and instances are made once, by the chief, in --output-dir;
    # a resumed run reuses them, and the other workers read them there.
    data_dir = os.path.join(args.output_dir, "work")
    if is_chief(strategy):
        prepare_data(args, data_dir)
    else:
        wait_for_data(data_dir, args.data_wait)
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
    config = build_config(args, tokenizer)
    with strategy.scope():
        model = bk.BertForPreTraining(
            config,
            max_predictions_per_seq=args.max_predictions_per_seq,
            dtype="mixed_bfloat16" if args.mixed_precision else None,
        )
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

    class SaveHistory(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            history.epochs = [
                row for row in history.epochs if row["epoch"] <= epoch + 1
            ]
            reporting.write_json(history_path, history.epochs)

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
            # Before the checkpoint: a step with a NaN loss is never saved.
            StopOnNonFiniteLoss(),
            # Read by every worker, written by the chief.
            ResumableCheckpoint(
                os.path.join(args.output_dir, "work", "backup"), keep=2
            ),
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
        # The accuracy of always predicting the corpus' most frequent
        # non-special token: what MLM accuracy must rise well above.
        "mlm_unigram_baseline_accuracy": corpus_stats.get("unigram_baseline"),
        "nsp_baseline_accuracy": 0.5,
        "train_time_seconds_this_run": train_time,
        "steps_this_run": run_steps,
        # Padded slots (batch x max_seq_length), compile time included.
        "tokens_per_second": tokens_per_step * run_steps / max(run_seconds, 1e-9),
        "corpus": corpus_stats,
        "config": config.to_dict(),
        "replicas": strategy.num_replicas_in_sync,
        "workers": worker_count(strategy),
        "hyperparameters": reporting.shareable(
            {k: v for k, v in vars(args).items() if k != "output_dir"}
        ),
        "framework_versions": reporting.framework_versions(),
    }
    reporting.write_json(os.path.join(out, "results.json"), results)
    if history.epochs:
        reporting.plot_curves(
            os.path.join(out, "training_curves.png"), history.epochs, "MLM + NSP"
        )
    card = model_card(
        model,
        model_name=os.path.basename(os.path.abspath(out)),
        description="BERT pretrained from scratch with masked LM and next-sentence "
        "prediction using bert_keras.",
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


def prepare_data(args, work):
    """Makes `work`/tokenizer and `work`/instances; instances.json marks them done."""
    import bert_keras as bk

    from . import reporting
    from .pretrain_data import create_instances
    from .pretrain_data import tokenize_documents
    from .pretrain_data import write_instances
    from .pretrain_vocab import train_wordpiece

    tokenizer_dir = os.path.join(work, "tokenizer")
    if os.path.isfile(os.path.join(work, "instances.json")):
        return
    documents = load_documents(corpus_files(args.corpus))
    if os.path.isfile(os.path.join(tokenizer_dir, "tokenizer.json")):
        tokenizer = bk.AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        if args.tokenizer:
            tokenizer = bk.AutoTokenizer.from_pretrained(args.tokenizer)
        else:
            tokenizer = train_wordpiece(
                (s for d in documents for s in d), args.vocab_size
            )
        tokenizer.save_pretrained(tokenizer_dir)
    tokenized = tokenize_documents(documents, tokenizer)
    instances = []
    for copy in range(args.dupe_factor):
        instances += create_instances(
            tokenized,
            tokenizer.cls_token_id,
            tokenizer.sep_token_id,
            max_seq_length=args.max_seq_length,
            short_seq_prob=args.short_seq_prob,
            seed=args.seed + copy,
        )
    write_instances(
        instances, os.path.join(work, "instances"), num_shards=args.num_shards
    )
    reporting.write_json(
        os.path.join(work, "instances.json"),
        {
            "instances": len(instances),
            "documents": len(documents),
            **unigram_baseline(instances, tokenizer.all_special_ids),
        },
    )


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
    padding = (
        {
            "input_ids": tokenizer.pad_token_id or 0,
            "token_type_ids": 0,
            "attention_mask": 0,
            "masked_lm_positions": 0,
        },
        {"next_sentence_label": 0, "labels": -100},
    )
    paths = tf.constant(files)
    num_files = len(files)

    def file_stream(file_index):
        stream = instance_records(tf.gather(paths, file_index)).shuffle(
            10_000, seed=args.seed + file_index, reshuffle_each_iteration=True
        )
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
