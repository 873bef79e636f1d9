"""Running means that count each global batch whole, on any number of replicas.

Keras keeps a metric's sums per replica and, across workers, averages the
replicas' results: a mean of ratios, wrong whenever a global batch splits
unevenly (its last batch, or masked tokens spread unevenly). Here every
update adds the global batch's sums, all-reduced, on every replica, so each
replica holds the single-process value and any average of them is exact.
"""

import keras
import tensorflow as tf
from keras import ops


def _global_sums(*values):
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce(tf.distribute.ReduceOp.SUM, list(values))


class GlobalMean(keras.metrics.Mean):
    """`keras.metrics.Mean` over the whole global batch of every step.

    `values` and `sample_weight` (broadcastable to `values`) are this
    replica's; one process gives exactly `keras.metrics.Mean`'s result.
    `direction` ("up" for accuracies, "down" for losses and errors) tells
    Keras' callbacks which way is better (`EarlyStopping(monitor=...)`).
    """

    def __init__(self, name, direction, **kwargs):
        super().__init__(name=name, **kwargs)
        if direction not in ("up", "down"):
            raise ValueError(
                f"direction must be 'up' or 'down'. Received: {direction!r}"
            )
        self._direction = direction

    def update_state(self, values, sample_weight=None):
        values = ops.cast(values, self.dtype)
        weights = (
            ops.ones_like(values)
            if sample_weight is None
            else ops.broadcast_to(
                ops.cast(sample_weight, self.dtype), ops.shape(values)
            )
        )
        total, count = _global_sums(ops.sum(values * weights), ops.sum(weights))
        self.total.assign_add(total)
        self.count.assign_add(count)


class GlobalBatchLoss(keras.metrics.Mean):
    """Keras' loss tracker, fed the global batch's loss on every replica.

    Keras passes each replica's loss times the number of replicas, weighted
    by the replica's batch size. The replicas' losses are shares of the
    global mean (bert_keras.training.losses): their sum is the global loss,
    weighted here by the global batch size.
    """

    def update_state(self, values, sample_weight=None):
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return super().update_state(values, sample_weight=sample_weight)
        share = ops.cast(values, self.dtype) / context.num_replicas_in_sync
        batch = ops.cast(1 if sample_weight is None else sample_weight, self.dtype)
        loss, count = _global_sums(share, batch)
        self.total.assign_add(loss * count)
        self.count.assign_add(count)
