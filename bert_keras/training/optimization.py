"""AdamW with BERT's learning-rate schedule and weight-decay exclusions."""

import math
import re

import keras
from keras import ops

from bert_keras.errors import ConfigError
from bert_keras.keras_private import OptimizerHooks
from bert_keras.keras_private import adam_slots
from bert_keras.keras_private import uses_weight_decay

# Biases and LayerNorm parameters are not decayed (BERT's recipe, HF's Trainer).
NO_DECAY_NAMES = ("bias", "gamma", "beta")

# Variable paths of the embeddings and of encoder layer i (layer-wise decay).
_EMBEDDINGS_PATH = re.compile(r"(^|/)embeddings/")
_ENCODER_LAYER_PATH = re.compile(r"(^|/)encoder/layer_(\d+)/")


@keras.saving.register_keras_serializable(package="bert_keras")
class AdamW(OptimizerHooks, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` whose Adam step is one fused kernel per weight.

    Keras writes the Adam update as about ten element-wise operations per
    weight, each a pass over memory; on the TensorFlow backend this class
    runs TensorFlow's `ResourceApplyAdam` kernel instead, in one pass, with
    PyTorch's `AdamW` formula (`m += (g - m)(1 - beta_1)`,
    `v += (g^2 - v)(1 - beta_2)`,
    `w -= lr / (1 - beta_1^t) * m / (sqrt(v / (1 - beta_2^t)) + epsilon)`;
    Keras adds epsilon to `sqrt(v)` instead, which differs most for tiny
    gradients early in training), and the decoupled weight decay
    `w -= lr * decay * w` as one product, `w *= 1 - lr * decay`. Global-norm
    clipping takes one reduction per gradient and clips an embedding's
    gradient as the rows the batch touched (Keras' norm and scale, without
    passes over the whole table).
    Variables and checkpoints are those of `keras.optimizers.AdamW`; other
    backends and `amsgrad` use its own Adam step.

    Two options beyond Keras' AdamW:

    - `gradient_accumulation_steps=k` (Keras' own option) updates the
      weights every k-th call with the mean of the k gradients: clipping
      applies to that mean, weight decay and the Adam step once per update,
      and a `LearningRateSchedule` is called with the number of updates
      (`UpdateCountSchedule`), not of micro-batches. On TensorFlow the
      micro-batch gradients are summed over replicas every call, so it also
      works under `tf.distribute` strategies (Keras' version calls a
      cross-replica `merge_call` inside a `tf.cond`, which MirroredStrategy
      refuses).
    - `layer_lr_decay=d`: the learning rate (and with it the decoupled weight
      decay, as in the recipe's per-layer parameter groups) of a variable is
      multiplied by `layer_lr_multiplier(path, d, num_layers)`.

    Args:
        layer_lr_decay: float in (0, 1] or None (no layer-wise decay).
        num_layers: int or None, the encoder's layer count for
            `layer_lr_decay`; None: one more than the largest
            `encoder/layer_<i>/` index among the variables it is built on.
        no_decay_names: sequence of str, variables whose path contains one of
            these are not decayed (`exclude_from_weight_decay(var_names=)`,
            kept in the config so that a saved model reloads them).
        **kwargs: those of `keras.optimizers.AdamW`.

    Example:

    >>> optimizer = AdamW(learning_rate=1e-3, layer_lr_decay=0.9,
    ...                   gradient_accumulation_steps=4)
    """

    def __init__(
        self, *args, layer_lr_decay=None, num_layers=None, no_decay_names=(), **kwargs
    ):
        steps = kwargs.get("gradient_accumulation_steps")
        rate = kwargs.get("learning_rate", args[0] if args else None)
        if (
            steps
            and isinstance(rate, keras.optimizers.schedules.LearningRateSchedule)
            and not isinstance(rate, UpdateCountSchedule)
        ):
            rate = UpdateCountSchedule(rate, steps)
            if args:
                args = (rate,) + tuple(args[1:])
            else:
                kwargs["learning_rate"] = rate
        super().__init__(*args, **kwargs)
        if layer_lr_decay is not None and not 0 < layer_lr_decay <= 1:
            raise ConfigError(
                "layer_lr_decay must be in (0, 1]: each layer below the top "
                "gets this factor more of decay. Pass e.g. 0.9, or None for "
                f"no layer-wise decay. Received: layer_lr_decay={layer_lr_decay}"
            )
        self.layer_lr_decay = layer_lr_decay
        self.num_layers = num_layers
        self.no_decay_names = tuple(no_decay_names)
        if self.no_decay_names:
            self.exclude_from_weight_decay(var_names=list(self.no_decay_names))
        self._lr_multipliers = ()

    def build(self, variables):
        super().build(variables)
        if self.layer_lr_decay is None:
            return
        paths = [variable.path for variable in variables]
        num_layers = self.num_layers
        if num_layers is None:
            indices = [
                int(match.group(2))
                for match in map(_ENCODER_LAYER_PATH.search, paths)
                if match
            ]
            num_layers = max(indices) + 1 if indices else 0
        self._lr_multipliers = tuple(
            layer_lr_multiplier(path, self.layer_lr_decay, num_layers) for path in paths
        )

    def lr_multiplier(self, variable):
        """The factor `layer_lr_decay` gives `variable`'s learning rate (1.0
        without it)."""
        if not self._lr_multipliers:
            return 1.0
        return self._lr_multipliers[self._get_variable_index(variable)]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layer_lr_decay": self.layer_lr_decay,
                "num_layers": self.num_layers,
                "no_decay_names": list(self.no_decay_names),
            }
        )
        return config

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
        """Decoupled decay `w *= 1 - lr * multiplier * decay`.

        On TensorFlow it happens in `update_step`, per variable (there it also
        runs under distribution strategies); returns True."""
        if self.weight_decay is None:
            return None
        if keras.backend.backend() != "tensorflow":
            for variable in variables:
                self._decay(variable, self.learning_rate)
        return True

    def _decay(self, variable, learning_rate):
        if self.weight_decay is None or not uses_weight_decay(self, variable):
            return
        keep = self._step_scalar(
            ("keep", self.lr_multiplier(variable)),
            learning_rate,
            variable.dtype,
            lambda dtype: (
                1
                - ops.cast(learning_rate, dtype)
                * self.lr_multiplier(variable)
                * ops.cast(self.weight_decay, dtype)
            ),
        )
        variable.assign(variable * keep)

    def _step_scalar(self, name, learning_rate, dtype, make):
        """`make(dtype)`, made once per traced step instead of once per weight.

        The step's scalars (beta powers, casts, decay factors) are the same
        for every weight; made per weight they were a fifth of a traced
        training step's operations. Keyed by the graph being traced and the
        step's learning-rate tensor; eager steps make them afresh.
        """
        import tensorflow as tf

        if tf.executing_eagerly():
            return make(dtype)
        graph = tf.compat.v1.get_default_graph()
        cache = self.__dict__.get("_step_scalars")
        if cache is None or cache[0] is not graph or cache[1] is not learning_rate:
            cache = (graph, learning_rate, {})
            # Outside Keras' attribute tracking: graph tensors, not state.
            object.__setattr__(self, "_step_scalars", cache)
        key = (name, dtype)
        if key not in cache[2]:
            cache[2][key] = make(dtype)
        return cache[2][key]

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow":
            return super().update_step(
                gradient, variable, learning_rate * self.lr_multiplier(variable)
            )
        import tensorflow as tf

        self._decay(variable, learning_rate)
        multiplier = self.lr_multiplier(variable)
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate * multiplier)
        dtype = variable.dtype
        momentum, velocity = adam_slots(self, variable)
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        adam = self._step_scalar("adam", learning_rate, dtype, self._adam_scalars)
        rate = self._step_scalar(
            ("lr", multiplier),
            learning_rate,
            dtype,
            lambda dtype: tf.cast(learning_rate * multiplier, dtype),
        )
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(momentum),
            v=_handle(velocity),
            lr=rate,
            grad=tf.cast(gradient, dtype),
            **adam,
        )

    def _adam_scalars(self, dtype):
        import tensorflow as tf

        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        beta2_power = tf.pow(beta_2, step)
        return {
            "beta1_power": tf.pow(beta_1, step),
            "beta2_power": beta2_power,
            "beta1": beta_1,
            "beta2": beta_2,
            # PyTorch's AdamW adds epsilon to sqrt(v / (1 - beta_2^t)); the
            # kernel adds it to sqrt(v): scaled, the two are the same update.
            "epsilon": tf.cast(self.epsilon, dtype) * tf.sqrt(1 - beta2_power),
        }

    # Keras' `_backend_apply_gradients` (private, Keras 3.15) clips each
    # replica's gradient before the cross-replica sum, and with accumulation
    # decides a micro-batch's fate with `ops.cond(update?, clip+decay+update,
    # accumulate)`, whose update branch's `merge_call` MirroredStrategy
    # refuses. Here the sum comes first, then the clipping, and the updates
    # run unconditionally with only the per-device update inside a cond.
    def _backend_apply_gradients(self, grads, trainable_variables):
        if keras.backend.backend() != "tensorflow" or self.use_ema:
            return super()._backend_apply_gradients(grads, trainable_variables)
        import tensorflow as tf

        steps = self.gradient_accumulation_steps or 1
        context = tf.distribute.get_replica_context()
        strategy = tf.distribute.get_strategy()
        replicated = context is not None and strategy.num_replicas_in_sync > 1
        if steps == 1 and not replicated:
            return super()._backend_apply_gradients(grads, trainable_variables)
        if replicated:
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, list(grads))
        learning_rate = self.learning_rate
        if steps == 1:
            clipped = self._clip_gradients(list(grads))

            def apply(distribution, clipped):
                for variable, gradient in zip(trainable_variables, clipped):
                    distribution.extended.update(
                        _value(variable),
                        lambda var, g: self.update_step(g, var, learning_rate),
                        args=(gradient,),
                        group=False,
                    )

            tf.__internal__.distribute.interim.maybe_merge_call(
                apply, strategy, clipped
            )
            return
        accumulators = [
            self._accumulated_gradients[self._get_variable_index(v)]
            for v in trainable_variables
        ]
        totals = [
            acc + tf.cast(tf.convert_to_tensor(g), acc.dtype)
            for g, acc in zip(grads, accumulators)
        ]
        # The mean gradient of the k micro-batches, clipped as one batch's.
        means = self._clip_gradients([total / steps for total in totals])
        is_update = tf.equal((self._iterations + 1) % steps, 0)

        def accumulate(distribution, totals, means):
            for variable, accumulator, total, mean in zip(
                trainable_variables, accumulators, totals, means
            ):
                distribution.extended.update(
                    _value(accumulator),
                    lambda acc, total: acc.assign(
                        tf.where(is_update, tf.zeros_like(total), total)
                    ),
                    args=(total,),
                    group=False,
                )
                distribution.extended.update(
                    _value(variable),
                    lambda var, mean: tf.cond(
                        is_update,
                        lambda: self._update_op(mean, var, learning_rate),
                        tf.no_op,
                    ),
                    args=(mean,),
                    group=False,
                )

        tf.__internal__.distribute.interim.maybe_merge_call(
            accumulate, strategy, totals, means
        )

    def _update_op(self, gradient, variable, learning_rate):
        import tensorflow as tf

        with tf.control_dependencies([gradient]):
            self.update_step(gradient, variable, learning_rate)
        return tf.no_op()


def _value(variable):
    """The TensorFlow variable of a Keras variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


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


@keras.saving.register_keras_serializable(package="bert_keras")
class UpdateCountSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` called with the number of optimizer updates.

    Keras calls a schedule with its count of `apply()` calls, which under
    `gradient_accumulation_steps=k` counts micro-batches: the schedule would
    run k times too fast. `AdamW` wraps its schedule in this one when it
    accumulates, so `total_steps` and warmup are counted in updates.

    Args:
        schedule: a `keras.optimizers.schedules.LearningRateSchedule`.
        steps: int, micro-batches per update.

    Example:

    >>> schedule = UpdateCountSchedule(WarmupLinearDecay(1.0, 10, 0), steps=4)
    >>> round(float(schedule(8)), 6)  # 8 micro-batches = 2 updates
    0.8
    """

    def __init__(self, schedule, steps):
        self.schedule = schedule
        self.steps = steps

    def __call__(self, step):
        return self.schedule(ops.floor_divide(step, self.steps))

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "steps": self.steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def layer_lr_multiplier(path, decay, num_layers):
    """The learning-rate factor of layer-wise decay for the variable at `path`.

    Layers are numbered from the input: the embeddings (`embeddings/...`)
    are layer 0, encoder layer i (`encoder/layer_<i>/...`) is layer i + 1, and
    a variable at layer `n` gets `decay ** (num_layers - n)`. Everything else
    (pooler, task heads, MLM head) gets the full rate, and so does the top
    encoder layer; each layer below gets one more factor of `decay`. This is
    the layer-wise decay of Sun et al. 2019 ("How to Fine-Tune BERT for Text
    Classification") and of ELECTRA/BEiT fine-tuning up to a constant:
    BEiT's `layer_decay ** (L + 1 - id)` gives the top block `decay` (one
    extra factor below the head) and ELECTRA's `_get_layer_lrs` two, where
    this gives the top block the head's rate. A tied MLM decoder is the word
    embedding variable and gets its rate.

    Args:
        path: str, a Keras variable path, e.g.
            "encoder/layer_3/attention/query/kernel".
        decay: float, the factor per layer.
        num_layers: int, the encoder's layer count.

    Returns:
        float.

    Example:

    >>> layer_lr_multiplier("encoder/layer_10/output/dense/kernel", 0.5, 12)
    0.5
    >>> layer_lr_multiplier("embeddings/word_embeddings/embeddings", 0.5, 12)
    0.000244140625
    """
    match = _ENCODER_LAYER_PATH.search(path)
    if match:
        layer = int(match.group(2)) + 1
    elif _EMBEDDINGS_PATH.search(path):
        layer = 0
    else:
        return 1.0
    return float(decay) ** max(num_layers - layer, 0)


def count_updates(micro_batches, gradient_accumulation_steps=None):
    """The optimizer updates `micro_batches` batches give: the `total_steps`.

    With accumulation over k batches, Keras updates after every k-th batch,
    counting on across epochs; batches after the last full group of k are
    never applied. At least 1, so that a schedule always has a length.

    Args:
        micro_batches: int, batches `fit` runs (steps per epoch * epochs).
        gradient_accumulation_steps: int or None (1 batch per update).

    Returns:
        int.

    Example:

    >>> count_updates(10 * 3, gradient_accumulation_steps=4)
    7
    """
    return max(1, int(micro_batches) // max(1, gradient_accumulation_steps or 1))


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
    gradient_accumulation_steps=None,
    layer_lr_decay=None,
    num_layers=None,
):
    """Returns AdamW with decoupled weight decay that skips biases and LayerNorm.

    This is the optimizer the task CLIs (`tasks.glue`, `tasks.squad`) build,
    so a plain `model.compile(optimizer=create_optimizer(...))` trains on the
    same schedule when given the same numbers: `total_steps` counts optimizer
    updates, i.e. `count_updates(batches_per_epoch * epochs,
    gradient_accumulation_steps)`; the CLIs pass `warmup_ratio=0.1`,
    `weight_decay=0.01` and `clipnorm=1.0` by default. The rate is
    `WarmupLinearDecay`: 0 at update 0, rising linearly to `learning_rate` at
    `warmup_steps`, then falling linearly to 0 at `total_steps`.

    Args:
        learning_rate: float peak learning rate, or a
            `keras.optimizers.schedules.LearningRateSchedule`.
        total_steps: int or None, optimizer updates in the whole run. When
            given, the rate follows `WarmupLinearDecay` (warmup, then linear
            decay to 0 at this update); otherwise it is constant.
        warmup_steps: int or None, warmup length in updates; defaults to
            `ceil(warmup_ratio * total_steps)`, as transformers' `Trainer`.
        warmup_ratio: float, warmup as a fraction of `total_steps`.
        weight_decay: float, decoupled weight decay (not applied to biases
            and LayerNorm parameters).
        beta_1: float, Adam first moment decay.
        beta_2: float, Adam second moment decay.
        epsilon: float, Adam epsilon.
        clipnorm: float or None, global gradient-norm clipping (of the
            averaged gradient when accumulating).
        gradient_accumulation_steps: int or None. k > 1: update the weights
            every k batches with their mean gradient, the update one batch k
            times larger gives when the loss is a mean over the batch (it is
            for every bert_keras task loss, for equal-size batches; with
            ignored labels, -100, each batch's mean is over its own counted
            tokens, so batches with unequal counts are weighted equally
            rather than by tokens). 1 or None: no accumulation.
        layer_lr_decay: float in (0, 1] or None. Layer-wise learning-rate
            decay: a variable's rate (and its weight decay) is multiplied by
            `layer_lr_multiplier(path, layer_lr_decay, num_layers)`; the task
            heads, pooler and top encoder layer keep the full rate, each
            layer below one more factor, the embeddings
            `layer_lr_decay ** num_layers`. 1.0 is the same as None.
        num_layers: int or None, the encoder's layer count for
            `layer_lr_decay` (None: found from the variables' paths).

    Returns:
        `bert_keras.training.optimization.AdamW`, a `keras.optimizers.AdamW`.

    Example:

    >>> model = BertForSequenceClassification(config)
    >>> batches = int(dataset.cardinality())  # per epoch
    >>> optimizer = create_optimizer(
    ...     2e-5, total_steps=count_updates(3 * batches, 2), warmup_ratio=0.1,
    ...     gradient_accumulation_steps=2, layer_lr_decay=0.9)
    >>> model.compile(optimizer=optimizer)  # then model.fit(dataset, epochs=3)
    """
    if total_steps is not None and not isinstance(
        learning_rate, keras.optimizers.schedules.LearningRateSchedule
    ):
        if warmup_steps is None:
            warmup_steps = math.ceil(warmup_ratio * total_steps)
        learning_rate = WarmupLinearDecay(learning_rate, total_steps, warmup_steps)
    if gradient_accumulation_steps is not None and (
        int(gradient_accumulation_steps) != gradient_accumulation_steps
        or gradient_accumulation_steps < 1
    ):
        raise ConfigError(
            "gradient_accumulation_steps must be an integer >= 1 (batches "
            "per update; 1 or None: no accumulation). "
            f"Received: gradient_accumulation_steps={gradient_accumulation_steps}"
        )
    return AdamW(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=clipnorm,
        gradient_accumulation_steps=(
            int(gradient_accumulation_steps)
            if gradient_accumulation_steps and gradient_accumulation_steps > 1
            else None
        ),
        layer_lr_decay=layer_lr_decay,
        num_layers=num_layers,
        no_decay_names=NO_DECAY_NAMES,
    )
