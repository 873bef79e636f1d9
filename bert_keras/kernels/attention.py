"""Fast attention: bfloat16 softmax, keys transposed once, rows by a product.

Same values and gradients as `modeling.attention.scaled_dot_product_attention`
and `select_rows` (tests/test_kernels.py); docs/performance.md says what each
change saved.
"""

import math

import keras
import tensorflow as tf
from keras import ops

from bert_keras.kernels import snapshot

_MASKED_SCORE = -3.4028235e38  # float32's minimum, as transformers adds
_MASKED_SCORE_BFLOAT16 = -3.3895314e38  # bfloat16's minimum


def fast_attention(query, key, value, attention_mask, *, num_heads, dropout, training):
    """Multi-head attention with the reference's arguments and results.

    Differences from the reference, values aside: keys go straight to
    (batch, heads, head_size, seq), one transpose each way in the backward
    pass instead of two; in bfloat16 the softmax stays in bfloat16 (oneDNN
    computes it in float32 inside), which halves what the backward pass keeps.

    Example:

    >>> x = ops.ones((3, 7, 32))
    >>> mask = ops.ones((3, 1, 1, 7), "bool")
    >>> context, probs = fast_attention(
    ...     x, x, x, mask, num_heads=4, dropout=lambda p, training: p,
    ...     training=False)
    >>> tuple(context.shape), tuple(probs.shape)
    ((3, 7, 32), (3, 4, 7, 7))
    """
    batch, rows, hidden = ops.shape(query)
    seq = ops.shape(key)[1]
    head_size = hidden // num_heads

    def split_heads(x, length, axes):
        # (batch, length, hidden) -> the axes of (batch, heads, length, head_size)
        x = ops.reshape(x, (batch, length, num_heads, head_size))
        return ops.transpose(x, axes)

    query = split_heads(query, rows, (0, 2, 1, 3))
    key = split_heads(key, seq, (0, 2, 3, 1))  # (batch, heads, head_size, seq)
    value = split_heads(value, seq, (0, 2, 1, 3))

    context, probs = attend(
        query, key, value, attention_mask, dropout=dropout, training=training
    )
    context = ops.transpose(context, (0, 2, 1, 3))  # (batch, rows, heads, head_size)
    return ops.reshape(context, (batch, rows, hidden)), probs


def attend(query, key, value, attention_mask, *, dropout, training, keys_last=True):
    """softmax(q k / sqrt(d) + mask) v over (batch, heads, ...) tensors.

    `key` is (batch, heads, head_size, seq) when `keys_last`, else
    (batch, heads, seq, head_size), multiplied transposed in the product.
    Returns the context (batch, heads, rows, head_size) and the probabilities.
    """
    # Scaled after the product, masked by an additive bias: oneDNN fuses the
    # three, and the backward pass has nothing to select.
    scale = 1.0 / math.sqrt(ops.shape(query)[-1])
    if keys_last:
        scores = ops.matmul(query, key)  # (batch, heads, rows, seq)
    else:
        scores = tf.linalg.matmul(query, key, transpose_b=True)
    if keras.backend.standardize_dtype(scores.dtype) == "bfloat16":
        bias = ops.where(attention_mask, 0.0, _MASKED_SCORE_BFLOAT16)
        scores = scores * ops.cast(scale, "bfloat16") + ops.cast(bias, "bfloat16")
        probs = ops.softmax(scores, axis=-1)
    else:
        # float16's range cannot hold the masked score: float32 softmax.
        bias = ops.where(attention_mask, 0.0, _MASKED_SCORE)
        scores = ops.cast(scores, "float32") * scale + bias
        probs = ops.cast(ops.softmax(scores, axis=-1), query.dtype)
    return ops.matmul(dropout(probs, training=training), value), probs


def packed_projection(tokens, denses, dtype):
    """`tokens` through several Dense layers at once: one product.

    For traces inside `snapshot.weight_snapshot`: their kernels and biases,
    side by side, are taken once from the snapshot. One (hidden, 3 * hidden)
    product runs faster than three (hidden, hidden) ones, most of all for few
    rows.

    Returns:
        (tokens, len(denses) * units) tensor of `dtype`.
    """
    kernel = snapshot.derived([d.kernel for d in denses], dtype, axis=1)
    bias = snapshot.derived([d.bias for d in denses], dtype, axis=0)
    return ops.add(ops.matmul(tokens, kernel), bias)


def split_packed_heads(packed, batch, length, parts, num_heads):
    """(batch * length, parts * hidden) -> `parts` tensors (batch, heads,
    length, head_size), with one transpose for all of them."""
    head_size = ops.shape(packed)[-1] // (parts * num_heads)
    x = ops.reshape(packed, (batch, length, parts, num_heads, head_size))
    x = ops.transpose(x, (2, 0, 3, 1, 4))
    return [x[index] for index in range(parts)]


def select_rows_by_product(hidden_states, positions):
    """`hidden_states[b, positions[b]]` as a product with one-hot positions.

    A gather's gradient scatters into zeros of the whole input; this one's is
    one more matrix product.

    Example:

    >>> x = ops.reshape(ops.arange(6.0), (1, 3, 2))
    >>> select_rows_by_product(x, ops.array([[2, 0]])).numpy().tolist()
    [[[4.0, 5.0], [0.0, 1.0]]]
    """
    seq = ops.shape(hidden_states)[1]
    one_hot = ops.one_hot(positions, seq, dtype=hidden_states.dtype)
    return ops.matmul(one_hot, hidden_states)  # (batch, n, hidden)
