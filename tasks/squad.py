"""Fine-tune and evaluate `BertForQuestionAnswering` on SQuAD v1.1 / v2.0.

    python -m tasks.squad --model NAME_OR_DIR --output-dir OUT \\
        [--train-file train.json] [--eval-file dev.json] [--dataset rajpurkar/squad] \\
        [--version-2-with-negative] [--max-seq-length 384] [--doc-stride 128]

`--eval-file` alone evaluates an already fine-tuned model. OUT receives the
checkpoint, `predictions.json` (id -> answer, the official format),
`nbest_predictions.json`, `results.json`, transformers' `all_results.json`
and `eval_results.json`, a model card and, after training,
`training_curves.png` (loss, learning rate, EM and F1 per logging step and
evaluation), TensorBoard logs in `runs/`, `train_results.json`,
`trainer_state.json` and with --save-steps `checkpoint-STEP/` directories
(`tasks.observe`).
"""

import argparse
import json
import logging
import os
import sys
import time

import numpy as np

from . import lora_cli
from .cli import AT_LEAST_ONE
from .cli import FINITE
from .cli import RESUMABLE_FLAGS
from .cli import HelpFormatter
from .cli import add_training_arguments
from .cli import check_training_arguments
from .cli import configure_logging
from .cli import encoding_fingerprint
from .cli import load_tokenizer
from .cli import start_strategy
from .cli import training_optimizer
from .observe import add_observe_arguments
from .observe import check_observe_arguments
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
        prog="python -m tasks.squad",
        description=__doc__.splitlines()[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--model",
        required=True,
        help="Hub id or checkpoint dir (with its fast tokenizer) to fine-tune "
        "or evaluate",
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        help="where the checkpoint, predictions, results and logs go (new, "
        "empty, or an interrupted run of the same command to resume)",
    )
    parser.add_argument(
        "--train-file",
        default=None,
        help="SQuAD-format JSON to train on (default: --dataset's train split, "
        "or no training)",
    )
    parser.add_argument(
        "--eval-file",
        default=None,
        help="SQuAD-format JSON to evaluate on (default: --dataset's "
        "validation split, or no evaluation)",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="Hub dataset (rajpurkar/squad or rajpurkar/squad_v2) for the "
        "splits no file is given for (default: none)",
    )
    parser.add_argument(
        "--version-2-with-negative",
        action="store_true",
        help="SQuAD 2.0: questions may have no answer (predicted as the empty "
        "string when the null score wins)",
    )
    parser.add_argument(
        "--doc-stride",
        type=int,
        default=128,
        help="tokens of overlap between consecutive windows of a long context",
    )
    parser.add_argument(
        "--max-query-length",
        type=int,
        default=64,
        help="questions longer than this many tokens are cut (and counted)",
    )
    parser.add_argument(
        "--n-best-size",
        type=int,
        default=20,
        help="start and end candidates per window kept when searching spans; "
        "answers kept in nbest_predictions.json",
    )
    parser.add_argument(
        "--max-answer-length",
        type=int,
        default=30,
        help="longest answer span, in tokens",
    )
    parser.add_argument(
        "--null-score-diff-threshold",
        type=float,
        default=0.0,
        help="SQuAD 2.0: predict no answer when the null score beats the best "
        "span's by more than this",
    )
    add_training_arguments(
        parser,
        epochs=2,
        batch_size=12,
        eval_batch_size=64,
        learning_rate=3e-5,
        max_seq_length=384,
    )
    lora_cli.add_lora_arguments(parser)
    add_observe_arguments(parser)
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
    lora_cli.check_lora_arguments(parser, args, bool(args.train_file or args.dataset))
    check_observe_arguments(
        parser,
        args,
        metrics=V2_METRICS if args.version_2_with_negative else V1_METRICS,
        default_metric="f1",
        # Evaluations during training need both splits.
        evaluates=bool(args.train_file or args.dataset)
        and bool(args.eval_file or args.dataset),
    )
    return args


