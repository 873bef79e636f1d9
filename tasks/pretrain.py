"""Pretrain BERT from raw text with masked LM + next-sentence prediction.

    python -m tasks.pretrain --corpus PATH --output-dir OUT \\
        [--vocab-size 8000 | --tokenizer NAME_OR_DIR] [--config JSON_OR_DIR] \\
        --max-steps 2000 --batch-size 32 [--save-steps 200] [--mixed-precision] \\
        [--strategy default|mirrored]

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
    parser.add_argument(
        "--strategy", choices=("default", "mirrored"), default="default"
    )
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
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
    from .cli import configure_logging

    configure_logging()
    import keras
    import tensorflow as tf

    import bert_keras as bk
    from bert_keras.checkpoints.model_card import model_card
    from bert_keras.training.callbacks import ResumableCheckpoint
    from bert_keras.training.callbacks import StopOnNonFiniteLoss
    from bert_keras.training.optimization import create_optimizer

    from . import reporting
    from .pretrain_data import create_instances
    from .pretrain_data import tokenize_documents
    from .pretrain_data import write_instances
    from .pretrain_vocab import train_wordpiece

    keras.utils.set_random_seed(args.seed)
    out = args.output_dir
    os.makedirs(out, exist_ok=True)
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)

    # Tokenizer and instances are made once; a resumed run reuses them.
    tokenizer_dir = os.path.join(work, "tokenizer")
    instance_dir = os.path.join(work, "instances")
    if os.path.isfile(os.path.join(tokenizer_dir, "tokenizer.json")):
        tokenizer = bk.AutoTokenizer.from_pretrained(tokenizer_dir)
        documents = None
    else:
        documents = load_documents(corpus_files(args.corpus))
        if args.tokenizer:
            tokenizer = bk.AutoTokenizer.from_pretrained(args.tokenizer)
        else:
            tokenizer = train_wordpiece(
                (s for d in documents for s in d), args.vocab_size
            )
        tokenizer.save_pretrained(tokenizer_dir)
    pattern = os.path.join(instance_dir, "instances-*.tfrecord")
    if not glob.glob(pattern):
        if documents is None:
            documents = load_documents(corpus_files(args.corpus))
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
        write_instances(instances, instance_dir, num_shards=args.num_shards)
        with open(os.path.join(work, "instances.json"), "w") as handle:
            json.dump(
                {
                    "instances": len(instances),
                    "documents": len(documents),
                    **unigram_baseline(instances, tokenizer.all_special_ids),
                },
                handle,
            )
    with open(os.path.join(work, "instances.json")) as handle:
        corpus_stats = json.load(handle)

    dataset = masked_batches(pattern, tokenizer, args, repeat=True)

    if args.strategy == "mirrored":
        # Every accelerator, or else every logical CPU device (a CPU can be
        # split into several with tf.config.set_logical_device_configuration).
        devices = tf.config.list_logical_devices(
            "GPU"
        ) or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
    else:
        strategy = tf.distribute.get_strategy()
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
            ResumableCheckpoint(os.path.join(work, "backup"), keep=2),
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
        "hyperparameters": {k: v for k, v in vars(args).items() if k != "output_dir"},
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


def masked_batches(pattern, tokenizer, args, repeat=False):
    """Instances from TFRecord shards, shuffled, dynamically masked, batched.

    Masks are a function of (seed, running example index): with `repeat`, new
    on every pass; identical on one device or several.
    """
    import tensorflow as tf

    from bert_keras.training.masking import MaskedLMMasker
    from bert_keras.training.masking import continuation_ids_from_tokenizer

    from .pretrain_data import read_instances

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
    dataset = read_instances(pattern).shuffle(10_000, seed=args.seed)
    if repeat:
        dataset = dataset.repeat()
    return (
        dataset.enumerate()
        # Masks depend on (seed, index) only: parallel and still reproducible.
        .map(
            lambda index, example: masker(*example, index=index),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .padded_batch(args.batch_size, padding_values=padding, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
