"""Fine-tune and evaluate `BertForQuestionAnswering` on SQuAD v1.1 / v2.0.

    python -m tasks.squad --model NAME_OR_DIR --output-dir OUT \\
        [--train-file train.json] [--eval-file dev.json] [--dataset rajpurkar/squad] \\
        [--version-2-with-negative] [--max-seq-length 384] [--doc-stride 128]

`--eval-file` alone evaluates an already fine-tuned model. OUT receives the
checkpoint, `predictions.json` (id -> answer, the official format),
`nbest_predictions.json`, `results.json`, a model card and (after training)
`training_curves.png`.
"""

import argparse
import json
import logging
import os
import sys
import time

import numpy as np

from .cli import AT_LEAST_ONE
from .cli import FINITE
from .cli import RESUMABLE_FLAGS
from .cli import add_training_arguments
from .cli import check_training_arguments
from .cli import configure_logging
from .cli import load_tokenizer
from .cli import start_strategy
from .cli import training_optimizer
from .squad_data import SquadFormatError
from .squad_data import count_unlocated
from .squad_data import eval_features
from .squad_data import read_squad
from .squad_data import train_features
from .squad_data import truncate_questions
from .squad_postprocess import postprocess

METRICS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tasks.squad", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", required=True, help="Hub id or checkpoint dir")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--train-file", default=None, help="SQuAD-format JSON")
    parser.add_argument("--eval-file", default=None, help="SQuAD-format JSON")
    parser.add_argument(
        "--dataset",
        default=None,
        help="Hub dataset (rajpurkar/squad or rajpurkar/squad_v2) when no files",
    )
    parser.add_argument("--version-2-with-negative", action="store_true")
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-query-length", type=int, default=64)
    parser.add_argument("--n-best-size", type=int, default=20)
    parser.add_argument("--max-answer-length", type=int, default=30)
    parser.add_argument("--null-score-diff-threshold", type=float, default=0.0)
    add_training_arguments(
        parser,
        epochs=2,
        batch_size=12,
        eval_batch_size=64,
        learning_rate=3e-5,
        max_seq_length=384,
    )
    args = parser.parse_args(argv)
    if not (args.train_file or args.eval_file or args.dataset):
        parser.error("give --train-file and/or --eval-file, or --dataset")
    rules = {
        "doc_stride": AT_LEAST_ONE,
        "max_query_length": AT_LEAST_ONE,
        "n_best_size": AT_LEAST_ONE,
        "max_answer_length": AT_LEAST_ONE,
        "null_score_diff_threshold": FINITE,
    }
    # [CLS] question [SEP] context [SEP]: the context part of each window must
    # be longer than the stride that overlaps consecutive windows.
    minimum = args.max_query_length + 3 + args.doc_stride + 1
    layout = (
        f"[CLS] question [SEP] context [SEP] with up to --max-query-length "
        f"{args.max_query_length} question tokens and a context longer than "
        f"--doc-stride {args.doc_stride} (or lower those two flags)"
    )
    check_training_arguments(parser, args, rules, minimum, layout)
    return args


def load_split(args, split):
    """`(examples, stats)` of one split, checked before any training starts."""
    path = args.train_file if split == "train" else args.eval_file
    if path:
        return read_squad(
            path,
            version_2_with_negative=args.version_2_with_negative,
            train=split == "train",
        )
    if not args.dataset:
        return None, None
    import datasets

    hub_split = "train" if split == "train" else "validation"
    ds = datasets.load_dataset(args.dataset, split=hub_split)
    name = f"{args.dataset}:{hub_split}"
    if not len(ds):
        raise SquadFormatError(f"{name} has no questions. Expected a SQuAD split.")
    unanswerable = sum(not answers["text"] for answers in ds["answers"])
    if unanswerable and not args.version_2_with_negative:
        raise SquadFormatError(
            f"{name}: {unanswerable} of {len(ds)} questions have no answer. "
            "Expected an answer for every question in SQuAD 1.1 mode. Pass "
            "--version-2-with-negative for a SQuAD 2.0 dataset."
        )
    return ds, {"file": name, "rows": len(ds)}


def main(argv=None):
    args = parse_args(argv)
    configure_logging()
    strategy = start_strategy(args)
    from bert_keras.training.distribute import is_chief
    from bert_keras.training.distribute import output_directory

    from .outputs import claim_output_dir

    # Only the chief writes to --output-dir; other workers write to a
    # temporary directory that is removed (docs/distributed.md).
    if is_chief(strategy):
        claim_output_dir(args.output_dir, "tasks.squad", args.overwrite_output_dir)
    with output_directory(args.output_dir, strategy) as out:
        return fine_tune(args, strategy, out)


