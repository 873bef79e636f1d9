"""Every use of a private Keras member, in one place.

Written against Keras 3.15 (`KERAS_VERSION`). Each member used here is pinned
by tests/test_keras_private.py, which fails when a Keras upgrade changes its
name or signature: fix the one function or hook here, nothing else.
"""

KERAS_VERSION = "3.15"

# Upstream bugs worked around below, unfixed at Keras 3.15 (recheck on upgrade):
# keras-team/keras#20585 and tensorflow/tensorflow#72388, Keras 3 `fit` under
# MultiWorkerMirroredStrategy (`ModelHooks._maybe_symbolic_build` and
# `ModelHooks._make_function`).

# The private members used below, with the arguments bert_keras passes.
PINNED_MEMBERS = {
    "keras.Model._maybe_symbolic_build": ("self", "iterator", "data_batch"),
    "keras.Model._make_function": ("self", "step_function"),
    "keras.src.backend.tensorflow.trainer._collective_all_reduce_multi_worker": (
        "strategy",
    ),
    "keras.Model._flatten_layers": ("self", "include_self", "recursive"),
    "keras.Model._distribute_strategy": None,  # attribute
    "keras.Model._initial_epoch": None,  # attribute read by fit()
    "keras.Model._compile_loss": None,  # attribute set by compile()
    "keras.Model._compile_metrics": None,  # attribute set by compile()
    "keras.Model._loss_tracker": None,  # attribute set by compile()
    "keras.optimizers.Optimizer._clip_gradients": ("self", "grads"),
    "keras.optimizers.Optimizer._apply_weight_decay": ("self", "variables"),
    "keras.optimizers.Optimizer._use_weight_decay": ("self", "variable"),
    "keras.optimizers.Optimizer._get_variable_index": ("self", "variable"),
    "keras.optimizers.Adam._momentums": None,  # attribute, after build()
    "keras.optimizers.Adam._velocities": None,  # attribute, after build()
    "keras.src.saving.saving_lib.H5IOStore": ("path_or_io", "archive", "mode"),
    # Keras' callbacks (EarlyStopping, ModelCheckpoint) find a monitored
    # metric's direction only inside one of these.
    "keras.src.trainers.compile_utils.MetricsList": (
        "metrics",
        "name",
        "output_name",
    ),
    "keras.src.saving.saving_lib._save_state": (
        "saveable",
        "weights_store",
        "assets_store",
        "inner_path",
        "visited_saveables",
    ),
}


def distribute_strategy(model):
    """The strategy `model` was created under, or None (Keras' own record)."""
    return model._distribute_strategy


def all_layers(model):
    """Every layer inside `model`, recursively."""
    return list(model._flatten_layers())


def has_compiled_keras_loss_or_metrics(model):
    """Whether `compile()` gave `model` Keras loss or metric objects."""
    return (
        getattr(model, "_compile_loss", None) is not None
        or getattr(model, "_compile_metrics", None) is not None
    )


def set_loss_tracker(model, tracker):
    """Makes `tracker` the metric `fit` logs as "loss" (set by `compile()`)."""
    model._loss_tracker = tracker


def set_initial_epoch(model, epoch):
    """Makes the next `fit()` start at `epoch` (what Keras' BackupAndRestore does)."""
    model._initial_epoch = epoch


def weights_file_bytes(model):
    """The bytes `model.save_weights("x.weights.h5")` would write, made in memory.

    h5py kills the process (SIGSEGV in `File.close`) when it closes a file
    whose writes failed, e.g. on a full disk; an HDF5 file written into
    memory cannot fail that way, and its bytes go to disk with Python's own
    I/O, whose failure is an ordinary `OSError`. This is what
    `saving_lib.save_weights_only` does, with a `BytesIO` for the file.
    """
    import io

    from keras.src.saving import saving_lib

    if not model.built:
        raise ValueError(
            "The model must be built before its weights are saved. Call it on "
            "a batch or `build()` it first."
        )
    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        saving_lib._save_state(
            model,
            weights_store=store,
            assets_store=None,
            inner_path="",
            visited_saveables=set(),
        )
    finally:
        store.close()
    return buffer.getbuffer()


