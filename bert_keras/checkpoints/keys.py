"""The one rule set that names Keras variables with Hugging Face state-dict keys.

Leaves follow torch's module conventions: a `Dense` is a `Linear` (kernel is
the transposed `weight`), `LayerNormalization` gamma/beta are `weight`/`bias`,
an `Embedding`'s table is `weight`. Composite layers implement
`hf_variables()` and name their children with HF module names.
"""

from keras import layers


def hf_variables(layer):
    """Returns `{hf_key: (variable, transpose)}` for a layer and its children.

    Args:
        layer: a Keras `Dense`, `LayerNormalization`, `Embedding`, or a
            bert_keras layer with an `hf_variables()` method.

    Returns:
        dict mapping HF keys relative to the layer (e.g. `"weight"`,
        `"query.bias"`) to `(keras.Variable, transpose)`; `transpose` is True
        where torch stores the transpose of the Keras variable.

    Example:

    >>> hf_variables(keras.layers.Dense(4, name="dense"))  # after build
    {'weight': (<kernel>, True), 'bias': (<bias>, False)}
    """
    if isinstance(layer, layers.Dense):
        names = {"weight": (layer.kernel, True)}
        if layer.use_bias:
            names["bias"] = (layer.bias, False)
        return names
    if isinstance(layer, layers.LayerNormalization):
        return {"weight": (layer.gamma, False), "bias": (layer.beta, False)}
    if isinstance(layer, layers.Embedding):
        return {"weight": (layer.embeddings, False)}
    return layer.hf_variables()


def nest(children):
    """Prefixes each child's HF keys with its module name.

    Args:
        children: dict `{module_name: layer}`, e.g. `{"dense": self.dense}`.

    Returns:
        dict `{"module_name.key": (variable, transpose)}`.
    """
    names = {}
    for prefix, child in children.items():
        for key, value in hf_variables(child).items():
            names[f"{prefix}.{key}"] = value
    return names