def fine_tune(args, strategy, out):
    """Trains, saves to `out` and (on the chief) scores; returns the results."""
    import evaluate
    import keras

    import bert_keras as bk
    from bert_keras.checkpoints.model_card import model_card
    from bert_keras.training.callbacks import StopOnNonFiniteLoss
    from bert_keras.training.data import to_tf_dataset
    from bert_keras.training.distribute import is_chief

    from . import reporting
    from .resume import finished
    from .resume import resumable

    keras.utils.set_random_seed(args.seed)
    os.makedirs(out, exist_ok=True)
    tokenizer = load_tokenizer(args.model, "--model")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "SQuAD windows need offset mappings, which only fast tokenizers give. "
            f"Received: {type(tokenizer).__name__} for {args.model}"
        )
    window = {"max_seq_length": args.max_seq_length, "doc_stride": args.doc_stride}
    results = {"data": {}}
    train_examples, train_stats = load_split(args, "train")
    eval_examples, eval_stats = load_split(args, "eval")
    if args.max_train_samples and train_examples is not None:
        train_examples = train_examples.select(
            range(min(args.max_train_samples, len(train_examples)))
        )
    if args.max_eval_samples and eval_examples is not None:
        eval_examples = eval_examples.select(
            range(min(args.max_eval_samples, len(eval_examples)))
        )

    # Taken before any map: a Hub dataset's fingerprint then depends on its
    # files and the selection only.
    hub_data = getattr(train_examples, "_fingerprint", None)
    history = reporting.EpochHistory()
    # A killed training run, rerun with the same command, resumes after its
    # last finished epoch (OUT/backup, removed once every output is written).
    # Checked before any work: a backup of other flags or inputs is refused.
    backup_dir = os.path.join(args.output_dir, "backup")
    if train_examples is not None:
        settings = {k: v for k, v in vars(args).items() if k not in RESUMABLE_FLAGS}
        resume_callbacks, checkpoint = resumable(
            backup_dir,
            settings,
            history,
            strategy,
            inputs=squad_inputs(args, hub_data),
        )
    # Over-long questions are cut to --max-query-length tokens (counted).
    if train_examples is not None:
        train_examples, train_stats["questions_truncated"] = truncate_questions(
            train_examples, tokenizer, args.max_query_length
        )
    if eval_examples is not None:
        eval_examples, eval_stats["questions_truncated"] = truncate_questions(
            eval_examples, tokenizer, args.max_query_length
        )

    with strategy.scope():
        model = bk.BertForQuestionAnswering.from_pretrained(
            args.model, dtype="mixed_bfloat16" if args.mixed_precision else None
        )
    if train_examples is not None:
        features = train_examples.map(
            lambda batch, indices: train_features(tokenizer, batch, indices, **window),
            batched=True,
            with_indices=True,
            remove_columns=train_examples.column_names,
            desc="Windows (train)",
        )
        unlocated = count_unlocated(features, len(train_examples))
        train_stats.update({"examples": len(train_examples), "windows": len(features)})
        train_stats["answers_not_in_any_window"] = unlocated
        if unlocated:
            logging.getLogger("tasks.squad").warning(
                "%d training answer(s) are not inside any window (or misaligned); "
                "their windows are trained to point at [CLS]",
                unlocated,
            )
        train_ds = to_tf_dataset(
            features,
            args.batch_size,
            label_column=["start_positions", "end_positions"],
            shuffle=True,
            seed=args.seed,
            pad_token_id=tokenizer.pad_token_id or 0,
        )
        # Global batches: the step count and schedule are those of one worker.
        # total_steps counts optimizer updates (batches / accumulation steps).
        with strategy.scope():
            optimizer, total_steps = training_optimizer(
                args, int(train_ds.cardinality()), model.config.num_hidden_layers
            )
            model.compile(optimizer=optimizer)
        start = time.perf_counter()
        model.fit(
            train_ds,
            epochs=args.epochs,
            callbacks=[StopOnNonFiniteLoss(), history, *resume_callbacks],
            shuffle=False,
            verbose=args.verbose,
        )
        results["train_time_seconds"] = time.perf_counter() - start
        epochs_run = args.epochs - checkpoint.restored_epoch
        results["train_examples_per_second"] = (
            len(features) * epochs_run / results["train_time_seconds"]
        )
        results["steps"] = int(model.optimizer.iterations.numpy())
        results["planned_steps"] = total_steps
        results["resumed_after_epoch"] = checkpoint.restored_epoch
        results["epochs"] = history.epochs
        results["train_loss_per_epoch"] = [row["loss"] for row in history.epochs]
        results["data"]["train"] = train_stats
        model.save_pretrained(out, tokenizer=tokenizer)
        if not is_chief(strategy):
            return {"chief": False, "steps": int(model.optimizer.iterations.numpy())}
        # Score the saved checkpoint in float32: what transformers would load.
        model = bk.BertForQuestionAnswering.from_pretrained(out, dtype="float32")
    else:
        model.save_pretrained(out, tokenizer=tokenizer)
        if not is_chief(strategy):
            return {"chief": False}

    if eval_examples is not None:
        results.update(
            evaluate_squad(args, model, tokenizer, eval_examples, window, evaluate, out)
        )
        results["data"]["eval"] = eval_stats
    results["hyperparameters"] = {
        k: v for k, v in vars(args).items() if k not in ("output_dir", "push_to_hub")
    }
    results = reporting.shareable(results)
    results["framework_versions"] = reporting.framework_versions()
    results["replicas"] = strategy.num_replicas_in_sync
    reporting.write_json(os.path.join(out, "results.json"), results)
    if history.epochs:
        reporting.plot_curves(
            os.path.join(out, "training_curves.png"),
            history.epochs,
            f"SQuAD: {reporting.shareable(args.model)}",
        )
    scores = {k: v for k, v in results.items() if k in SCORE_KEYS}
    card = model_card(
        model,
        model_name=args.push_to_hub
        or os.path.basename(os.path.abspath(args.output_dir)),
        base_model=None if os.path.isdir(args.model) else args.model,
        datasets=[
            "rajpurkar/squad_v2" if args.version_2_with_negative else "rajpurkar/squad"
        ],
        metrics=sorted(scores),
        results={k: round(v, 2) for k, v in scores.items()},
        training_hyperparameters=results["hyperparameters"],
        tags=["squad", "question-answering"],
    )
    card.save(os.path.join(out, "README.md"))
    if scores:
        print("\nSQuAD: " + ", ".join(f"{k} = {v:.2f}" for k, v in scores.items()))
    print(f"outputs in {os.path.abspath(out)}")
    if args.push_to_hub:
        print(f"pushed: {reporting.push_directory(out, args.push_to_hub)}")
    if train_examples is not None:
        finished(backup_dir, strategy)
    return results


