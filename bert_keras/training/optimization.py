"""AdamW with BERT's learning-rate schedule and weight-decay exclusions."""

import keras
from keras import ops

from bert_keras.keras_private import OptimizerHooks
from bert_keras.keras_private import adam_slots
from bert_keras.keras_private import uses_weight_decay

# Biases and LayerNorm parameters are not decayed (BERT's recipe, HF's Trainer).
NO_DECAY_NAMES = ("bias", "gamma", "beta")


@keras.saving.register_keras_serializable(package="bert_keras")
class AdamW(OptimizerHooks, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` whose Adam step is one fused kernel per weight.

    Keras writes the Adam update as about ten element-wise operations per
    weight, each a pass over memory; on the TensorFlow backend this class
    runs TensorFlow's `ResourceApplyAdam` kernel instead: the same formula
    (`m += (g - m)(1 - beta_1)`, `v += (g^2 - v)(1 - beta_2)`,
    `w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)`)
    in one pass, and the decoupled weight decay `w -= lr * decay * w` as one
    product, `w *= 1 - lr * decay`. Global-norm clipping takes one reduction
    per gradient and clips an embedding's gradient as the rows the batch
    touched (Keras' norm and scale, without passes over the whole table).
    Variables and checkpoints are those of `keras.optimizers.AdamW`; other
    backends, `amsgrad` and (for the decay) distribution strategies use its
    own code.
    """

    def clip_gradients(self, grads):
        """Keras' global-norm clipping, one reduction per gradient; embedding
        gradients clipped as the rows a batch touched. None: Keras' own."""
        if (
            keras.backend.backend() != "tensorflow"
            or not self.global_clipnorm
            or self.clipnorm
            or self.clipvalue
        ):
            return None
        import tensorflow as tf

        grads = [
            _merge_rows(g) if isinstance(g, tf.IndexedSlices) else g for g in grads
        ]
        squared_norm = tf.add_n(
            [
                2.0 * tf.nn.l2_loss(g.values if isinstance(g, tf.IndexedSlices) else g)
                for g in grads
                if g is not None
            ]
        )
        norm = tf.sqrt(squared_norm)
        # Keras' scale: 1 below the clip, NaN if the norm is not finite.
        clip = tf.cast(self.global_clipnorm, norm.dtype)
        scale = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)

        def scaled(g):
            if isinstance(g, tf.IndexedSlices):
                return tf.IndexedSlices(
                    g.values * tf.cast(scale, g.dtype), g.indices, g.dense_shape
                )
            return g * tf.cast(scale, g.dtype)

        return [None if g is None else scaled(g) for g in grads]

    def apply_weight_decay(self, variables):
        """`w -= lr * decay * w` as one product, `w *= 1 - lr * decay`.

        Returns True when applied; None hands it to Keras (other backends,
        distribution strategies)."""
        if keras.backend.backend() != "tensorflow" or self.weight_decay is None:
            return None
        import tensorflow as tf

        if tf.distribute.has_strategy():
            return None
        for variable in variables:
            if uses_weight_decay(self, variable):
                dtype = variable.dtype
                rate = tf.cast(self.learning_rate, dtype) * tf.cast(
                    self.weight_decay, dtype
                )
                variable.assign(variable * (1 - rate))
        return True

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        momentum, velocity = adam_slots(self, variable)
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        step = tf.cast(self.iterations + 1, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(momentum),
            v=_handle(velocity),
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


def _merge_rows(slices):
    """An `IndexedSlices` with each row index once (duplicates summed)."""
    import tensorflow as tf

    indices, positions = tf.unique(slices.indices)
    values = tf.math.unsorted_segment_sum(
        slices.values, positions, tf.shape(indices)[0]
    )
    return tf.IndexedSlices(values, indices, slices.dense_shape)


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


@keras.saving.register_keras_serializable(package="bert_keras")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak_learning_rate`, then linear decay to 0.

    The same curve as transformers' `get_linear_schedule_with_warmup`:
    `lr(step) = peak * step / warmup` for `step < warmup`, then
    `peak * (total - step) / (total - warmup)`, and 0 from `total` on.

    Args:
        peak_learning_rate: float, learning rate at the end of warmup.
        total_steps: int, step at which the rate reaches 0.
        warmup_steps: int, length of the warmup.

    Example:

    >>> schedule = WarmupLinearDecay(2e-5, total_steps=1000, warmup_steps=100)
    >>> round(float(schedule(50)), 12)
    1e-05
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps=0):
        if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                "Expected 0 <= warmup_steps <= total_steps and total_steps > 0. "
                f"Received: warmup_steps={warmup_steps}, total_steps={total_steps}"
            )
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = ops.cast(self.peak_learning_rate, "float32")
        warmup = float(self.warmup_steps)
        total = float(self.total_steps)
        warming = peak * step / max(warmup, 1.0)
        decaying = peak * ops.maximum(total - step, 0.0) / max(total - warmup, 1.0)
        return ops.where(step < warmup, warming, decaying)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }


def create_optimizer(
    learning_rate=5e-5,
    *,
    total_steps=None,
    warmup_steps=None,
    warmup_ratio=0.0,
    weight_decay=0.01,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-6,
    clipnorm=1.0,
):
    """Returns AdamW with decoupled weight decay that skips biases and LayerNorm.

    Args:
        learning_rate: float peak learning rate, or a
            `keras.optimizers.schedules.LearningRateSchedule`.
        total_steps: int or None. When given, the rate follows
            `WarmupLinearDecay` (warmup, then linear decay to 0 at this step);
            otherwise it is constant.
        warmup_steps: int or None, warmup length; defaults to
            `warmup_ratio * total_steps`.
        warmup_ratio: float, warmup as a fraction of `total_steps`.
        weight_decay: float, decoupled weight decay (not applied to biases
            and LayerNorm parameters).
        beta_1: float, Adam first moment decay.
        beta_2: float, Adam second moment decay.
        epsilon: float, Adam epsilon.
        clipnorm: float or None, global gradient-norm clipping.

    Returns:
        `bert_keras.training.optimization.AdamW`, a `keras.optimizers.AdamW`.

    Example:

    >>> model = BertForSequenceClassification(config)
    >>> optimizer = create_optimizer(2e-5, total_steps=3 * len(dataset),
    ...                              warmup_ratio=0.1)
    >>> model.compile(optimizer=optimizer)
    """
    if total_steps is not None and not isinstance(
        learning_rate, keras.optimizers.schedules.LearningRateSchedule
    ):
        if warmup_steps is None:
            warmup_steps = int(round(warmup_ratio * total_steps))
        learning_rate = WarmupLinearDecay(learning_rate, total_steps, warmup_steps)
    optimizer = AdamW(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=clipnorm,
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
