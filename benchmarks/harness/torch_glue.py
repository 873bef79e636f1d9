"""Fine-tune a BERT checkpoint on a GLUE task with PyTorch `transformers`.

The reference side of `glue_vs_transformers.py` and of `compare.py`'s SST-2
epoch: a plain PyTorch loop with the recipe `python -m tasks.glue` uses, so
the two differ only in the framework. It lives in the harness because
`compare_worker.py` runs it inside its own process (its peak RSS is the
worker's); `benchmarks/torch_glue.py` is its command line.

    python benchmarks/torch_glue.py --task sst2 --model NAME_OR_DIR \\
        --output-dir OUT [--data-dir DIR] [--mixed-precision] [--num-threads 2]

Same data (`tasks.glue_tasks.load_glue`, same rows), same tokenization
(`tasks.glue_tasks.tokenize`), dynamic padding per batch, seeded shuffling, AdamW
(eps 1e-6, no decay on biases and LayerNorm weights), linear warmup then
linear decay to 0, gradient clipping at 1.0, a dev pass after every epoch
(timed with training, as `tasks.glue` does), and final dev scores in float32.
Writes OUT/results.json with the keys `tasks.glue` writes (`eval_accuracy`,
`eval_f1`, ..., `train_time_seconds`). Never imports TensorFlow.
"""

import argparse
import os
import time

import numpy as np
from bert_keras_tasks.cli import recipe_record
from bert_keras_tasks.glue_tasks import TASKS
from bert_keras_tasks.glue_tasks import GlueScores
from bert_keras_tasks.glue_tasks import get_task
from bert_keras_tasks.glue_tasks import load_glue
from bert_keras_tasks.glue_tasks import tokenize

from harness import flags
from harness import results
from harness import torch_loop

COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "label")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/torch_glue.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--task", required=True, help=f"one of {sorted(TASKS)}")
    parser.add_argument("--model", required=True, help="Hub id or local checkpoint dir")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--data-dir", default=None)
    flags.add_recipe(
        parser,
        epochs=3,
        batch_size=32,
        eval_batch_size=128,
        learning_rate=2e-5,
        max_seq_length=128,
        warmup_ratio=0.1,
        weight_decay=0.01,
    )
    parser.add_argument("--max-train-samples", type=int, default=None)
    torch_loop.add_torch_flags(parser)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "learning_rate", "max_seq_length"):
        if getattr(args, name) <= 0:
            parser.error(f"{flags.flag(name)} must be positive")
    try:
        args.task = get_task(args.task)
    except ValueError as error:
        parser.error(str(error))
    return args


def predict(model, loader, mixed_precision):
    """Returns (logits as float32 numpy, mean loss) over a loader, in order."""
    import torch

    model.eval()
    logits, losses, sizes = [], [], []
    with torch.no_grad(), torch_loop.bf16_autocast(mixed_precision):
        for batch in loader:
            outputs = model(**batch)
            logits.append(outputs.logits.float().numpy())
            losses.append(float(outputs.loss))
            sizes.append(len(batch["labels"]))
    return np.concatenate(logits), float(np.average(losses, weights=sizes))


def main(argv=None):
    args = parse_args(argv)
    from transformers import AutoTokenizer
    from transformers import BertForSequenceClassification

    torch = torch_loop.set_up(args)
    task = args.task
    os.makedirs(args.output_dir, exist_ok=True)

    splits, stats = load_glue(task, args.data_dir, ("train",) + task.dev_splits)
    if args.max_train_samples is not None:
        splits["train"] = splits["train"].select(
            range(min(args.max_train_samples, len(splits["train"])))
        )
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    encoded = {
        name: tokenize(ds, tokenizer, task, args.max_seq_length)
        for name, ds in splits.items()
    }
    first_dev = task.dev_splits[0]
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = torch_loop.make_loader(
        encoded["train"], tokenizer, COLUMNS, args.batch_size, generator
    )
    dev_loader = torch_loop.make_loader(
        encoded[first_dev], tokenizer, COLUMNS, args.eval_batch_size
    )
    references = np.asarray(encoded[first_dev]["label"])
    scores = GlueScores(task)
    model = BertForSequenceClassification.from_pretrained(
        args.model, dtype=torch.float32, **task.head_config()
    )
    total_steps = len(train_loader) * args.epochs
    optimizer, scheduler, warmup_steps = torch_loop.create_optimizer(
        model, args, total_steps
    )

    epochs = []
    train_loop_time = epoch_eval_time = 0.0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        loss = torch_loop.train_epoch(
            model, train_loader, optimizer, scheduler, args, epoch
        )
        train_loop_time += time.perf_counter() - start
        start = time.perf_counter()
        logits, dev_loss = predict(model, dev_loader, args.mixed_precision)
        epoch_eval_time += time.perf_counter() - start
        dev_scores = scores.compute(first_dev, logits, references)
        epochs.append(
            {
                "epoch": epoch + 1,
                "loss": loss,
                "val_loss": dev_loss,
                **{f"val_{k}": float(v) for k, v in dev_scores.items()},
            }
        )
        if args.verbose:
            print(epochs[-1], flush=True)
    train_time = train_loop_time + epoch_eval_time

    # Final scores in float32, like tasks.glue (which reloads its checkpoint).
    start = time.perf_counter()
    logits, _ = predict(model, dev_loader, mixed_precision=False)
    eval_time = time.perf_counter() - start
    final_scores = scores.compute(first_dev, logits, references)

    num_train = len(encoded["train"])
    run = {
        **{f"eval_{k}": float(v) for k, v in final_scores.items()},
        "task": task.name,
        "model": args.model,
        "train_examples": num_train,
        "dev_examples": len(references),
        "train_loss_per_epoch": [row["loss"] for row in epochs],
        "epochs": epochs,
        "train_time_seconds": train_time,
        "train_loop_seconds": train_loop_time,
        "epoch_eval_seconds": epoch_eval_time,
        "dev_time_seconds": eval_time,
        "train_examples_per_second": num_train * args.epochs / train_time,
        "optimizer_steps": total_steps,
        "warmup_steps": warmup_steps,
        **torch_loop.run_facts(model),
        "data": stats,
        "hyperparameters": {
            **recipe_record(args),
            "batching": "DataLoader(shuffle=True), as Trainer's default",
            "optimizer": "torch AdamW eps 1e-6, no decay on bias/LayerNorm, "
            "clip_grad_norm 1.0",
            "lr_schedule": "get_linear_schedule_with_warmup",
            "mixed_precision": "autocast bfloat16" if args.mixed_precision else "none",
        },
    }
    torch_loop.check_no_tensorflow("torch_glue.py")
    results.write_json(
        os.path.join(args.output_dir, "results.json"), run, sort_keys=True
    )
    summary = ", ".join(
        f"{k} = {v:.4f}" for k, v in run.items() if k.startswith("eval_")
    )
    print(f"{task.name} dev: {summary}; train {train_time:.1f} s")
    return run
