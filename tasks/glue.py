"""Fine-tune a BERT checkpoint on a GLUE task with `model.fit`.

    python -m tasks.glue --task sst2 --model NAME_OR_DIR --output-dir OUT \\
        [--data-dir DIR] [--epochs 3] [--batch-size 32] [--learning-rate 2e-5]

Writes to OUT: the fine-tuned checkpoint (opens in transformers), tokenizer,
`results.json`, `predictions.tsv`, a model card `README.md`,
`training_curves.png` (one point per logging step and evaluation),
TensorBoard logs in `runs/`, transformers' `all_results.json`,
`train_results.json`, `eval_results.json`, `trainer_state.json`, and with
--save-steps `checkpoint-STEP/` directories (`tasks.observe`).
"""

import argparse
import logging
import os
import sys
import time

import numpy as np

from . import lora_cli
from .cli import RESUMABLE_FLAGS
from .cli import HelpFormatter
from .cli import add_training_arguments
from .cli import check_training_arguments
from .cli import configure_logging
from .cli import load_tokenizer
from .cli import recipe_record
from .cli import start_strategy
from .cli import training_optimizer
from .glue_tasks import TASKS
from .glue_tasks import GlueScores
from .glue_tasks import get_task
from .glue_tasks import load_glue
from .glue_tasks import tokenize
from .observe import add_observe_arguments
from .observe import check_observe_arguments

