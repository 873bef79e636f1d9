"""Do bert_keras and PyTorch transformers pretrain the same way, step by step?

Builds one random `BertForPreTraining` (dropout off, float32), saves it and
loads it into transformers, draws the same masked MLM + NSP batches from a
`tasks.pretrain` instance directory, and trains both with the same recipe
(AdamW eps 1e-6, weight decay 0.01 off biases and LayerNorm, linear warmup
and decay, global clipping at 1.0). Prints both losses and MLM accuracies
every `--every` steps: with identical weights, data and arithmetic they
should follow each other closely until floating-point differences grow.

    python benchmarks/pretraining_parity.py --work OUT/work [--steps 300] \\
        [--learning-rate 1e-3] [--batch-size 32] [--output parity.json]
"""

import argparse
import os
import tempfile
import time
import types

import numpy as np
from harness import results
from harness import torch_loop


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/pretraining_parity.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--work", required=True, help="tasks.pretrain OUT/work")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default="pretraining_parity.json")
    return parser.parse_args(argv)


def batches(args, tokenizer):
    """The first `--steps` batches `tasks.pretrain` would train on, as numpy."""
    from bert_keras_tasks.pretrain import masked_batches

    recipe = types.SimpleNamespace(
        max_predictions_per_seq=20,
        masked_lm_prob=0.15,
        whole_word_masking=False,
        mlm_only=False,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    pattern = os.path.join(args.work, "instances", "instances-*.tfrecord")
    dataset = masked_batches(pattern, tokenizer, recipe).take(args.steps)
    return [
        (
            {k: v.numpy() for k, v in features.items()},
            {k: v.numpy() for k, v in labels.items()},
        )
        for features, labels in dataset
    ]


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import torch
    import transformers

    import bert_keras as bk
    from bert_keras.training.optimization import create_optimizer

    keras.utils.set_random_seed(args.seed)
    tokenizer = bk.AutoTokenizer.from_pretrained(os.path.join(args.work, "tokenizer"))
    data = batches(args, tokenizer)
    config = bk.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        intermediate_size=4 * args.hidden,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    ours = bk.BertForPreTraining(config, max_predictions_per_seq=20)
    ours.compile(
        optimizer=create_optimizer(
            args.learning_rate,
            total_steps=args.steps,
            warmup_ratio=0.1,  # rounded as the torch reference rounds it
            weight_decay=0.01,
        )
    )
    with tempfile.TemporaryDirectory() as directory:
        ours.save_pretrained(directory)
        theirs = transformers.BertForPreTraining.from_pretrained(
            directory, dtype=torch.float32
        )
    theirs.train()
    # The reference AdamW, exclusions and schedule: the recipe bert_keras uses.
    recipe = types.SimpleNamespace(
        learning_rate=args.learning_rate, weight_decay=0.01, warmup_ratio=0.1
    )
    optimizer, scheduler, _ = torch_loop.create_optimizer(theirs, recipe, args.steps)

    rows = []
    start = time.perf_counter()
    for step, (features, labels) in enumerate(data, 1):
        ours.reset_metrics()  # per-step figures, not running means
        logs = ours.train_on_batch(features, labels, return_dict=True)
        inputs = {
            k: torch.from_numpy(features[k]).long()
            for k in ("input_ids", "token_type_ids", "attention_mask")
        }
        positions = torch.from_numpy(features["masked_lm_positions"]).long()
        gathered = torch.from_numpy(labels["labels"]).long()
        full = torch.full_like(inputs["input_ids"], -100)
        valid = gathered != -100
        rows_index = torch.arange(full.shape[0])[:, None].expand_as(positions)
        full[rows_index[valid], positions[valid]] = gathered[valid]
        nsp = torch.from_numpy(labels["next_sentence_label"]).long()
        output = theirs(**inputs, labels=full, next_sentence_label=nsp)
        torch_loop.apply_gradients(output.loss, theirs, optimizer, scheduler)
        with torch.no_grad():
            predicted = output.prediction_logits.argmax(-1)
            mask = full != -100
            their_accuracy = float((predicted[mask] == full[mask]).float().mean())
        row = {
            "step": step,
            "bert_keras_loss": float(logs["loss"]),
            "torch_loss": float(output.loss.detach()),
            "bert_keras_mlm_accuracy": float(logs.get("mlm_accuracy", np.nan)),
            "torch_mlm_accuracy": their_accuracy,
        }
        rows.append(row)
        if step % args.every == 0 or step == 1:
            print(
                f"step {step}: loss {row['bert_keras_loss']:.4f} (bert_keras) "
                f"{row['torch_loss']:.4f} (torch); MLM acc "
                f"{row['bert_keras_mlm_accuracy']:.3f} / {their_accuracy:.3f}",
                flush=True,
            )
    results.write_json(
        args.output,
        {"settings": vars(args), "seconds": time.perf_counter() - start, "steps": rows},
    )


if __name__ == "__main__":
    main()
