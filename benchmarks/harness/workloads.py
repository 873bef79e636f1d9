"""The workloads of `compare.py`: model shapes, recipe, random batches, FLOPs."""

SHAPES = {
    "minilm": {"layers": 6, "hidden": 384, "heads": 12, "intermediate": 1536},
    "base": {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072},
    "large": {"layers": 24, "hidden": 1024, "heads": 16, "intermediate": 4096},
    # For smoke runs of the scripts only (seconds a step): no figure to quote.
    "tiny": {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128},
}
VOCAB_SIZE = 30522
MAX_POSITIONS = 512
LEARNING_RATE = 5e-5
WEIGHT_DECAY = 0.01


def config_arguments(shape_name):
    """`BertConfig` arguments of a shape, the same for bert_keras and transformers."""
    shape = SHAPES[shape_name]
    return {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": shape["hidden"],
        "num_hidden_layers": shape["layers"],
        "num_attention_heads": shape["heads"],
        "intermediate_size": shape["intermediate"],
        "max_position_embeddings": MAX_POSITIONS,
        "num_labels": 2,
    }


def random_batch(batch_size, seq_length, masked_positions, seed=0):
    """Full-length random ids, two segments, labels and masked positions (numpy)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (batch_size, seq_length)
    ids = rng.integers(1000, VOCAB_SIZE, size=shape, dtype=np.int32)
    ids[:, 0] = 101  # [CLS]
    ids[:, -1] = 102  # [SEP]
    segments = np.zeros(shape, dtype=np.int32)
    segments[:, seq_length // 2 :] = 1
    positions = np.stack(
        [
            np.sort(
                rng.choice(
                    np.arange(1, seq_length - 1), masked_positions, replace=False
                )
            )
            for _ in range(batch_size)
        ]
    ).astype(np.int32)
    return {
        "input_ids": ids,
        "token_type_ids": segments,
        "attention_mask": np.ones(shape, dtype=np.int32),
        "labels": rng.integers(0, 2, size=(batch_size,), dtype=np.int32),
        "masked_lm_positions": positions,
        "masked_lm_ids": rng.integers(
            1000, VOCAB_SIZE, size=positions.shape, dtype=np.int32
        ),
        "next_sentence_label": rng.integers(0, 2, size=(batch_size,), dtype=np.int32),
    }


# === FLOPs (matrix products only: what MFU counts) ===


def encoder_flops(shape, batch, seq):
    h, i, layers = shape["hidden"], shape["intermediate"], shape["layers"]
    tokens = batch * seq
    projections = 2 * tokens * (4 * h * h + 2 * h * i)
    attention = 2 * 2 * batch * seq * seq * h  # scores and weighted values
    return layers * (projections + attention) + 2 * batch * h * h  # + pooler


def skipped_flops(shape, batch, seq, rows):
    """Products bert_keras leaves out when the last layer computes `rows` of
    the `seq` positions of each sequence (keys and values still cover all)."""
    h, i = shape["hidden"], shape["intermediate"]
    unused = batch * (seq - rows)  # query rows left out
    # Query and output projections, feed-forward, and both attention products.
    return 2 * unused * (2 * h * h + 2 * h * i) + 2 * 2 * unused * seq * h


def workload_flops(workload, shape_name, args, system=None):
    """Matrix-product FLOPs of one step at `args.batch_size` x `args.seq_length`:
    the full model's (what MFU counts), or with `system="bert_keras"` the ones
    it executes."""
    return step_flops(
        workload,
        shape_name,
        args.batch_size,
        args.seq_length,
        args.masked_positions,
        system,
    )


def step_flops(
    workload, shape_name, batch_size, seq_length, masked_positions=20, system=None
):
    """`workload_flops` with the batch and sequence given explicitly."""
    shape = SHAPES[shape_name]
    forward = encoder_flops(shape, batch_size, seq_length)
    if workload == "pretrain":
        h, positions = shape["hidden"], batch_size * masked_positions
        forward += 2 * positions * (h * h + h * VOCAB_SIZE)
    if system == "bert_keras":
        # Its last layer runs at [CLS] only (classification) or at [CLS] and
        # the masked positions (pretraining).
        rows = 1 + (masked_positions if workload == "pretrain" else 0)
        forward -= skipped_flops(shape, batch_size, seq_length, rows)
    # Backward costs twice the forward products (input and weight gradients).
    return forward if workload == "infer" else 3 * forward


def add_step_flags(parser):
    """The step shape and timing flags `compare.py` passes on to its workers."""
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--masked-positions", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
