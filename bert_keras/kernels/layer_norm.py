"""LayerNormalization whose backward pass keeps one tensor per call."""

import keras
from keras import layers
from keras import ops

from bert_keras.kernels.dense import sum_rows


@keras.saving.register_keras_serializable(package="bert_keras")
class LeanLayerNormalization(layers.LayerNormalization):
    """`keras.layers.LayerNormalization` over the last axis, lean in training.

    The same layer (variables `gamma` and `beta`, config, float32 arithmetic
    under mixed precision), with one change in training: differentiating
    Keras' formula makes TensorFlow keep the float32 input and several float32
    intermediates of the same size for the backward pass, and run a dozen
    element-wise operations there. This layer keeps only the normalized input
    (float32) and the per-row inverse deviation, and computes the input
    gradient in one formula:
    `dx = inv * (dn - mean(dn) - n * mean(dn * n))`, with `n` the normalized
    input and `dn = upstream * gamma`.

    Outside training it computes Keras' formula with fewer operations (equal
    up to the rounding of the last bit); for other axes or options it is
    Keras' layer.

    Example:

    >>> norm = LeanLayerNormalization(epsilon=1e-12)
    >>> tuple(norm(np.ones((2, 3, 8), "float32"), training=True).shape)
    (2, 3, 8)
    """

    def call(self, inputs, training=None):
        last_axis = self.axis in (-1, [-1], [len(inputs.shape) - 1])
        if not (last_axis and self.center and self.scale) or self.rms_scaling:
            return super().call(inputs)
        if not training:
            # Fewer full-size passes than Keras' graph, same arithmetic.
            x = ops.cast(inputs, "float32")
            centered = x - ops.mean(x, axis=-1, keepdims=True)
            variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
            scale = ops.rsqrt(variance + self.epsilon) * self.gamma
            return ops.cast(centered * scale + self.beta, self.compute_dtype)
        # TensorFlow's custom gradients take tensors, not variables: `* 1`.
        gamma, beta = self.gamma * 1, self.beta * 1
        outputs = _normalize(inputs, gamma, beta, self.epsilon)
        return ops.cast(outputs, self.compute_dtype)


def _normalize(inputs, gamma, beta, epsilon):
    @ops.custom_gradient
    def normalize(x, gamma, beta):
        x32 = ops.cast(x, "float32")
        centered = x32 - ops.mean(x32, axis=-1, keepdims=True)
        variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
        inverse = ops.rsqrt(variance + epsilon)
        normalized = centered * inverse

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            upstream = ops.cast(upstream, "float32")
            width = ops.shape(upstream)[-1]
            rows = ops.reshape(upstream, (-1, width))
            products = rows * ops.reshape(normalized, (-1, width))
            d_gamma = sum_rows(products)
            d_beta = sum_rows(rows)
            # mean(dn * n) = (upstream * n) @ gamma / width: reuses `products`.
            mean_dn_n = ops.matmul(products, ops.reshape(gamma, (-1, 1)))
            mean_dn_n = ops.reshape(
                mean_dn_n / ops.cast(width, "float32"), ops.shape(inverse)
            )
            d_normalized = upstream * gamma
            d_x = inverse * (
                d_normalized
                - ops.mean(d_normalized, axis=-1, keepdims=True)
                - normalized * mean_dn_n
            )
            return ops.cast(d_x, x.dtype), d_gamma, d_beta

        return normalized * gamma + beta, grad

    return normalize(inputs, gamma, beta)
