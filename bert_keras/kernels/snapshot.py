"""Weights read as a snapshot while tracing an inference graph (`bk.Predictor`).

Inside `weight_snapshot(model)` every read of the model's variables returns
its value on entry (`keras.StatelessScope`), so the traced graph captures
those values: later training does not reach it, consistently for every
weight. Fast-policy layers also take derived copies made once instead of at
every call (`derived`): dense kernels already in the compute dtype (no cast
per call under mixed precision) and the query, key and value kernels side by
side (one product instead of three).
"""

import contextlib
import threading

import keras
import tensorflow as tf

_state = threading.local()


@contextlib.contextmanager
def weight_snapshot(model):
    """Reads of `model`'s weights return their values now, in this thread.

    The values are read, not copied: TensorFlow copies a variable's buffer
    when it is assigned while a read still holds it, so the snapshot keeps
    its values and costs memory only once the weights change.
    """
    with tf.init_scope():
        values = {id(v): tf.identity(v.value) for v in model.weights}
    mapping = [(v, values[id(v)]) for v in model.weights]
    previous = getattr(_state, "snapshot", None)
    _state.snapshot = {"values": values, "derived": {}}
    try:
        with keras.StatelessScope(state_mapping=mapping):
            yield
    finally:
        _state.snapshot = previous


def active():
    """True inside `weight_snapshot()`."""
    return getattr(_state, "snapshot", None) is not None


def derived(variables, dtype, axis=0):
    """The snapshot of `variables`, joined on `axis` when several, as `dtype`.

    Made once per snapshot, outside the graph being traced (a captured
    tensor, not an operation per call).
    """
    state = _state.snapshot
    key = (tuple(id(v) for v in variables), str(dtype), axis)
    if key not in state["derived"]:
        with tf.init_scope():
            values = [state["values"][id(v)] for v in variables]
            value = values[0] if len(values) == 1 else tf.concat(values, axis)
            state["derived"][key] = tf.identity(tf.cast(value, dtype))
    return state["derived"][key]
