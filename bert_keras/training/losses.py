"""Task losses with transformers' semantics, written with `keras.ops`.

Labels of -100 are ignored (HF's `CrossEntropyLoss` default); logits are
upcast to float32 so mixed-precision training computes its loss in full
precision. Every mean is over the global batch: under `tf.distribute` each
replica returns its share (its sum over the global count), so the shares,
whose gradients the strategy sums, add up to the single-device loss.
"""

from keras import ops

IGNORE_INDEX = -100


def _weighted_mean(values, sample_weight):
    """Mean over examples; a weight scales its example, the count stays."""
    if sample_weight is not None:
        sample_weight = ops.cast(
            ops.reshape(sample_weight, ops.shape(values)), "float32"
        )
        values = values * sample_weight
    count = ops.cast(ops.size(values), "float32")
    return ops.sum(values) / ops.maximum(_global_sum(count), 1.0)


def sparse_cross_entropy(labels, logits, sample_weight=None):
    """Mean cross-entropy over examples; `logits` (..., classes), labels (...)."""
    labels = ops.reshape(ops.cast(labels, "int32"), ops.shape(logits)[:-1])
    values = ops.sparse_categorical_crossentropy(
        labels, ops.cast(logits, "float32"), from_logits=True
    )
    return _weighted_mean(values, sample_weight)


def masked_cross_entropy(labels, logits, sample_weight=None, ignore_index=IGNORE_INDEX):
    """Mean cross-entropy over the positions whose label is not `ignore_index`.

    0 when every label is ignored (transformers gives NaN there). A per-example
    `sample_weight` (batch,) scales each example's positions; the mean stays
    over the counted positions, as Keras' "sum over batch size" does.
    """
    labels = ops.reshape(ops.cast(labels, "int32"), ops.shape(logits)[:-1])
    keep = ops.not_equal(labels, ignore_index)
    values = ops.sparse_categorical_crossentropy(
        ops.where(keep, labels, 0), ops.cast(logits, "float32"), from_logits=True
    )
    keep = ops.cast(keep, "float32")
    weights = keep
    if sample_weight is not None:
        sample_weight = ops.cast(sample_weight, "float32")
        while len(sample_weight.shape) < len(keep.shape):
            sample_weight = ops.expand_dims(sample_weight, -1)
        weights = keep * sample_weight
    return ops.sum(values * weights) / ops.maximum(_global_sum(ops.sum(keep)), 1.0)


def _global_sum(value):
    """`value` summed over the replicas of a tf.distribute step (else itself)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def mean_squared_error(labels, predictions, sample_weight=None):
    """Regression loss; `(batch, 1)` predictions against `(batch,)` labels."""
    predictions = ops.cast(predictions, "float32")
    labels = ops.reshape(ops.cast(labels, "float32"), ops.shape(predictions))
    values = ops.mean(ops.square(predictions - labels), axis=-1)
    return _weighted_mean(values, sample_weight)


def binary_cross_entropy(labels, logits, sample_weight=None):
    """Multi-label loss: independent sigmoid per label, mean over everything."""
    logits = ops.cast(logits, "float32")
    labels = ops.reshape(ops.cast(labels, "float32"), ops.shape(logits))
    values = ops.mean(
        ops.binary_crossentropy(labels, logits, from_logits=True), axis=-1
    )
    return _weighted_mean(values, sample_weight)


def span_cross_entropy(
    start_positions, end_positions, start_logits, end_logits, sample_weight=None
):
    """QA loss: mean of start and end cross-entropy, as transformers computes it.

    Positions outside the sequence are clamped to `seq_len` and ignored.
    """
    seq_len = ops.shape(start_logits)[-1]

    def one_side(positions, logits):
        positions = ops.reshape(ops.cast(positions, "int32"), (-1,))
        positions = ops.clip(positions, 0, seq_len)
        positions = ops.where(ops.equal(positions, seq_len), IGNORE_INDEX, positions)
        return masked_cross_entropy(positions, logits, sample_weight)

    return (
        one_side(start_positions, start_logits) + one_side(end_positions, end_logits)
    ) / 2.0


def ignore_mask(labels, ignore_index=IGNORE_INDEX):
    """Returns `(labels with ignored set to 0, float weights)` for metrics."""
    labels = ops.cast(labels, "int32")
    keep = ops.not_equal(labels, ignore_index)
    return ops.where(keep, labels, 0), ops.cast(keep, "float32")
