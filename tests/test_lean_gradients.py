"""Training-only layers with leaner backward passes give Keras' gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_keras.modeling.activations import gelu
from bert_keras.modeling.activations import gelu_for_training
from bert_keras.kernels.dense import BertDense
from bert_keras.kernels.layer_norm import BertLayerNorm


def value_and_gradients(fn, x, variables=()):
    """`fn(x)` and the gradients of a weighted sum of it (weights vary)."""
    x = tf.constant(x)
    weights = tf.reshape(tf.sin(tf.range(tf.size(x), dtype="float32")), x.shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    return y, tape.gradient(loss, [x, *variables])


def test_gelu_for_training_matches_gelu_and_its_derivative():
    x = np.linspace(-6, 6, 1201, dtype="float32").reshape(1, -1)
    y, (grad,) = value_and_gradients(gelu_for_training, x)
    y_ref, (grad_ref,) = value_and_gradients(gelu, x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_layer_norm_training_gradients_match_keras(dtype):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(4, 5, 16)) * 3 + 1).astype("float32")
    ours = BertLayerNorm(epsilon=1e-12, dtype=dtype)
    keras_norm = keras.layers.LayerNormalization(epsilon=1e-12, dtype=dtype)
    for layer in (ours, keras_norm):
        layer.build(x.shape)
        layer.gamma.assign(rng.normal(size=16).astype("float32"))
        layer.beta.assign(rng.normal(size=16).astype("float32"))
    keras_norm.set_weights(ours.get_weights())
    if dtype == "mixed_bfloat16":
        x = x.astype(keras.backend.standardize_dtype("bfloat16"))
    tolerance = {"float32": 1e-5, "mixed_bfloat16": 2e-2}[dtype]

    def run(layer):
        return value_and_gradients(
            lambda t: layer(t, training=True), x, [layer.gamma, layer.beta]
        )

    y, grads = run(ours)
    y_ref, grads_ref = run(keras_norm)
    assert y.dtype == y_ref.dtype
    np.testing.assert_allclose(
        np.asarray(y, "float32"), np.asarray(y_ref, "float32"), atol=tolerance
    )
    for got, expected in zip(grads, grads_ref):
        np.testing.assert_allclose(
            np.asarray(got, "float32"),
            np.asarray(expected, "float32"),
            rtol=tolerance,
            atol=tolerance,
        )
    # Inference: Keras' arithmetic, regrouped (rounding of the last bit).
    inference_tolerance = {"float32": 1e-6, "mixed_bfloat16": 8e-3}[dtype]
    np.testing.assert_allclose(
        np.asarray(ours(x), "float32"),
        np.asarray(keras_norm(x), "float32"),
        rtol=inference_tolerance,
        atol=inference_tolerance,
    )


def test_bfloat16_softmax_is_the_float32_softmax_rounded():
    """The bfloat16 softmax skips two casts of the scores and loses nothing."""
    rng = np.random.default_rng(3)
    logits = keras.ops.cast(rng.normal(size=(3, 4, 40, 40)) * 6, "bfloat16")
    fast = keras.ops.softmax(logits, axis=-1)
    reference = keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1)
    assert fast.dtype == "bfloat16"
    np.testing.assert_array_equal(
        np.asarray(fast, "float32"),
        np.asarray(keras.ops.cast(reference, "bfloat16"), "float32"),
    )


def test_bfloat16_attention_masks_and_differentiates_like_float32():
    from bert_keras.modeling.attention import BertAttention

    rng = np.random.default_rng(3)
    x = (rng.normal(size=(3, 40, 64)) * 2).astype("float32")
    mask = np.ones((3, 1, 1, 40), bool)
    mask[1, ..., 25:] = False
    mask[2] = False  # no key at all: uniform, finite
    layers = {}
    for dtype in ("float32", "mixed_bfloat16"):
        layers[dtype] = BertAttention(
            64, 4, attention_dropout_rate=0.0, hidden_dropout_rate=0.0,
            dtype=dtype,
        )  # fmt: skip
        layers[dtype].build(x.shape)
    layers["mixed_bfloat16"].set_weights(layers["float32"].get_weights())

    results = {}
    for dtype, layer in layers.items():
        probs = np.asarray(layer(x, mask, training=True)[1], "float32")
        assert np.isfinite(probs).all()
        np.testing.assert_allclose(probs[2], 1 / 40, rtol=2**-8)
        assert (probs[1, ..., 25:] == 0).all()
        _, grads = value_and_gradients(
            lambda t, layer=layer: layer(t, mask, training=True)[0],
            x,
            [layer.query.kernel, layer.key.kernel],
        )
        results[dtype] = [np.asarray(g, "float32") for g in grads]
    for bf16, f32 in zip(results["mixed_bfloat16"], results["float32"]):
        assert np.abs(bf16 - f32).max() <= 3e-2 * np.abs(f32).max()


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_dense_bias_gradient_is_summed_in_float32(dtype):
    """4,096 rows: TensorFlow's BiasAddGrad sums bfloat16 in bfloat16 (errors
    of ~35% here); BertDense's bias gradient is the float32 sum, rounded once."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4096, 16)).astype("float32")
    upstream = (rng.normal(size=(4096, 8)) + 0.3).astype("float32")
    ours = BertDense(8, dtype=dtype)
    keras_dense = keras.layers.Dense(8, dtype=dtype)
    for layer in (ours, keras_dense):
        layer.build(x.shape)
    keras_dense.set_weights(ours.get_weights())
    upstream = tf.cast(tf.cast(upstream, ours.compute_dtype), "float32")

    def run(layer):
        with tf.GradientTape() as tape:
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
        return y, tape.gradient(loss, [layer.kernel, layer.bias])

    y, (d_kernel, d_bias) = run(ours)
    y_ref, (d_kernel_ref, _) = run(keras_dense)
    np.testing.assert_array_equal(
        np.asarray(y, "float32"), np.asarray(y_ref, "float32")
    )
    np.testing.assert_array_equal(d_kernel, d_kernel_ref)
    exact = np.sum(np.asarray(upstream, "float64"), axis=0)
    rounding = {"float32": 1e-5, "mixed_bfloat16": 2**-8}[dtype]
    np.testing.assert_allclose(d_bias, exact, rtol=rounding)
    # Outside training it is Keras' Dense call (oneDNN may fuse what follows).
    np.testing.assert_array_equal(
        np.asarray(ours(x), "float32"), np.asarray(y, "float32")
    )
