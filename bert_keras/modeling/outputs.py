"""`ModelOutput`: what a model call returns, read as transformers code reads it.

A dict (what Keras needs in `fit`, `predict` and export) whose entries can
also be read as attributes (`outputs.logits`) and by position
(`outputs[0]`, `outputs.to_tuple()`), in transformers' order.
"""

import optree

# transformers' field order: what `outputs[0]` and `to_tuple()` give.
FIELD_ORDER = (
    "loss",
    "last_hidden_state",
    "pooler_output",
    "prediction_logits",
    "seq_relationship_logits",
    "logits",
    "start_logits",
    "end_logits",
    "hidden_states",
    "attentions",
)
# Per-layer outputs: tuples of tensors, as in transformers.
STACKED_OUTPUTS = ("hidden_states", "attentions")


class ModelOutput(dict):
    """A model's outputs by HF name, with attribute and position access.

    As in transformers, iterating gives the names (`dict` behaviour), entries
    that are not set are absent, and integer indices count the present
    entries in HF's order.

    Example:

    >>> outputs = model(inputs)
    >>> outputs.last_hidden_state is outputs["last_hidden_state"] is outputs[0]
    True
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"This {type(self).__name__} has no `{name}`. Present: {list(self)}"
            ) from None

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def to_tuple(self):
        """The values, in HF's order (what `return_dict=False` returns)."""
        return tuple(self.values())


def model_output(outputs):
    """`outputs` (a mapping) as a `ModelOutput` in transformers' field order."""
    order = {name: index for index, name in enumerate(FIELD_ORDER)}
    names = sorted(outputs, key=lambda name: order.get(name, len(order)))
    return ModelOutput((name, _per_layer(name, outputs[name])) for name in names)


def _per_layer(name, value):
    if name in STACKED_OUTPUTS and isinstance(value, list):
        return tuple(value)
    return value


def _flatten(output):
    names = sorted(output)  # as Keras flattens a dict
    return [output[name] for name in names], names, names


def _unflatten(names, values):
    return model_output(dict(zip(names, values)))


# Keras walks structures with optree: unregistered, a dict subclass would be
# one leaf, and a nested model's outputs would not match its graph's.
optree.register_pytree_node(ModelOutput, _flatten, _unflatten, namespace="keras")
