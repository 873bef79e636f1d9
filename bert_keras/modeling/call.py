"""transformers' call conventions: every HF keyword honoured, or refused.

`model(input_ids, attention_mask=mask)`, `model(**encoding)`,
`model(batch, labels=y)`, `output_hidden_states=`, `return_dict=False`: each
means what it means in transformers' BERT classes. A keyword bert_keras cannot
honour raises `InputError` saying why; none is silently ignored.
"""

import collections.abc
import dataclasses

from keras import ops

from bert_keras.errors import InputError
from bert_keras.training.inputs import INPUT_NAMES

# transformers' positional order after input_ids, as far as BERT encoders share it.
POSITIONAL_NAMES = ("attention_mask", "token_type_ids")
OUTPUT_FLAGS = ("output_hidden_states", "output_attentions", "return_dict")
# Keywords Keras itself passes on to `call`.
KERAS_KEYWORDS = ("training", "mask")
# Only decoders use a cache; transformers' encoders ignore it too.
NO_OP_KEYWORDS = ("use_cache",)
REFUSED = {
    "position_ids": "positions are always 0, 1, 2, ... from the first token "
    "(transformers' default); leave position_ids out",
    "head_mask": "attention heads cannot be masked per call; prune or retrain "
    "the model instead",
    "inputs_embeds": "the model embeds `input_ids` itself; pass token ids",
    "encoder_hidden_states": "bert_keras models are encoders, without "
    "cross-attention (no `is_decoder` / `add_cross_attention`)",
    "encoder_attention_mask": "bert_keras models are encoders, without cross-attention",
    "past_key_values": "bert_keras models are encoders; there is no key/value cache",
}


@dataclasses.dataclass
class CallOptions:
    """What a call asks for beyond the model's inputs."""

    output_hidden_states: bool = None
    output_attentions: bool = None
    return_dict: bool = None
    labels: dict = None


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
    if isinstance(inputs, collections.abc.Mapping):
        given.update(inputs)
    elif inputs is not None:
        given["input_ids"] = inputs
    if len(args) > len(POSITIONAL_NAMES):
        raise InputError(
            f"{type(model).__name__} takes at most {1 + len(POSITIONAL_NAMES)} "
            f"positional arguments (input_ids, {', '.join(POSITIONAL_NAMES)}); "
            "pass the others by keyword. Received: "
            f"{1 + len(args)} positional arguments"
        )
    keyword_items = list(zip(POSITIONAL_NAMES, args)) + list(kwargs.items())
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
            accepted = input_names + OUTPUT_FLAGS + label_names + KERAS_KEYWORDS
            raise InputError(
                f"{type(model).__name__} got an unexpected argument `{name}`. "
                f"Expected some of {list(accepted)} (transformers' names). "
                f"Received: {name}={_describe(value)}"
            )
    options.labels = labels or None
    return inputs, options, keras_kwargs


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
