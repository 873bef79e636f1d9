"""transformers' call conventions: every HF keyword honoured, or refused.

`model(input_ids, attention_mask=mask)`, `model(**encoding)`,
`model(batch, labels=y)`, `output_hidden_states=`, `return_dict=False`: each
means what it means in transformers' BERT classes. A keyword bert_keras cannot
honour raises `InputError` saying why; none is silently ignored.
"""

import collections.abc
import dataclasses
import inspect

import numpy as np
from keras import ops

from bert_keras.errors import InputError
from bert_keras.training.inputs import INPUT_NAMES

# transformers' call arguments, in their order (also the positional order).
LEADING_ARGUMENTS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "position_ids",
    "head_mask",
    "inputs_embeds",
)
DECODER_ARGUMENTS = (
    "encoder_hidden_states",
    "encoder_attention_mask",
    "past_key_values",
    "use_cache",
)
OUTPUT_ARGUMENTS = ("output_attentions", "output_hidden_states", "return_dict")
# Inputs that replace what the embeddings layer computes itself.
EMBEDDING_OVERRIDES = ("position_ids", "inputs_embeds")
OUTPUT_FLAGS = OUTPUT_ARGUMENTS
# Keywords Keras itself passes on to `call`.
KERAS_KEYWORDS = ("training",)
# Only decoders use a cache; transformers' encoders ignore it too.
NO_OP_KEYWORDS = ("use_cache",)
REFUSED = {
    "head_mask": "attention heads cannot be masked per call; prune or retrain "
    "the model instead",
    "encoder_hidden_states": "bert_keras models are encoders, without "
    "cross-attention (no `is_decoder` / `add_cross_attention`)",
    "encoder_attention_mask": "bert_keras models are encoders, without cross-attention",
    "past_key_values": "bert_keras models are encoders; there is no key/value cache",
}


def hf_call_arguments(labels, decoder=False):
    """transformers' argument names for a class's call, in order.

    Args:
        labels: tuple of the class's label argument names (v4 TF's).
        decoder: bool, list the decoder arguments transformers' `BertModel`
            takes (bert_keras refuses them when not None).

    Returns:
        tuple of names, `input_ids` first and `training` last.

    Example:

    >>> hf_call_arguments(("labels",))[-3:]
    ('return_dict', 'labels', 'training')
    """
    decoder_names = DECODER_ARGUMENTS if decoder else ()
    return (LEADING_ARGUMENTS + decoder_names + OUTPUT_ARGUMENTS + tuple(labels)) + (
        "training",
    )


def signed_call(function, names):
    """`function` under a signature of `names` (each defaulting to None), so
    `inspect.signature(model.call)` lists transformers' arguments as v4 TF's
    did; Keras binds its `call(inputs, training=...)` to the first and last."""

    def call(self, *args, **kwargs):
        return function(self, *args, **kwargs)

    parameter = inspect.Parameter
    call.__signature__ = inspect.Signature(
        [parameter("self", parameter.POSITIONAL_OR_KEYWORD)]
        + [
            parameter(name, parameter.POSITIONAL_OR_KEYWORD, default=None)
            for name in names
        ]
    )
    call.__doc__ = function.__doc__
    return call


@dataclasses.dataclass
class CallOptions:
    """What a call asks for beyond the model's inputs."""

    output_hidden_states: bool = None
    output_attentions: bool = None
    return_dict: bool = None
    labels: dict = None
    # (batch, seq) positions and (batch, seq, hidden) word embeddings given
    # in place of the defaults (multiple choice: with a choices axis).
    position_ids: object = None
    inputs_embeds: object = None


def split_call(model, inputs, args, kwargs):
    """Sorts a call's arguments into model inputs, options and Keras keywords.

    Args:
        model: the bert_keras model called.
        inputs: the first positional argument: a dict (or `BatchEncoding`) of
            inputs, the `input_ids` alone, or None when given as keywords.
        args: further positional arguments (`attention_mask`,
            `token_type_ids`, in transformers' order).
        kwargs: keyword arguments.

    Returns:
        `(inputs, options, keras_kwargs)`: the input dict for the graph,
        a `CallOptions`, and `training` / `mask` for Keras.

    Raises:
        InputError: an argument given twice, one bert_keras cannot honour, or
            one no BERT model takes.

    Example:

    >>> ids, mask = inputs["input_ids"], inputs["attention_mask"]
    >>> given, options, _ = split_call(model, ids, (mask,), {"return_dict": False})
    >>> sorted(given), options.return_dict
    (['attention_mask', 'input_ids'], False)
    """
    given = {}
    if _is_positional_list(inputs):
        # transformers TF took `model([input_ids, attention_mask, ...])`.
        if args:
            raise InputError(
                "Inputs were given both as a list and as further positional "
                "arguments. Pass one list (input_ids, attention_mask, ...) or "
                f"separate arguments. Received: a list and {len(args)} more"
            )
        inputs, args = inputs[0], tuple(inputs[1:])
    if isinstance(inputs, collections.abc.Mapping):
        given.update(inputs)
    elif inputs is not None:
        given["input_ids"] = inputs
    positional = model.call_arguments[1:]
    if len(args) > len(positional):
        raise InputError(
            f"{type(model).__name__} takes at most {len(model.call_arguments)} "
            f"positional arguments ({', '.join(model.call_arguments)}), as "
            "transformers orders them. Received: "
            f"{1 + len(args)} positional arguments"
        )
    keyword_items = list(zip(positional, args)) + list(kwargs.items())
    keras_kwargs = {}
    for name, value in keyword_items:
        if name in KERAS_KEYWORDS:
            keras_kwargs[name] = value
            continue
        if given.get(name) is not None and value is not None:
            raise InputError(
                f"`{name}` was given twice: in the inputs and as an argument. "
                f"Pass it once. Received: {name} in both"
            )
        if value is not None or name not in given:
            given[name] = value
    if "training" in given:  # transformers TF accepted it in the dict too
        training = given.pop("training")
        keras_kwargs.setdefault("training", training)
    return _sort(model, given, keras_kwargs)


