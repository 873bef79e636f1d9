"""Model inputs: HF names, defaults, and checks that fail before a step runs.

Eagerly, bad inputs raise `InputError`; inside `fit` / `predict` graphs the
checks are asserts whose messages `graph_errors_as_input_errors` turns back
into the same `InputError`.
"""

import collections.abc
import contextlib

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bert_keras.errors import InputError
from bert_keras.errors import InvalidInputError

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# HF model arguments we know but do not take: refuse rather than ignore them.
UNSUPPORTED_INPUTS = ("position_ids", "inputs_embeds", "head_mask")
# Starts the message of every in-graph check, so it can be told from others.
GRAPH_ERROR_MARK = "bert_keras input check: "


def prepare_inputs(model, inputs):
    """Fills default masks, casts to int32 and checks values fit the config.

    Args:
        model: the bert_keras model the inputs are for.
        inputs: a dict with HF input names (or `input_ids` alone), of numpy
            arrays, tensors, lists or symbolic Keras tensors.

    Returns:
        dict of int32 tensors; in a graph, made to wait for the checks.

    Example:

    >>> mask = prepare_inputs(model, {"input_ids": [[1, 7, 2]]})["attention_mask"]
    >>> mask.numpy().tolist()
    [[1, 1, 1]]
    """
    if not isinstance(inputs, collections.abc.Mapping):
        inputs = {"input_ids": inputs}
    for name in UNSUPPORTED_INPUTS:
        if inputs.get(name) is not None:
            raise InputError(
                f"bert_keras models do not take `{name}`; pass input_ids, "
                "attention_mask and token_type_ids (right padding). "
                f"Received: {name} of shape {ops.shape(inputs[name])}"
            )
    if inputs.get("input_ids") is None:
        raise InputError(
            "Model inputs must contain `input_ids`. Expected a dict with keys "
            f"{list(INPUT_NAMES)} (as returned by a HF tokenizer). "
            f"Received: keys={sorted(inputs)}"
        )
    input_ids = inputs["input_ids"]
    for name in model.extra_input_names:
        if inputs.get(name) is None:
            raise InputError(
                f"{type(model).__name__} was built to take `{name}` as well. "
                f"Received: keys={sorted(inputs)}"
            )
    if isinstance(input_ids, keras.KerasTensor):
        names = INPUT_NAMES + tuple(model.extra_input_names)
        return {name: inputs[name] for name in names if name in inputs}
    input_ids = to_tensor(input_ids, "input_ids")
    prepared = {"input_ids": input_ids}
    for name, default in (("attention_mask", 1), ("token_type_ids", 0)):
        value = inputs.get(name)
        if value is None:
            value = tf.fill(tf.shape(input_ids), default)
        else:
            value = to_tensor(value, name)
        prepared[name] = value
    for name in model.extra_input_names:
        prepared[name] = to_tensor(inputs[name], name)
    checks = check_inputs(model, prepared)
    # In a graph the lookups must wait for the checks, or an out-of-range
    # gather fails first with an opaque message.
    with tf.control_dependencies(checks):
        # Checked first, cast second: an int64 id of 2**32 + 5 must not
        # wrap to 5.
        return {
            name: tf.identity(tf.cast(value, tf.int32))
            for name, value in prepared.items()
        }