def adam_slots(optimizer, variable):
    """`(momentum, velocity)`: an Adam optimizer's slots for `variable`."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def uses_weight_decay(optimizer, variable):
    """Whether `optimizer` decays `variable` (its exclusions applied)."""
    return optimizer._use_weight_decay(variable)


class OptimizerHooks:
    """Routes Keras' private optimizer hooks to public methods of a subclass.

    A subclass defines `clip_gradients(grads)` and
    `apply_weight_decay(variables)`; returning None hands the call back to
    Keras' own implementation.
    """

    def _clip_gradients(self, grads):
        clipped = self.clip_gradients(grads)
        return super()._clip_gradients(grads) if clipped is None else clipped

    def _apply_weight_decay(self, variables):
        if self.apply_weight_decay(variables) is None:
            return super()._apply_weight_decay(variables)


def multi_worker(strategy):
    """Whether `strategy` all-reduces across several workers (Keras' own test)."""
    from keras.src.backend.tensorflow import trainer

    return strategy is not None and trainer._collective_all_reduce_multi_worker(
        strategy
    )


def metrics_group(metrics, name):
    """`metrics` as one Keras metric whose result is their dict of results.

    Keras' `monitor_callback` looks for a monitored metric's `_direction`
    only among the members of a `MetricsList` (or the compiled metrics).
    """
    from keras.src.trainers.compile_utils import MetricsList

    class MetricsGroup(MetricsList):
        def result(self):  # MetricsList has only get_result
            return {metric.name: metric.result() for metric in self.metrics}

    return MetricsGroup(metrics, name=name)


class ModelHooks:
    """Overrides Keras' private model hooks through a public predicate.

    Under a tf.distribute strategy Keras' TF trainer takes one batch from
    `fit`'s iterator to build the model even when nothing needs data to build;
    with a repeated dataset and `steps_per_epoch` that batch is never trained
    on (and under MultiWorkerMirroredStrategy it fails, keras#20585: it
    averages the integer batch across workers). A subclass's
    `needs_data_to_build()` says when Keras' way is needed; otherwise only the
    optimizer is built, without touching the data.

    Across workers Keras averages each step's logs with
    `strategy.reduce("MEAN", log, axis=0)`, which fails on scalar logs
    (tensorflow#72388): there each log leaves the replica with shape `[1]`, and
    that reduction returns the scalar mean.
    """

    def _make_function(self, step_function):
        if not multi_worker(distribute_strategy(self)):
            return super()._make_function(step_function)
        import tensorflow as tf

        def step_with_rank_one_logs(data):
            return tf.nest.map_structure(
                lambda log: tf.reshape(log, [1]) if log.shape.rank == 0 else log,
                step_function(data),
            )

        return super()._make_function(step_with_rank_one_logs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if (
            iterator is None
            or distribute_strategy(self) is None
            or self.needs_data_to_build()
        ):
            return super()._maybe_symbolic_build(iterator, data_batch)
        with self.distribute_strategy.scope():
            if self.optimizer is not None and not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)


# --- Replacing a built layer's weight (resize_token_embeddings) -------------

PINNED_MEMBERS.update(
    {
        "keras.src.utils.tracking.Tracker.is_in_store": (
            "self",
            "store_name",
            "value",
        ),
        "keras.Layer._tracker": None,  # attribute, locked once the layer is built
        "keras.src.utils.tracking.Tracker.config": None,  # attribute: the stores
        "keras.src.utils.tracking.Tracker.stored_ids": None,  # attribute
        "keras.layers.Embedding._embeddings": None,  # attribute set by build()
        "keras.layers.Dense._kernel": None,  # attribute; merge_dense_lora writes it
    }
)

# --- The optimizer step under gradient accumulation (optimization.AdamW) -----

PINNED_MEMBERS.update(
    {
        "keras.optimizers.Optimizer._backend_apply_gradients": (
            "self",
            "grads",
            "trainable_variables",
        ),
        "keras.optimizers.Optimizer._accumulated_gradients": None,  # attribute
        "keras.optimizers.Optimizer._iterations": None,  # attribute
    }
)

# The tracker stores holding a layer's own variables, in weight order.
_VARIABLE_STORES = ("trainable_variables", "non_trainable_variables")


def replace_weight(layer, attribute, variable):
    """Makes `variable` the built `layer`'s weight `attribute`, in the old one's place.

    Keras locks a built layer's variable lists; the new variable takes the
    old one's position in them, so `layer.weights` keeps its order (which
    `.keras` and `.weights.h5` files rely on). The old variable is no longer
    the layer's, but stays valid for whoever holds it.
    """
    old = getattr(layer, attribute)
    tracker = layer._tracker
    stores = [name for name in _VARIABLE_STORES if tracker.is_in_store(name, old)]
    if not stores:
        raise ValueError(
            f"`{layer.name}.{attribute}` is not a variable of the layer itself. "
            f"Received: {old!r}"
        )
    # By identity: Keras' own `replace_tracked_value` compares variables with
    # `==`, which is elementwise.
    values = tracker.config[stores[0]][1]
    values[next(i for i, value in enumerate(values) if value is old)] = variable
    tracker.stored_ids[stores[0]].discard(id(old))
    tracker.stored_ids[stores[0]].add(id(variable))
    # Found in the store now, so Keras' tracking lets it through.
    setattr(layer, attribute, variable)


def replace_embedding_table(embedding, variable):
    """Makes `variable` (rows, dim) the table of a built `keras.layers.Embedding`.

    Its `input_dim` (the number of rows, in its config) follows.
    """
    replace_weight(embedding, "_embeddings", variable)
    embedding.input_dim = int(variable.shape[0])


def lora_variables(model):
    """`{name: variable}` of every LoRA layer's kernel, A and B, as stored.

    Keras' Dense saves its kernel with the LoRA product added and zeroes A
    and B when it loads one, so a weights file cannot give a LoRA layer back
    as it was: the base kernel (`Dense._kernel`) and both factors are read
    here instead. Names are the layer path and the attribute.
    """
    found = {}
    for layer in all_layers(model):
        if getattr(layer, "lora_enabled", False):
            found[f"{layer.path}/kernel"] = layer._kernel
            found[f"{layer.path}/lora_kernel_a"] = layer.lora_kernel_a
            found[f"{layer.path}/lora_kernel_b"] = layer.lora_kernel_b
    return found


def merge_dense_lora(dense):
    """Folds a `keras.layers.Dense`'s LoRA into its kernel and removes the LoRA.

    Keras 3.15 has `Dense.enable_lora` but no inverse: the kernel variable
    (`Dense._kernel`; the public `kernel` is the merged tensor) gets
    `W + (lora_alpha / lora_rank) A B`, computed in float32, and becomes
    trainable again; `lora_kernel_a` / `lora_kernel_b` leave the layer's
    variables (Keras' `Layer.__delattr__` untracks them), so `layer.weights`
    is a plain Dense's again.

    Returns:
        The kernel variable.
    """
    import keras

    kernel = dense._kernel
    delta = (dense.lora_alpha / dense.lora_rank) * keras.ops.matmul(
        dense.lora_kernel_a, dense.lora_kernel_b
    )
    merged = keras.ops.add(keras.ops.cast(kernel, "float32"), delta)
    kernel.assign(keras.ops.cast(merged, kernel.dtype))
    del dense.lora_kernel_a
    del dense.lora_kernel_b
    dense.lora_enabled = False
    dense.lora_rank = None
    dense.lora_alpha = None
    kernel.trainable = True
    return kernel
