"""Fine-tune a BERT checkpoint on SQuAD v1.1 with PyTorch `transformers`.

The reference side of `squad_vs_transformers.py`: a plain PyTorch loop with
the recipe `python -m tasks.squad` uses, so the two differ only in the
framework that trains and runs the model.

    python benchmarks/torch_squad.py --model NAME_OR_DIR --train-file T.json \\
        --eval-file E.json --output-dir OUT [--mixed-precision] [--num-threads 2]

Same reading, question truncation, windows and labels (`tasks.squad_data`),
same post-processing (`tasks.squad_postprocess`) and metric module, dynamic
padding per batch, seeded shuffling, AdamW (eps 1e-6, no decay on biases and
LayerNorm weights), linear warmup then decay to 0, gradient clipping at 1.0,
the loss the mean of the start and end cross-entropies (as bert_keras), and
evaluation in float32 (as `tasks.squad` scores its saved checkpoint).
Writes OUT/results.json with the keys `tasks.squad` writes (`exact_match`,
`f1`, `train_time_seconds`, ...). Never imports TensorFlow.
"""

import argparse
import os
import sys
import time

import numpy as np
from bert_keras_tasks.squad import METRICS_DIR
from bert_keras_tasks.squad_data import count_unlocated
from bert_keras_tasks.squad_data import eval_features
from bert_keras_tasks.squad_data import read_squad
from bert_keras_tasks.squad_data import train_features
from bert_keras_tasks.squad_data import truncate_questions
from bert_keras_tasks.squad_postprocess import postprocess
from harness import flags
from harness import results
from harness import torch_loop

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/torch_squad.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", required=True, help="Hub id or local checkpoint dir")
    parser.add_argument("--train-file", required=True)
    parser.add_argument("--eval-file", required=True)
    parser.add_argument("--output-dir", required=True)
    flags.add_recipe(
        parser,
        epochs=2,
        batch_size=12,
        eval_batch_size=64,
        learning_rate=3e-5,
        max_seq_length=384,
        doc_stride=128,
    )
    parser.add_argument("--max-query-length", type=int, default=64)
    parser.add_argument("--n-best-size", type=int, default=20)
    parser.add_argument("--max-answer-length", type=int, default=30)
    flags.add_recipe(parser, warmup_ratio=0.1, weight_decay=0.01)
    torch_loop.add_torch_flags(parser)
    return parser.parse_args(argv)


def predict(model, loader, length):
    """Start and end logits (float32, padded to `length` with -1e4), in order."""
    import torch

    model.eval()
    starts, ends = [], []
    with torch.no_grad():
        for batch in loader:
            outputs = model(**{k: batch[k] for k in MODEL_INPUTS})
            for logits, out in (
                (outputs.start_logits, starts),
                (outputs.end_logits, ends),
            ):
                padded = np.full((logits.shape[0], length), -1e4, np.float32)
                padded[:, : logits.shape[1]] = logits.float().numpy()
                out.append(padded)
    return np.concatenate(starts), np.concatenate(ends)


def features(args, tokenizer):
    """Examples (questions truncated) and their windows, train and eval."""
    window = {"max_seq_length": args.max_seq_length, "doc_stride": args.doc_stride}
    train_examples, train_stats = read_squad(args.train_file, train=True)
    eval_examples, eval_stats = read_squad(args.eval_file)
    train_examples, _ = truncate_questions(
        train_examples, tokenizer, args.max_query_length
    )
    eval_examples, _ = truncate_questions(
        eval_examples, tokenizer, args.max_query_length
    )
    train = train_examples.map(
        lambda batch, indices: train_features(tokenizer, batch, indices, **window),
        batched=True,
        with_indices=True,
        remove_columns=train_examples.column_names,
    )
    train_stats["answers_not_in_any_window"] = count_unlocated(
        train, len(train_examples)
    )
    evaluation = eval_examples.map(
        lambda batch: eval_features(tokenizer, batch, **window),
        batched=True,
        remove_columns=eval_examples.column_names,
    )
    stats = {"train": train_stats, "eval": eval_stats}
    return train_examples, train, eval_examples, evaluation, stats


def main(argv=None):
    args = parse_args(argv)
    import evaluate
    from transformers import AutoTokenizer
    from transformers import BertForQuestionAnswering

    torch = torch_loop.set_up(args)
    os.makedirs(args.output_dir, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train_examples, train, eval_examples, evaluation, stats = features(args, tokenizer)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = torch_loop.make_loader(
        train,
        tokenizer,
        MODEL_INPUTS + ("start_positions", "end_positions"),
        args.batch_size,
        generator,
    )
    eval_loader = torch_loop.make_loader(
        evaluation, tokenizer, MODEL_INPUTS, args.eval_batch_size
    )

    model = BertForQuestionAnswering.from_pretrained(args.model, dtype=torch.float32)
    total_steps = len(train_loader) * args.epochs
    optimizer, scheduler, warmup_steps = torch_loop.create_optimizer(
        model, args, total_steps
    )
    epoch_losses = []
    start = time.perf_counter()
    for epoch in range(args.epochs):
        epoch_losses.append(
            torch_loop.train_epoch(
                model, train_loader, optimizer, scheduler, args, epoch
            )
        )
        if args.verbose:
            print(f"epoch {epoch + 1}: loss {epoch_losses[-1]:.4f}", flush=True)
    train_time = time.perf_counter() - start

    start = time.perf_counter()
    start_logits, end_logits = predict(model, eval_loader, args.max_seq_length)
    predictions, _, _ = postprocess(
        eval_examples,
        evaluation,
        start_logits,
        end_logits,
        n_best_size=args.n_best_size,
        max_answer_length=args.max_answer_length,
    )
    eval_time = time.perf_counter() - start
    metric = evaluate.load(os.path.join(METRICS_DIR, "squad"))
    scores = metric.compute(
        predictions=[{"id": i, "prediction_text": t} for i, t in predictions.items()],
        references=[
            {"id": i, "answers": a}
            for i, a in zip(eval_examples["id"], eval_examples["answers"])
        ],
    )
    run = {
        **{k: float(v) for k, v in scores.items()},
        "train_examples": len(train_examples),
        "train_windows": len(train),
        "eval_examples": len(eval_examples),
        "eval_windows": len(evaluation),
        "train_loss_per_epoch": epoch_losses,
        "train_time_seconds": train_time,
        "train_examples_per_second": len(train) * args.epochs / train_time,
        "eval_time_seconds": eval_time,
        "optimizer_steps": total_steps,
        "warmup_steps": warmup_steps,
        "predictions_missing": len(eval_examples) - len(predictions),
        **torch_loop.run_facts(model),
        "data": stats,
        "hyperparameters": {
            k: v for k, v in vars(args).items() if k not in ("output_dir",)
        },
    }
    torch_loop.check_no_tensorflow("torch_squad.py")
    results.write_json(
        os.path.join(args.output_dir, "results.json"), run, sort_keys=True
    )
    print(
        f"SQuAD: exact_match = {run['exact_match']:.2f}, f1 = "
        f"{run['f1']:.2f}; train {train_time:.1f} s"
    )
    return run


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
