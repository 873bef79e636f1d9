"""Label checks: every label in its task's range before a step uses it."""

import collections.abc

import tensorflow as tf

from bert_keras.errors import InputError
from bert_keras.training.inputs import GRAPH_ERROR_MARK


def check_labels(ranges):
    """Raises InputError eagerly, or returns graph asserts, for bad labels.

    Args:
        ranges: list of `(name, labels, high, what, ignore)`: each label must
            lie in `[0, high)` (`what` says where `high` comes from) or, when
            `ignore` is true, be -100.

    Returns:
        list of graph asserts (empty when executing eagerly).

    Example:

    >>> check_labels([("labels", np.array([0, 3]), 2, "num_labels", False)])
    Traceback (most recent call last):
    bert_keras.errors.InputError: Labels `labels` must be in [0, 2) ...
    """
    checks = []
    for name, labels, high, what, ignore in ranges:
        labels = tf.convert_to_tensor(labels)
        if labels.dtype.is_floating:
            # Integral floats are fine; 0.5 is not a class.
            fraction = tf.not_equal(labels, tf.floor(labels))
            labels = tf.where(fraction, tf.cast(-1, labels.dtype), labels)
        labels = tf.cast(labels, tf.int64)
        high = tf.cast(high, tf.int64)
        bad = (labels < 0) | (labels >= high)
        if ignore:
            bad &= tf.not_equal(labels, -100)
        allowed = "[0, {}) (" + what + ")" + (" or -100 (ignored)" if ignore else "")
        hint = (
            "Map the labels to 0..N-1 and give the model N labels "
            "(from_pretrained(..., num_labels=N))"
            if what == "num_labels"
            else "Check how the labels were made"
        )
        if not ignore:
            hint += (
                "; -100 marks ignored positions only in token "
                "classification and masked LM labels"
            )
        if tf.executing_eagerly():
            if bool(tf.reduce_any(bad)):
                values = tf.boolean_mask(labels, bad).numpy()
                raise InputError(
                    f"Labels `{name}` must be in {allowed.format(int(high))}. "
                    f"{hint}. Received: {name} containing {values[:5].tolist()}"
                )
            continue
        static_high = tf.get_static_value(high)
        if static_high is None:
            head = [f"{GRAPH_ERROR_MARK}Labels `{name}` must be in [0,", high]
            head.append(allowed[len("[0, {}") :] + ".")
        else:
            head = [
                f"{GRAPH_ERROR_MARK}Labels `{name}` must be in "
                f"{allowed.format(int(static_high))}."
            ]
        checks.append(
            tf.debugging.Assert(
                tf.logical_not(tf.reduce_any(bad)),
                head
                + [
                    f"{hint}. Received: {name} containing",
                    tf.boolean_mask(labels, bad),
                ],
                summarize=5,
            )
        )
    return checks


def per_example(sample_weight):
    """One (batch,) weight tensor: Keras copies `sample_weight` into the shape
    of dict or tuple labels (QA, pretraining); every copy is the same."""
    while isinstance(sample_weight, (collections.abc.Mapping, list, tuple)):
        values = list(
            sample_weight.values()
            if isinstance(sample_weight, collections.abc.Mapping)
            else sample_weight
        )
        sample_weight = values[0] if values else None
    return sample_weight