def squad_inputs(args, hub_data=None):
    """Fingerprints of the training data and the starting checkpoint.

    The evaluation file is not one: it is scored only after training, so a
    resumed run scores what it holds now, as a first run would.
    """
    from .resume import checkpoint_fingerprints
    from .resume import fingerprints

    if args.train_file:
        found = fingerprints("--train-file", [args.train_file])
    else:
        found = {f"--dataset {args.dataset} train": hub_data}
    return {**found, **checkpoint_fingerprints(args.model)}


SCORE_KEYS = ("exact_match", "f1", "exact", "HasAns_exact", "HasAns_f1",
              "NoAns_exact", "NoAns_f1", "best_exact", "best_f1")  # fmt: skip


def evaluate_squad(args, model, tokenizer, examples, window, evaluate, out):
    from bert_keras.training.data import to_tf_dataset

    features = examples.map(
        lambda batch: eval_features(tokenizer, batch, **window),
        batched=True,
        remove_columns=examples.column_names,
        desc="Windows (eval)",
    )
    ds = to_tf_dataset(
        features, args.eval_batch_size, label_column=None,
        pad_token_id=tokenizer.pad_token_id or 0,
    )  # fmt: skip
    start = time.perf_counter()
    starts, ends = [], []
    for batch in ds:
        outputs = model.predict_on_batch(batch)
        starts.append(_pad(np.asarray(outputs["start_logits"]), args.max_seq_length))
        ends.append(_pad(np.asarray(outputs["end_logits"]), args.max_seq_length))
    start_logits, end_logits = np.concatenate(starts), np.concatenate(ends)
    predictions, nbest, null_odds = postprocess(
        examples,
        features,
        start_logits,
        end_logits,
        n_best_size=args.n_best_size,
        max_answer_length=args.max_answer_length,
        version_2_with_negative=args.version_2_with_negative,
        null_score_diff_threshold=args.null_score_diff_threshold,
    )
    eval_time = time.perf_counter() - start
    references = [
        {"id": i, "answers": a} for i, a in zip(examples["id"], examples["answers"])
    ]
    if args.version_2_with_negative:
        metric = evaluate.load(os.path.join(METRICS_DIR, "squad_v2"))
        formatted = [
            {"id": i, "prediction_text": t,
             "no_answer_probability": float(1 / (1 + np.exp(-null_odds[i])))}
            for i, t in predictions.items()
        ]  # fmt: skip
    else:
        metric = evaluate.load(os.path.join(METRICS_DIR, "squad"))
        formatted = [{"id": i, "prediction_text": t} for i, t in predictions.items()]
    scores = metric.compute(predictions=formatted, references=references)
    with open(os.path.join(out, "predictions.json"), "w", encoding="utf-8") as handle:
        json.dump(predictions, handle, indent=2, ensure_ascii=False)
    with open(
        os.path.join(out, "nbest_predictions.json"), "w", encoding="utf-8"
    ) as handle:
        json.dump(
            {k: [{key: e[key] for key in ("text", "probability", "start_logit",
                                           "end_logit")} for e in v]
             for k, v in nbest.items()},
            handle, indent=2, ensure_ascii=False,
        )  # fmt: skip
    if args.version_2_with_negative:
        with open(os.path.join(out, "null_odds.json"), "w", encoding="utf-8") as handle:
            json.dump(null_odds, handle, indent=2)
    return {
        **{k: float(v) for k, v in scores.items()},
        "eval_examples": len(examples),
        "eval_windows": len(features),
        "eval_time_seconds": eval_time,
        "eval_examples_per_second": len(examples) / max(eval_time, 1e-9),
        "predictions_missing": len(examples) - len(predictions),
    }


def _pad(logits, length):
    padded = np.full((logits.shape[0], length), -1e4, np.float32)
    padded[:, : logits.shape[1]] = logits
    return padded


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
