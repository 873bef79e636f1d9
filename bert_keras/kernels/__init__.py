"""The kernel policy: which implementation each building block of BERT uses.

`bert_keras.modeling` is written as BERT's formula with plain Keras layers.
The fast substitutes in this package compute the same values and gradients
with less time or memory on a CPU (tests/test_kernels.py compares each with
its reference). A model picks them all with `kernels="fast"` (the default) or
none with `kernels="reference"`:

    model = BertForSequenceClassification(config, kernels="reference")
    model = BertModel.from_pretrained(path, kernels="reference")

`FAST_KERNELS` below is the whole list of substitutes.
"""

from keras import layers
from keras import ops

from bert_keras.kernels.attention import fast_attention
from bert_keras.kernels.attention import select_rows_by_product
from bert_keras.kernels.dense import Float32BiasGradientDense
from bert_keras.kernels.dense import add_bias
from bert_keras.kernels.dropout import SixteenBitDropout
from bert_keras.kernels.gelu import gelu_with_stored_derivative
from bert_keras.kernels.layer_norm import LeanLayerNormalization
from bert_keras.modeling.activations import gelu
from bert_keras.modeling.activations import get_activation

KERNELS = ("fast", "reference")
DEFAULT_KERNELS = "fast"

# name: the substitute                      # what it stands in for
FAST_KERNELS = {
    "dense": Float32BiasGradientDense,  # keras.layers.Dense
    "layer_norm": LeanLayerNormalization,  # keras.layers.LayerNormalization
    "dropout": SixteenBitDropout,  # keras.layers.Dropout
    "add_bias": add_bias,  # x + bias
    "gelu_training": gelu_with_stored_derivative,  # activations.gelu, in training
    "attention": fast_attention,  # modeling.attention.scaled_dot_product_attention
    "select_rows": select_rows_by_product,  # modeling.attention.select_rows
    # BertModel.selected_outputs: the last layer runs at the rows a head reads.
    "selected_rows_only": True,  # False: the full encoder, then those rows
}


def check_kernels(kernels):
    """Raises ValueError unless `kernels` names a policy."""
    if kernels not in KERNELS:
        raise ValueError(
            f"Unknown kernel policy. Expected one of {KERNELS}. "
            f"Received: kernels={kernels!r}"
        )
    return kernels


def choose(name, kernels, reference):
    """`FAST_KERNELS[name]` under the fast policy, else `reference`.

    Example:

    >>> choose("dense", "reference", layers.Dense) is layers.Dense
    True
    """
    check_kernels(kernels)
    return FAST_KERNELS[name] if kernels == "fast" else reference


def dense(units, kernels, **kwargs):
    """A Dense layer (`keras.layers.Dense` arguments)."""
    return choose("dense", kernels, layers.Dense)(units, **kwargs)


def layer_norm(kernels, **kwargs):
    """A LayerNormalization layer (`keras.layers.LayerNormalization` arguments)."""
    return choose("layer_norm", kernels, layers.LayerNormalization)(**kwargs)


def dropout(rate, kernels, **kwargs):
    """A Dropout layer (`keras.layers.Dropout` arguments)."""
    return choose("dropout", kernels, layers.Dropout)(rate, **kwargs)


def _add_bias(x, bias):
    return x + ops.cast(bias, x.dtype)


def bias_adder(kernels):
    """`f(x, bias)`: `x + bias` over the last axis, bias cast to x's dtype."""
    return choose("add_bias", kernels, _add_bias)


def activation(hidden_act, kernels):
    """HF's `hidden_act` as `f(x, training=None)`.

    The fast policy trains exact GELU with `gelu_with_stored_derivative`;
    inference keeps the plain formula, which oneDNN fuses into the product.
    """
    function = get_activation(hidden_act)
    for_training = function
    if function is gelu:
        for_training = choose("gelu_training", kernels, gelu)

    def apply(x, training=None):
        return for_training(x) if training else function(x)

    return apply
