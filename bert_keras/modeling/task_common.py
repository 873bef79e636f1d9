"""Pieces the task models share: label lookup, metric views, the classifier."""

import collections.abc

import keras
from keras import ops

from bert_keras import kernels as kernel_policy
from bert_keras.errors import InputError
from bert_keras.training.losses import ignore_mask
from bert_keras.training.losses import masked_cross_entropy
from bert_keras.training.losses import sparse_cross_entropy
from bert_keras.training.metrics import GlobalMean
from bert_keras.training.trainer import Task


def get_label(y, key, position=0):
    """Returns one label tensor from `y`: a dict (by HF name), tuple or tensor."""
    if isinstance(y, collections.abc.Mapping):
        if key not in y:
            raise InputError(
                f"Labels are a dict but have no `{key}` entry. Expected the HF "
                f"label names. Received: keys={sorted(y)}"
            )
        return y[key]
    if isinstance(y, (tuple, list)):
        return y[position]
    return y


def accuracy(name, logits_key, label_key="labels", position=0, ignore=False):
    """A `(metric, view)` pair: sparse accuracy of `y_pred[logits_key]`.

    With `ignore=True`, positions labelled -100 do not count.
    """
    metric = GlobalMean(name=name, direction="up")

    def view(y, y_pred, sample_weight):
        logits = y_pred[logits_key]
        labels = ops.reshape(
            ops.cast(get_label(y, label_key, position), "int32"),
            ops.shape(logits)[:-1],
        )
        weights = sample_weight
        if ignore:
            labels, weights = ignore_mask(labels)
        correct = ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels)
        return ops.cast(correct, "float32"), _expand_to(weights, labels)

    return metric, view


def _expand_to(weights, values):
    if weights is None:
        return None
    weights = ops.cast(weights, "float32")
    while len(weights.shape) < len(values.shape):
        weights = ops.expand_dims(weights, -1)
    return weights


def mean_cross_entropy(name, logits_key, label_key, position=0, ignore=False):
    """A `(metric, view)` pair: the running mean cross-entropy of one head.

    The mean is over examples, or with `ignore=True` over the positions not
    labelled -100, so it equals that head's term of the training loss.
    """
    metric = GlobalMean(name=name, direction="down")

    def view(y, y_pred, sample_weight):
        logits = ops.cast(y_pred[logits_key], "float32")
        labels = ops.reshape(
            ops.cast(get_label(y, label_key, position), "int32"),
            ops.shape(logits)[:-1],
        )
        weights = None
        if ignore:
            labels, weights = ignore_mask(labels)
        values = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        if sample_weight is not None:
            sample_weight = _expand_to(sample_weight, values)
            weights = sample_weight if weights is None else weights * sample_weight
        return values, weights

    return metric, view


def classifier_dropout(config):
    """HF's rule: `classifier_dropout`, falling back to `hidden_dropout_prob`."""
    if config.classifier_dropout is not None:
        return config.classifier_dropout
    return config.hidden_dropout_prob


def dense(units, config, name, dtype=None, kernels="fast"):
    return kernel_policy.dense(
        units,
        kernels,
        kernel_initializer=keras.initializers.RandomNormal(
            stddev=config.initializer_range
        ),
        dtype=dtype,
        name=name,
    )


def extra_outputs(bert_outputs):
    """The optional encoder outputs (hidden states, attentions) to pass on."""
    return {
        key: bert_outputs[key]
        for key in ("hidden_states", "attentions")
        if key in bert_outputs
    }


def logits_task(high, what, ignore=False):
    """The `Task` of a head whose `logits` score classes given by `labels`.

    Args:
        high: int, the number of classes, or `high(x)` of the features.
        what: str, where `high` comes from, for error messages.
        ignore: bool; per-token labels, -100 where a position does not count.

    Returns:
        `Task` with cross-entropy loss, accuracy, and labels in `[0, high)`.

    Example:

    >>> logits_task(2, "is-next 0 or random 1").metrics[0][0].name
    'accuracy'
    """
    cross_entropy = masked_cross_entropy if ignore else sparse_cross_entropy

    def loss(y, y_pred, sample_weight=None):
        return cross_entropy(get_label(y, "labels"), y_pred["logits"], sample_weight)

    def label_ranges(y, x):
        limit = high(x) if callable(high) else high
        return [("labels", get_label(y, "labels"), limit, what, ignore)]

    metrics = [accuracy("accuracy", "logits", ignore=ignore)]
    return Task(loss=loss, metrics=metrics, label_ranges=label_ranges)