logger = logging.getLogger("tasks.glue")
# What tasks/metrics/glue computes per metric config (the eval_ metrics).
METRIC_KEYS = {
    "cola": ("matthews_correlation",),
    "stsb": ("pearson", "spearmanr"),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
}
# The metric a run picks its best model by unless --metric-for-best-model says.
MAIN_METRIC = {"cola": "matthews_correlation", "stsb": "pearson", "mrpc": "f1",
               "qqp": "f1"}  # fmt: skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tasks.glue",
        description=__doc__.splitlines()[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--task", required=True, help=f"one of {sorted(TASKS)}")
    parser.add_argument(
        "--model",
        required=True,
        help="Hub id or local checkpoint dir (with its tokenizer) to fine-tune",
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        help="where the checkpoint, results, logs and predictions go (new, "
        "empty, or an interrupted run of the same command to resume)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder in the GLUE layout (DIR/SST-2/train.tsv, ...); "
        "default: the Hub dataset nyu-mll/glue",
    )
    add_training_arguments(
        parser,
        epochs=3,
        batch_size=32,
        eval_batch_size=128,
        learning_rate=2e-5,
        max_seq_length=128,
    )
    parser.add_argument(
        "--ignore-mismatched-sizes",
        action="store_true",
        help="start a classifier head whose size differs from --model's (e.g. "
        "2 labels to MNLI's 3) from scratch instead of refusing it",
    )
    add_observe_arguments(parser)
    lora_cli.add_lora_arguments(parser)
    args = parser.parse_args(argv)
    try:
        args.task = get_task(args.task)
    except ValueError as error:
        parser.error(str(error))
    check_observe_arguments(
        parser,
        args,
        metrics=(*task_metrics(args.task), "loss"),
        default_metric=MAIN_METRIC.get(args.task.metric_name, "accuracy"),
    )
    # At least one token of each sentence; below the special tokens' count,
    # the tokenizer would not truncate at all.
    if args.task.is_pair:
        minimum, layout = 5, f"{args.task.name}'s [CLS] A [SEP] B [SEP], 1 token each,"
    else:
        minimum, layout = 3, f"{args.task.name}'s [CLS] text [SEP], 1 token of text,"
    check_training_arguments(parser, args, min_seq_length=minimum, layout=layout)
    lora_cli.check_lora_arguments(parser, args)
    return args


def task_metrics(task):
    """The metric names a dev evaluation of `task` gives (besides loss)."""
    return METRIC_KEYS.get(task.metric_name, ("accuracy",))


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
        claim_output_dir(args.output_dir, "tasks.glue", args.overwrite_output_dir)
    with output_directory(args.output_dir, strategy) as out:
        return fine_tune(args, strategy, out)


def fine_tune(args, strategy, out):
    """Trains, saves to `out` and (on the chief) scores; returns the results."""
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

    task = args.task
    keras.utils.set_random_seed(args.seed)
    os.makedirs(out, exist_ok=True)

    splits, stats = load_glue(task, args.data_dir, ("train",) + task.dev_splits)
    if args.max_train_samples is not None:
        splits["train"] = splits["train"].select(
            range(min(args.max_train_samples, len(splits["train"])))
        )
    if args.max_eval_samples is not None:
        for split in task.dev_splits:
            splits[split] = splits[split].select(
                range(min(args.max_eval_samples, len(splits[split])))
            )
    history = reporting.EpochHistory()
    chief = is_chief(strategy)
    step_logger = observe.StepLogger(
        os.path.join(out, observe.LOG_DIR) if args.report_to == "tensorboard" else None,
        args.logging_steps,
        samples_per_epoch=len(splits["train"]),
        chief=chief,
    )
    # A killed run, rerun with the same command, resumes after its last
    # finished epoch (OUT/backup, removed when the run completes). Checked
    # before any work: a backup of other flags or inputs is refused at once.
    settings = {k: v for k, v in vars(args).items() if k not in RESUMABLE_FLAGS}
    settings["task"] = task.name
    backup_dir = os.path.join(args.output_dir, "backup")
    resume_callbacks, checkpoint = resumable(
        backup_dir,
        settings,
        history,
        strategy,
        inputs=glue_inputs(args, splits),
        step_log=step_logger,
    )

    tokenizer = load_tokenizer(args.model, "--model")
    encoded = {
        name: tokenize(ds, tokenizer, task, args.max_seq_length)
        for name, ds in splits.items()
    }
    pad_id = tokenizer.pad_token_id or 0
    train_ds = to_tf_dataset(
        encoded["train"],
        args.batch_size,
        shuffle=True,
        seed=args.seed,
        bucket=args.group_by_length,
        pad_token_id=pad_id,
    )
    # Dev splits are predicted shortest first, so that a batch is padded
    # little (SST-2 dev: 25 k tokens instead of 46 k in file order); the
    # logits are put back in file order.
    dev_ds, file_order = {}, {}
    for split in task.dev_splits:
        by_length = np.argsort(
            [len(ids) for ids in encoded[split]["input_ids"]], kind="stable"
        )
        dev_ds[split] = to_tf_dataset(
            encoded[split].select(by_length), args.eval_batch_size, pad_token_id=pad_id
        )
        file_order[split] = np.argsort(by_length)

    # A progress bar over the dev batches with --verbose 1.
    eval_verbose = 1 if args.verbose == 1 else 0

    def dev_logits(model, split):
        logits = model.predict(dev_ds[split], verbose=eval_verbose)["logits"]
        return logits[file_order[split]]

    # Global batches: the step count and schedule are those of one worker.
    steps_per_epoch = int(train_ds.cardinality())
    with strategy.scope():
        model = bk.BertForSequenceClassification.from_pretrained(
            args.model,
            ignore_mismatched_sizes=args.ignore_mismatched_sizes,
            dtype="mixed_bfloat16" if args.mixed_precision else None,
            **task.head_config(),
        )
        resume_callbacks = lora_cli.apply_lora(model, args, resume_callbacks)
        # total_steps counts optimizer updates (batches / accumulation steps).
        optimizer, total_steps = training_optimizer(
            args, steps_per_epoch, model.config.num_hidden_layers
        )
        model.compile(optimizer=optimizer)

    scores = GlueScores(task)
    first_dev = task.dev_splits[0]
    references = {
        split: np.asarray(encoded[split]["label"]) for split in task.dev_splits
    }

    def dev_scores(model):
        """One dev pass gives both the loss and the task metrics."""
        start = time.perf_counter()
        logits = dev_logits(model, first_dev)
        loss = model.task().loss(references[first_dev], {"logits": logits})
        row = {"eval_loss": float(loss)}
        for key, value in scores.compute(
            first_dev, logits, references[first_dev]
        ).items():
            row[f"eval_{key}"] = float(value)
        runtime = time.perf_counter() - start
        row["eval_runtime"] = runtime
        row["eval_samples_per_second"] = len(encoded[first_dev]) / max(runtime, 1e-9)
        row["eval_steps_per_second"] = len(dev_ds[first_dev]) / max(runtime, 1e-9)
        return row

    updates_per_epoch = steps_per_epoch / args.gradient_accumulation_steps
    evaluator = observe.evaluator_from_flags(step_logger, dev_scores, args, total_steps)
    step_callbacks, state = observe.step_callbacks(
        step_logger,
        evaluator,
        args,
        out=out,
        total_steps=total_steps,
        updates_per_epoch=updates_per_epoch,
        save=lambda directory: lora_cli.save_model(model, tokenizer, args, directory),
    )
    train_start = time.perf_counter()
    model.fit(
        train_ds,
        epochs=args.epochs,
        callbacks=[StopOnNonFiniteLoss(), *step_callbacks, history, *resume_callbacks],
        shuffle=False,  # train_ds reshuffles itself, seeded
        verbose=args.verbose,
    )
    train_time = time.perf_counter() - train_start
    epochs_run = args.epochs - checkpoint.restored_epoch
    lora_cli.save_model(model, tokenizer, args, out)
    if not is_chief(strategy):
        return {"chief": False, "steps": int(model.optimizer.iterations.numpy())}
    # Final scores come from the saved checkpoint in float32, so that
    # predictions.tsv is exactly what transformers computes from OUT/ (a
    # bfloat16 forward pass flips a few borderline predictions).
    eval_model = bk.BertForSequenceClassification.from_pretrained(out, dtype="float32")

    results = {}
    eval_time = 0.0
    for split in task.dev_splits:
        start = time.perf_counter()
        logits = dev_logits(eval_model, split)
        eval_time += time.perf_counter() - start
        split_scores = scores.compute(split, logits, references[split])
        suffix = "" if split == first_dev else "_mismatched"
        results.update({f"eval_{k}{suffix}": float(v) for k, v in split_scores.items()})
        write_predictions(
            os.path.join(
                out,
                "predictions.tsv" if split == first_dev else f"predictions_{split}.tsv",
            ),
            scores.predictions(logits),
            task,
        )

    num_train = len(encoded["train"])
    num_eval = sum(len(encoded[split]) for split in task.dev_splits)
    results.update(
        {
            "task": task.name,
            "model": reporting.shareable(args.model),
            "train_examples": num_train,
            "dev_examples": num_eval,
            "train_loss_per_epoch": [row["loss"] for row in history.epochs],
            "epochs": history.epochs,
            "train_time_seconds": train_time,
            "dev_time_seconds": eval_time,
            "steps": int(model.optimizer.iterations.numpy()),
            "planned_steps": total_steps,
            "replicas": strategy.num_replicas_in_sync,
            "resumed_after_epoch": checkpoint.restored_epoch,
            **observe.best_model_results(evaluator),
            "train_examples_per_second": num_train * epochs_run / train_time,
            "dev_examples_per_second": num_eval / max(eval_time, 1e-9),
            "data": reporting.shareable(stats),
            "hyperparameters": hyperparameters(args),
            "framework_versions": reporting.framework_versions(),
        }
    )
    reporting.write_json(os.path.join(out, "results.json"), results)
    epoch = step_logger.epoch_of(step_logger.step)
    observe.write_trainer_files(
        out,
        train=observe.train_results(step_logger, num_train),
        evaluation=observe.eval_results(
            {k: v for k, v in results.items() if k.startswith("eval_")},
            epoch,
            num_eval,
            eval_time,
        ),
        state=state(),
    )
    reporting.plot_curves(
        os.path.join(out, "training_curves.png"),
        step_logger.log_history,
        f"{task.name}: {reporting.shareable(args.model)}",
    )
    card = model_card(
        model,
        model_name=args.push_to_hub
        or os.path.basename(os.path.abspath(args.output_dir)),
        base_model=args.model if not os.path.isdir(args.model) else None,
        datasets=["nyu-mll/glue"],
        metrics=sorted(
            {
                k.replace("eval_", "").replace("_mismatched", "")
                for k in results
                if k.startswith("eval_")
            }
        ),
        results={k: round(v, 4) for k, v in results.items() if k.startswith("eval_")},
        training_hyperparameters={
            **hyperparameters(args),
            **reporting.framework_versions(),
        },
        tags=["glue", task.name],
    )
    card.save(os.path.join(out, "README.md"))

    summary = ", ".join(
        f"{k} = {v:.4f}" for k, v in results.items() if k.startswith("eval_")
    )
    print(f"\n{task.name} dev: {summary}")
    print(f"outputs in {os.path.abspath(out)}")
    if args.push_to_hub:
        info = reporting.push_directory(out, args.push_to_hub)
        print(f"pushed to the Hub: {info}")
    finished(backup_dir, strategy)
    return results


def glue_inputs(args, splits):
    """Fingerprints of the run's data files (or Hub datasets) and checkpoint."""
    from .resume import checkpoint_fingerprints
    from .resume import dataset_fingerprint
    from .resume import fingerprints

    task = args.task
    if args.data_dir is not None:
        paths = [
            os.path.join(args.data_dir, task.directory, f"{split}.tsv")
            for split in splits
        ]
        found = fingerprints("--data-dir", paths, root=args.data_dir)
    else:
        found = {}
        for split, dataset in splits.items():
            found.update(
                dataset_fingerprint(f"nyu-mll/glue {task.name} {split}", dataset)
            )
    return {**found, **checkpoint_fingerprints(args.model)}


def hyperparameters(args):
    return {
        **recipe_record(args),
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "layer_lr_decay": args.layer_lr_decay,
        "group_by_length": args.group_by_length,
        "optimizer": "AdamW, no decay on bias/LayerNorm, clipnorm 1.0",
        "lr_schedule": "linear warmup, then linear decay to 0",
        "mixed_precision": "mixed_bfloat16" if args.mixed_precision else "float32",
        "strategy": args.strategy,
        "eval_steps": args.eval_steps or "epoch",
        "metric_for_best_model": args.metric_for_best_model,
        "load_best_model_at_end": args.load_best_model_at_end,
        "early_stopping_patience": args.early_stopping_patience,
        **lora_cli.lora_hyperparameters(args),
    }


def write_predictions(path, predictions, task):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("index\tprediction\n")
        for index, value in enumerate(predictions):
            label = (
                f"{value:.6f}" if task.is_regression else task.label_names[int(value)]
            )
            handle.write(f"{index}\t{label}\n")


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
