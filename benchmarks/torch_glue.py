"""Fine-tune a BERT checkpoint on a GLUE task with PyTorch `transformers`.

The reference side of `glue_vs_transformers.py`: a plain PyTorch loop with the
recipe `python -m tasks.glue` uses, so the two differ only in the framework.

    python benchmarks/torch_glue.py --task sst2 --model NAME_OR_DIR \\
        --output-dir OUT [--data-dir DIR] [--mixed-precision] [--num-threads 2]

Same data (`tasks.glue_tasks.load_glue`, same rows), same tokenization
(`tasks.glue.tokenize`), dynamic padding per batch, seeded shuffling, AdamW
(eps 1e-6, no decay on biases and LayerNorm weights), linear warmup then
linear decay to 0, gradient clipping at 1.0, a dev pass after every epoch
(timed with training, as `tasks.glue` does), and final dev scores in float32.
Writes OUT/results.json with the keys `tasks.glue` writes (`eval_accuracy`,
`eval_f1`, ..., `train_time_seconds`). Never imports TensorFlow.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np

from tasks.glue import METRICS_PATH
from tasks.glue import tokenize
from tasks.glue_tasks import TASKS
from tasks.glue_tasks import get_task
from tasks.glue_tasks import load_glue

# Parameters AdamW does not decay: HF Trainer's rule (biases and LayerNorm).
NO_DECAY_SUFFIXES = ("bias", "LayerNorm.weight")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/torch_glue.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--task", required=True, help=f"one of {sorted(TASKS)}")
    parser.add_argument("--model", required=True, help="Hub id or local checkpoint dir")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help='train with torch.autocast("cpu", dtype=torch.bfloat16)',
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's own choice)",
    )
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "learning_rate", "max_seq_length"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    try:
        args.task = get_task(args.task)
    except ValueError as error:
        parser.error(str(error))
    return args


def make_loader(dataset, tokenizer, batch_size, generator=None):
    import torch
    from transformers import DataCollatorWithPadding

    keep = {"input_ids", "attention_mask", "token_type_ids", "label"}
    dataset = dataset.remove_columns(
        [name for name in dataset.column_names if name not in keep]
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=generator is not None,
        generator=generator,
        # Pads each batch to its own longest sequence, as bert_keras does.
        collate_fn=DataCollatorWithPadding(tokenizer),
    )


def create_optimizer(model, args, total_steps):
    import torch
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if name.endswith(NO_DECAY_SUFFIXES) else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.learning_rate,
        betas=(0.9, 0.999),
        eps=1e-6,
    )
    # Rounded like bert_keras.optimization.create_optimizer.
    warmup_steps = int(round(args.warmup_ratio * total_steps))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    return optimizer, scheduler, warmup_steps


def predict(model, loader, mixed_precision):
    """Returns (logits as float32 numpy, mean loss) over a loader, in order."""
    import torch

    model.eval()
    logits, losses, sizes = [], [], []
    with (
        torch.no_grad(),
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed_precision),
    ):
        for batch in loader:
            outputs = model(**batch)
            logits.append(outputs.logits.float().numpy())
            losses.append(float(outputs.loss))
            sizes.append(len(batch["labels"]))
    return np.concatenate(logits), float(np.average(losses, weights=sizes))


def main(argv=None):
    args = parse_args(argv)
    import evaluate
    import torch
    import transformers
    from transformers import AutoTokenizer
    from transformers import BertForSequenceClassification

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    transformers.set_seed(args.seed)
    transformers.logging.set_verbosity_error()
    task = args.task
    if task.is_regression:
        raise SystemExit("torch_glue.py covers the classification tasks only")
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
    train_loader = make_loader(encoded["train"], tokenizer, args.batch_size, generator)
    dev_loader = make_loader(encoded[first_dev], tokenizer, args.eval_batch_size)
    references = np.asarray(encoded[first_dev]["label"])
    metric = evaluate.load(METRICS_PATH, task.metric_name)

    model = BertForSequenceClassification.from_pretrained(
        args.model,
        num_labels=task.num_labels,
        id2label=dict(enumerate(task.label_names)),
        label2id={name: i for i, name in enumerate(task.label_names)},
        problem_type="single_label_classification",
        dtype=torch.float32,
    )
    total_steps = len(train_loader) * args.epochs
    optimizer, scheduler, warmup_steps = create_optimizer(model, args, total_steps)

    epochs = []
    train_loop_time = epoch_eval_time = 0.0
    for epoch in range(args.epochs):
        model.train()
        start = time.perf_counter()
        loss_sum, seen = 0.0, 0
        for step, batch in enumerate(train_loader):
            with torch.autocast(
                "cpu", dtype=torch.bfloat16, enabled=args.mixed_precision
            ):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach()) * len(batch["labels"])
            seen += len(batch["labels"])
            if args.verbose == 1 and step % 50 == 0:
                print(
                    f"epoch {epoch + 1} step {step}/{len(train_loader)} "
                    f"loss {loss_sum / seen:.4f}",
                    flush=True,
                )
        train_loop_time += time.perf_counter() - start
        start = time.perf_counter()
        logits, dev_loss = predict(model, dev_loader, args.mixed_precision)
        epoch_eval_time += time.perf_counter() - start
        dev_scores = metric.compute(
            predictions=logits.argmax(-1), references=references
        )
        epochs.append(
            {
                "epoch": epoch + 1,
                "loss": loss_sum / seen,
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
    scores = metric.compute(predictions=logits.argmax(-1), references=references)

    num_train = len(encoded["train"])
    results = {
        **{f"eval_{k}": float(v) for k, v in scores.items()},
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
        "num_threads": torch.get_num_threads(),
        "attention_implementation": model.config._attn_implementation,
        "data": stats,
        "hyperparameters": {
            "learning_rate": args.learning_rate,
            "train_batch_size": args.batch_size,
            "eval_batch_size": args.eval_batch_size,
            "epochs": args.epochs,
            "max_seq_length": args.max_seq_length,
            "warmup_ratio": args.warmup_ratio,
            "weight_decay": args.weight_decay,
            "seed": args.seed,
            "optimizer": "torch AdamW eps 1e-6, no decay on bias/LayerNorm, "
            "clip_grad_norm 1.0",
            "lr_schedule": "get_linear_schedule_with_warmup",
            "mixed_precision": "autocast bfloat16" if args.mixed_precision else "none",
            "max_train_samples": args.max_train_samples,
        },
        "framework_versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }
    if "tensorflow" in sys.modules:
        raise RuntimeError("torch_glue.py imported TensorFlow; timings would suffer")
    write_json(os.path.join(args.output_dir, "results.json"), results)
    summary = ", ".join(
        f"{k} = {v:.4f}" for k, v in results.items() if k.startswith("eval_")
    )
    print(f"{task.name} dev: {summary}; train {train_time:.1f} s")
    return results


def write_json(path, payload):
    import json

    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