# The scores tasks/metrics/squad and squad_v2 give (eval_ metrics).
V1_METRICS = ("exact_match", "f1")
V2_METRICS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact",
              "NoAns_f1", "best_exact", "best_f1")  # fmt: skip


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

    from . import observe
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
    chief = is_chief(strategy)
    step_logger = observe.StepLogger(
        os.path.join(out, observe.LOG_DIR) if args.report_to == "tensorboard" else None,
        args.logging_steps,
        chief=chief,
    )
    evaluator = None
    if train_examples is not None:
        settings = {k: v for k, v in vars(args).items() if k not in RESUMABLE_FLAGS}
        resume_callbacks, checkpoint = resumable(
            backup_dir,
            settings,
            history,
            strategy,
            inputs=squad_inputs(args, hub_data),
            step_log=step_logger,
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
        squad_eval = SquadEvaluation(args, tokenizer, eval_examples, window, evaluate)

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
            new_fingerprint=encoding_fingerprint(
                train_examples,
                tokenizer,
                "squad-train-windows-1",
                sorted(window.items()),
            ),
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
            bucket=args.group_by_length,
            pad_token_id=tokenizer.pad_token_id or 0,
        )
        # Global batches: the step count and schedule are those of one worker.
        # total_steps counts optimizer updates (batches / accumulation steps).
        with strategy.scope():
            resume_callbacks = lora_cli.apply_lora(model, args, resume_callbacks)
            optimizer, total_steps = training_optimizer(
                args, int(train_ds.cardinality()), model.config.num_hidden_layers
            )
            model.compile(optimizer=optimizer)
        step_logger.samples_per_epoch = len(features)
        if eval_examples is not None:
            evaluator = observe.evaluator_from_flags(
                step_logger, squad_eval.log_row, args, total_steps
            )
        step_callbacks, state = observe.step_callbacks(
            step_logger,
            evaluator,
            args,
            out=out,
            total_steps=total_steps,
            updates_per_epoch=total_steps / args.epochs,
            save=lambda d: lora_cli.save_model(model, tokenizer, args, d),
        )
        start = time.perf_counter()
        model.fit(
            train_ds,
            epochs=args.epochs,
            callbacks=[
                StopOnNonFiniteLoss(),
                *step_callbacks,
                history,
                *resume_callbacks,
            ],
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
        if evaluator is not None:
            results.update(observe.best_model_results(evaluator))
        results["epochs"] = history.epochs
        results["train_loss_per_epoch"] = [row["loss"] for row in history.epochs]
        results["data"]["train"] = train_stats
        lora_cli.save_model(model, tokenizer, args, out)
        if not is_chief(strategy):
            return {"chief": False, "steps": int(model.optimizer.iterations.numpy())}
        # Score the saved checkpoint in float32: what transformers would load.
        model = bk.BertForQuestionAnswering.from_pretrained(out, dtype="float32")
    else:
        model.save_pretrained(out, tokenizer=tokenizer)
        if not is_chief(strategy):
            return {"chief": False}

    if eval_examples is not None:
        results.update(squad_eval.final(model, out))
        results["data"]["eval"] = eval_stats
    results["hyperparameters"] = {
        k: v for k, v in vars(args).items() if k not in ("output_dir", "push_to_hub")
    }
    results = reporting.shareable(results)
    results["framework_versions"] = reporting.framework_versions()
    results["replicas"] = strategy.num_replicas_in_sync
    reporting.write_json(os.path.join(out, "results.json"), results)
    trained = train_examples is not None
    epoch = step_logger.epoch_of(step_logger.step) if trained else None
    observe.write_trainer_files(
        out,
        train=observe.train_results(step_logger, len(features)) if trained else None,
        evaluation=observe.eval_results(
            {k: v for k, v in results.items() if k in SCORE_KEYS},
            epoch,
            results["eval_examples"],
            results["eval_time_seconds"],
        )
        if eval_examples is not None
        else None,
        state=state() if trained else None,
    )
    if step_logger.log_history:
        reporting.plot_curves(
            os.path.join(out, "training_curves.png"),
            step_logger.log_history,
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


class SquadEvaluation:
    """The dev set's windows, predicted and scored (EM, F1) whenever asked.

    The windows and the metric are prepared once; `log_row` runs during
    training (`tasks.observe.StepEvaluator`), `final` at the end, which also
    writes the prediction files.
    """

    def __init__(self, args, tokenizer, examples, window, evaluate):
        from bert_keras.training.data import to_tf_dataset

        self.args, self.examples = args, examples
        self.pad_token_id = tokenizer.pad_token_id or 0
        self.features = examples.map(
            lambda batch: eval_features(tokenizer, batch, **window),
            batched=True,
            remove_columns=examples.column_names,
            desc="Windows (eval)",
            new_fingerprint=encoding_fingerprint(
                examples, tokenizer, "squad-eval-windows-1", sorted(window.items())
            ),
        )
        self.ds = to_tf_dataset(
            self.features, args.eval_batch_size, label_column=None,
            pad_token_id=tokenizer.pad_token_id or 0,
        )  # fmt: skip
        self.references = [
            {"id": i, "answers": a} for i, a in zip(examples["id"], examples["answers"])
        ]
        name = "squad_v2" if args.version_2_with_negative else "squad"
        self.metric = evaluate.load(os.path.join(METRICS_DIR, name))

    def logits(self, model, training):
        """`(start_logits, end_logits)`, (windows, max_seq_length) float32.

        During training the model lives in the run's strategy: `predict`
        over batches padded to --max-seq-length spreads them over the
        replicas and puts the outputs back in order. The final, local model
        predicts batch by batch, each padded only to its longest window.
        """
        length = self.args.max_seq_length
        verbose = 1 if self.args.verbose == 1 else 0
        if training:
            padded = self.ds.map(
                lambda batch: _pad_features(batch, length, self.pad_token_id)
            )
            outputs = model.predict(padded, verbose=verbose)
            return tuple(
                np.asarray(outputs[key], np.float32)
                for key in ("start_logits", "end_logits")
            )
        from .observe import EvalProgress

        starts, ends = [], []
        progress = EvalProgress(len(self.ds), verbose)
        for batch in self.ds:
            outputs = model.predict_on_batch(batch)
            starts.append(_pad(np.asarray(outputs["start_logits"]), length))
            ends.append(_pad(np.asarray(outputs["end_logits"]), length))
            progress.update()
        return np.concatenate(starts), np.concatenate(ends)

    def predict(self, model, training=False):
        """`(predictions, nbest, null_odds, scores, seconds)` of `model`."""
        args = self.args
        start = time.perf_counter()
        start_logits, end_logits = self.logits(model, training)
        predictions, nbest, null_odds = postprocess(
            self.examples,
            self.features,
            start_logits,
            end_logits,
            n_best_size=args.n_best_size,
            max_answer_length=args.max_answer_length,
            version_2_with_negative=args.version_2_with_negative,
            null_score_diff_threshold=args.null_score_diff_threshold,
        )
        seconds = time.perf_counter() - start
        if args.version_2_with_negative:
            formatted = [
                {"id": i, "prediction_text": t,
                 "no_answer_probability": float(1 / (1 + np.exp(-null_odds[i])))}
                for i, t in predictions.items()
            ]  # fmt: skip
        else:
            formatted = [
                {"id": i, "prediction_text": t} for i, t in predictions.items()
            ]
        scores = self.metric.compute(predictions=formatted, references=self.references)
        return predictions, nbest, null_odds, scores, seconds

    def log_row(self, model):
        """An evaluation's row of the step log: eval_exact_match, eval_f1, ..."""
        *_, scores, seconds = self.predict(model, training=True)
        keys = V2_METRICS if self.args.version_2_with_negative else V1_METRICS
        row = {f"eval_{k}": float(v) for k, v in scores.items() if k in keys}
        row["eval_runtime"] = seconds
        row["eval_samples_per_second"] = len(self.examples) / max(seconds, 1e-9)
        row["eval_steps_per_second"] = len(self.ds) / max(seconds, 1e-9)
        return row

    def final(self, model, out):
        """Scores `model`, writes the prediction files to `out`; the results."""
        predictions, nbest, null_odds, scores, eval_time = self.predict(model)
        with open(
            os.path.join(out, "predictions.json"), "w", encoding="utf-8"
        ) as handle:
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
        if self.args.version_2_with_negative:
            with open(
                os.path.join(out, "null_odds.json"), "w", encoding="utf-8"
            ) as handle:
                json.dump(null_odds, handle, indent=2)
        examples = len(self.examples)
        return {
            **{k: float(v) for k, v in scores.items()},
            "eval_examples": examples,
            "eval_windows": len(self.features),
            "eval_time_seconds": eval_time,
            "eval_examples_per_second": examples / max(eval_time, 1e-9),
            "predictions_missing": examples - len(predictions),
        }


def _pad_features(batch, length, pad_token_id):
    """A batch of windows padded to `length` tokens (ids with the pad id)."""
    import tensorflow as tf

    padded = {}
    for key, value in batch.items():
        extra = length - tf.shape(value)[-1]
        fill = pad_token_id if key == "input_ids" else 0
        padded[key] = tf.pad(value, [[0, 0], [0, extra]], constant_values=fill)
    return padded


def _pad(logits, length):
    padded = np.full((logits.shape[0], length), -1e4, np.float32)
    padded[:, : logits.shape[1]] = logits
    return padded


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