def _sort(model, given, keras_kwargs):
    input_names = INPUT_NAMES + tuple(model.extra_input_names)
    label_names = tuple(model.label_names) + tuple(model.label_aliases)
    inputs, options, labels = {}, CallOptions(), {}
    for name, value in given.items():
        if name in input_names:
            if value is not None:
                inputs[name] = value
        elif name in EMBEDDING_OVERRIDES:
            setattr(options, name, value)
        elif name in OUTPUT_FLAGS:
            setattr(options, name, None if value is None else bool(value))
        elif name in label_names:
            if value is not None:
                labels[model.label_aliases.get(name, name)] = value
        elif name in REFUSED:
            if value is not None:
                raise InputError(
                    f"{type(model).__name__} cannot take `{name}`: "
                    f"{REFUSED[name]}. Received: {name}={_describe(value)}"
                )
        elif name not in NO_OP_KEYWORDS:
            accepted = (
                input_names
                + EMBEDDING_OVERRIDES
                + OUTPUT_FLAGS
                + label_names
                + KERAS_KEYWORDS
            )
            raise InputError(
                f"{type(model).__name__} got an unexpected argument `{name}`. "
                f"Expected some of {list(accepted)} (transformers' names). "
                f"Received: {name}={_describe(value)}"
            )
    options.labels = labels or None
    _check_positions(model, options.position_ids)
    if options.inputs_embeds is not None:
        if "input_ids" in inputs:
            raise InputError(
                "`input_ids` and `inputs_embeds` were both given; the model "
                "embeds one or the other. Pass only one of them. Received: "
                f"input_ids={_describe(inputs['input_ids'])}, "
                f"inputs_embeds={_describe(options.inputs_embeds)}"
            )
        embeds = options.inputs_embeds
        hidden_size = model.config.hidden_size
        if len(embeds.shape) < 3 or embeds.shape[-1] != hidden_size:
            raise InputError(
                "`inputs_embeds` must be (batch, seq, hidden_size) with "
                f"hidden_size={hidden_size} (with a choices axis for multiple "
                f"choice). Received: inputs_embeds={_describe(embeds)}"
            )
        # Ids only shape the default masks; the embeddings layer reads the vectors.
        inputs["input_ids"] = ops.zeros(ops.shape(embeds)[:-1], "int32")
    return inputs, options, keras_kwargs


def _check_positions(model, position_ids):
    if position_ids is None:
        return
    try:
        values = np.asarray(position_ids)
    except (NotImplementedError, TypeError, ValueError):
        return  # symbolic: the embedding lookup checks the range itself
    limit = model.config.max_position_embeddings
    if values.size and (values.min() < 0 or values.max() >= limit):
        raise InputError(
            f"`position_ids` must lie in [0, {limit}) "
            "(config.max_position_embeddings). Received: position_ids from "
            f"{values.min()} to {values.max()}"
        )


def _is_positional_list(inputs):
    # A list led by a tensor or array, as v4 TF took it; a nested Python list
    # of ints is one `input_ids` batch.
    return (
        isinstance(inputs, (list, tuple))
        and len(inputs) > 0
        and hasattr(inputs[0], "shape")
    )


def _describe(value):
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"a tensor of shape {tuple(shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def encoder_extras(model, inputs, names, training=None):
    """The encoder's `hidden_states` / `attentions` for a call that asks for
    them when the config does not: a second pass through the same layers.

    Multiple-choice inputs are flattened to (batch * choices, seq), the
    shapes transformers returns them in.
    """
    base = getattr(model, "bert", model)
    flat = {
        name: ops.reshape(inputs[name], (-1, ops.shape(inputs[name])[-1]))
        for name in INPUT_NAMES
    }
    embeddings = base.embeddings(
        flat["input_ids"], flat["token_type_ids"], training=training
    )
    encoded = base.encoder(embeddings, flat["attention_mask"], training=training)
    return {name: encoded[name] for name in names}
