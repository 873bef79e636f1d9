"""The activations HF's `config.hidden_act` can name, with transformers' meaning.

Note the trap this module exists for: in transformers `"gelu"` is the exact
erf-based GELU, while `"gelu_new"`, `"gelu_fast"` and `"gelu_pytorch_tanh"` are
the tanh approximation. keras-hub's BERT uses the approximation for checkpoints
that were trained with the exact form, so its outputs drift from HF's.
"""

import math

from keras import ops

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x):
    # Exact: x * Phi(x), with Phi the standard normal CDF.
    return 0.5 * x * (1.0 + ops.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + ops.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))


def gelu_fast(x):
    return 0.5 * x * (1.0 + ops.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def gelu_10(x):
    return ops.clip(gelu(x), -10.0, 10.0)


def quick_gelu(x):
    return x * ops.sigmoid(1.702 * x)


def laplace(x, mu=0.707107, sigma=0.282095):
    return 0.5 * (1.0 + ops.erf((x - mu) / (sigma * math.sqrt(2.0))))


def relu2(x):
    return ops.square(ops.relu(x))


def relu6(x):
    return ops.clip(x, 0.0, 6.0)


def hardswish(x):
    return x * ops.clip(x + 3.0, 0.0, 6.0) / 6.0


def mish(x):
    return x * ops.tanh(ops.softplus(x))


def sqrt_softplus(x):
    return ops.sqrt(ops.softplus(x))


def leaky_relu(x):
    # torch.nn.LeakyReLU's default slope.
    return ops.leaky_relu(x, negative_slope=0.01)


def linear(x):
    return x


# Parameter-free entries of transformers' ACT2CLS. `prelu` and `xielu` carry
# learned parameters that BERT checkpoints never store, so they are refused.
ACTIVATIONS = {
    "gelu": gelu,
    "gelu_python": gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_python_tanh": gelu_tanh,
    "gelu_accurate": gelu_tanh,
    "gelu_fast": gelu_fast,
    "gelu_10": gelu_10,
    "quick_gelu": quick_gelu,
    "laplace": laplace,
    "hardswish": hardswish,
    "leaky_relu": leaky_relu,
    "linear": linear,
    "mish": mish,
    "relu": ops.relu,
    "relu2": relu2,
    "relu6": relu6,
    "sigmoid": ops.sigmoid,
    "silu": ops.silu,
    "swish": ops.silu,
    "sqrtsoftplus": sqrt_softplus,
    "tanh": ops.tanh,
}


def get_activation(name):
    """Returns the activation function HF means by `name`.

    Args:
        name: str, a `config.hidden_act` value such as `"gelu"` or `"gelu_new"`.

    Returns:
        A function of one tensor, written with `keras.ops`.

    Example:

    >>> act = get_activation("gelu")  # exact erf GELU, as in transformers
    """
    if name not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation. Expected one of {sorted(ACTIVATIONS)}. "
            f"Received: hidden_act={name!r}"
        )
    return ACTIVATIONS[name]