def check_inputs(model, inputs):
    """Raises InputError (eager) or returns graph asserts for bad inputs."""
    config = model.config
    input_ids = inputs["input_ids"]
    rank = input_ids.shape.rank
    if rank != model.input_rank:
        layout = "(batch, choices, seq)" if model.input_rank == 3 else "(batch, seq)"
        raise InputError(
            f"{type(model).__name__} expects `input_ids` of shape {layout}. "
            f"Received: input_ids of shape {tuple(input_ids.shape)}"
        )
    for name in ("attention_mask", "token_type_ids"):
        if inputs[name].shape.rank != rank or (
            inputs[name].shape.is_fully_defined()
            and input_ids.shape.is_fully_defined()
            and inputs[name].shape != input_ids.shape
        ):
            raise InputError(
                f"`{name}` must have the same shape as `input_ids`. Received: "
                f"{name} of shape {tuple(inputs[name].shape)}, input_ids of "
                f"shape {tuple(input_ids.shape)}"
            )
    seq_len = input_ids.shape[-1]
    if seq_len == 0:
        raise InputError(
            "The sequences hold no tokens. Expected at least [CLS] and [SEP] "
            "per row, as a BERT tokenizer gives for any text, even an empty "
            f"one. Received: input_ids of shape {tuple(input_ids.shape)}"
        )
    limit = config.max_position_embeddings
    if seq_len is not None and seq_len > limit:
        raise InputError(
            f"Sequences are {seq_len} tokens long but the model has position "
            f"embeddings for {limit} (max_position_embeddings). Truncate the "
            f"inputs, e.g. tokenizer(..., truncation=True, max_length={limit}). "
            f"Received: input_ids of shape {tuple(input_ids.shape)}"
        )
    ranges = [
        ("input_ids", config.vocab_size, "vocab_size"),
        ("token_type_ids", config.type_vocab_size, "type_vocab_size"),
    ]
    if "masked_lm_positions" in inputs:
        sequence = input_ids.shape[-1]
        if sequence is None:
            sequence = tf.shape(input_ids)[-1]
        ranges.append(("masked_lm_positions", sequence, "sequence length"))
    if tf.executing_eagerly():
        for name, high, field in ranges:
            values = inputs[name].numpy()
            if values.size and (values.min() < 0 or values.max() >= high):
                bad = values[(values < 0) | (values >= high)]
                raise InvalidInputError(
                    f"`{name}` must be in [0, {high}) ({field} of the config). "
                    f"Was the text tokenized with this model's tokenizer? "
                    f"Received: {name} containing {bad[:5].tolist()}"
                )
        mask = inputs["attention_mask"].numpy()
        left = (mask[..., :1] == 0).all(axis=-1) & mask.any(axis=-1)
        if left.any():
            raise InvalidInputError(left_padding_message(np.argwhere(left)[0].tolist()))
        return []
    # Inside tf.function (fit / predict): the checks become graph asserts,
    # turned back into InputError by `graph_errors_as_input_errors`.
    checks = []
    for name, high, field in ranges:
        values = inputs[name]
        bad = tf.logical_or(values < 0, values >= tf.cast(high, values.dtype))
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            [
                f"{GRAPH_ERROR_MARK}`{name}` must be in [0, {high}) ({field} of "
                "the config; -100 is a label value, not an input id). Was the "
                f"text tokenized with this model's tokenizer? Received: {name} "
                "containing",
                tf.boolean_mask(values, bad),
            ],
            summarize=5,
        )
        checks.append(check)
    check = tf.debugging.Assert(
        tf.shape(input_ids)[-1] <= limit,
        [
            f"{GRAPH_ERROR_MARK}Sequences must be at most "
            f"max_position_embeddings={limit} tokens long; truncate the inputs "
            "(tokenizer(..., truncation=True)). Received: input_ids of shape",
            tf.shape(input_ids),
        ],
    )
    not_empty = tf.debugging.Assert(
        tf.shape(input_ids)[-1] > 0,
        [
            f"{GRAPH_ERROR_MARK}The sequences hold no tokens. Expected at least "
            "[CLS] and [SEP] per row. Received: input_ids of shape",
            tf.shape(input_ids),
        ],
    )
    mask = inputs["attention_mask"]
    # [..., :1], not [..., 0]: defined on sequences of length 0 as well.
    left = tf.logical_and(
        tf.reduce_all(tf.equal(mask[..., :1], 0), axis=-1),
        tf.reduce_any(tf.not_equal(mask, 0), axis=-1),
    )
    padding_check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(left)),
        [
            GRAPH_ERROR_MARK + left_padding_message() + " Received: row",
            # Computed even when the check passes: the trailing 1 keeps the
            # argmax defined on an empty batch (a replica's share of a last
            # batch smaller than the number of replicas).
            tf.argmax(tf.concat([tf.reshape(tf.cast(left, tf.int32), [-1]), [1]], 0)),
        ],
    )
    return checks + [not_empty, check, padding_check]


@contextlib.contextmanager
def graph_errors_as_input_errors():
    """Re-raises a failed in-graph input check as the InputError it stands for."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = error.message
        if GRAPH_ERROR_MARK not in message:
            raise
        message = message[message.index(GRAPH_ERROR_MARK) + len(GRAPH_ERROR_MARK) :]
        message = message.split("\n")[0].replace("] [", " ").rstrip("]")
        message = message.replace("\\'", "'")
        raise InvalidInputError(message) from None


def left_padding_message(row=None):
    where = "An attention_mask row" if row is None else f"attention_mask row {row}"
    return (
        f"{where} starts with padding and has real tokens after it (left "
        "padding). BERT's positions are absolute (0, 1, 2, ... from the first "
        "slot, as in transformers), so left padding would give other outputs "
        "than the unpadded text: pad on the right (tokenizer.padding_side = "
        "'right', the default of BERT tokenizers)."
    )


def to_tensor(value, name):
    if isinstance(value, tf.RaggedTensor):
        raise InputError(
            f"`{name}` is a tf.RaggedTensor; bert_keras models take rectangular "
            f"batches. Pad it with `{name}.to_tensor()` (and give the matching "
            "attention_mask), or tokenize with tokenizer(..., padding=True). "
            f"Received: a RaggedTensor with row lengths {_row_lengths(value)}"
        )
    if hasattr(value, "numpy") and not isinstance(value, (tf.Tensor, np.ndarray)):
        value = value.numpy()  # torch tensors and the like
    if isinstance(value, (list, tuple)):
        rows = value
        try:
            value = np.asarray(value)
        except ValueError:
            value = None
        if value is None or value.dtype == object:
            value = rows
            raise InputError(
                f"`{name}` has rows of different lengths; a batch must be "
                "rectangular. Pad it: tokenizer(..., padding=True), or pad the "
                "ids with the pad token and the attention_mask with 0. Received: "
                f"{name} with row lengths {_row_lengths(value)}"
            )
    dtype = value.dtype if isinstance(value, np.ndarray) else None
    if isinstance(value, tf.Tensor):
        dtype = value.dtype.as_numpy_dtype
    if dtype is not None and not np.issubdtype(dtype, np.integer):
        mask_dtype = np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.bool_)
        if name != "attention_mask" or not mask_dtype:
            raise InputError(
                f"`{name}` must hold integers. Received: {name} of dtype "
                f"{np.dtype(dtype).name}"
            )
    tensor = tf.convert_to_tensor(value)
    if name == "attention_mask" and tensor.dtype != tf.int32:
        tensor = tf.cast(tf.not_equal(tensor, tf.zeros([], tensor.dtype)), tf.int32)
    return tensor


def _row_lengths(value):
    if isinstance(value, tf.RaggedTensor):
        return value.row_lengths().numpy().tolist()[:8]
    try:
        return [len(row) for row in value][:8]
    except TypeError:
        return "unknown"
