"""Dense layer and bias add whose bias gradient is accumulated in float32.

TensorFlow's `BiasAddGrad` sums a bfloat16 gradient in bfloat16 on the CPU,
which loses rows once a column's sum is large; a matrix product with a row of
ones accumulates in float32 inside oneDNN (docs/performance.md has the
measurement).
"""

import keras
from keras import layers
from keras import ops

from bert_keras.kernels import snapshot


def add_bias(x, bias):
    """`x + bias` over the last axis, with a float32-accumulated bias gradient.

    Args:
        x: tensor of shape (..., width).
        bias: tensor or variable of shape (width,); it is cast to `x`'s dtype.

    Returns:
        `x + bias`; its gradient for `bias` sums the upstream rows as a matrix
        product, which accumulates in float32 for bfloat16 inputs.

    Example:

    >>> add_bias(ops.zeros((2, 3)), ops.arange(3.0)).numpy().tolist()
    [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
    """

    @ops.custom_gradient
    def add(x, bias):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return upstream, sum_rows(upstream)

        # `ops.add` of a rank-1 bias is a `BiasAdd`, which oneDNN fuses with
        # the matrix product before it.
        return ops.add(x, bias), grad

    # A tensor, not a variable, goes into the custom gradient (`* 1` copies,
    # as in LayerNorm): TensorFlow's custom gradients refuse variables.
    return add(x, ops.cast(bias, x.dtype) * 1)


def sum_rows(x):
    """The sum of `x` over every axis but the last, as a matrix product.

    A row of ones times the (rows, width) matrix: oneDNN accumulates
    bfloat16 in float32, and for float32 it is faster than TensorFlow's
    column reduction.
    """
    rows = ops.reshape(x, (-1, ops.shape(x)[-1]))
    ones = ops.ones((1, ops.shape(rows)[0]), dtype=rows.dtype)
    return ops.reshape(ops.matmul(ones, rows), (-1,))


@keras.saving.register_keras_serializable(package="bert_keras")
class Float32BiasGradientDense(layers.Dense):
    """`keras.layers.Dense` whose bias gradient is accurate in bfloat16.

    The same layer (variables `kernel` and `bias`, config, outputs). In
    training, the bias is added with `add_bias`, so that its gradient is
    accumulated in float32 under mixed bfloat16 precision; Keras' Dense gets
    it from TensorFlow's `BiasAddGrad`, which accumulates in bfloat16.
    Quantized, LoRA or bias-free layers are Keras' Dense unchanged.

    Example:

    >>> dense = Float32BiasGradientDense(4)
    >>> tuple(dense(np.ones((2, 3), "float32"), training=True).shape)
    (2, 4)
    """

    def call(self, inputs, training=None):
        plain = (
            self.bias is None or self.quantization_mode is not None or self.lora_enabled
        )
        if training and not plain:
            x = add_bias(ops.matmul(inputs, self.kernel), self.bias)
        elif not training and not plain and snapshot.active():
            # A weight snapshot (bk.Predictor): weights cast once, not per call.
            dtype = self.compute_dtype
            kernel = snapshot.derived([self.kernel], dtype)
            x = ops.add(
                ops.matmul(inputs, kernel), snapshot.derived([self.bias], dtype)
            )
        else:
            return super().call(inputs, training=training)
        if self.activation is not None:
            x = self.activation(x)
        return x
