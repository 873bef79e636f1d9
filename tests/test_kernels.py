"""bert_keras.kernels: each fast substitute equals its reference (values and
gradients), and the policy that picks them."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from bert_keras.keras_private import all_layers
from bert_keras.kernels.dense import Float32BiasGradientDense
from bert_keras.kernels.gelu import gelu_with_stored_derivative
from bert_keras.kernels.layer_norm import LeanLayerNormalization
from bert_keras.modeling.activations import gelu


def value_and_gradients(fn, x, variables=()):
    """`fn(x)` and the gradients of a weighted sum of it (weights vary)."""
    x = tf.constant(x)
    weights = tf.reshape(tf.sin(tf.range(tf.size(x), dtype="float32")), x.shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    return y, tape.gradient(loss, [x, *variables])


def test_gelu_with_stored_derivative_matches_gelu_and_its_derivative():
    x = np.linspace(-6, 6, 1201, dtype="float32").reshape(1, -1)
    y, (grad,) = value_and_gradients(gelu_with_stored_derivative, x)
    y_ref, (grad_ref,) = value_and_gradients(gelu, x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_layer_norm_training_gradients_match_keras(dtype):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(4, 5, 16)) * 3 + 1).astype("float32")
    ours = LeanLayerNormalization(epsilon=1e-12, dtype=dtype)
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
    of ~35% here); Float32BiasGradientDense's is the float32 sum, rounded once."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4096, 16)).astype("float32")
    upstream = (rng.normal(size=(4096, 8)) + 0.3).astype("float32")
    ours = Float32BiasGradientDense(8, dtype=dtype)
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


# --- Each fast kernel equals its reference, in values and gradients ----------


def _attention_inputs(seed=0, rows=9):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(3, rows, 32)).astype("float32")
    key = rng.normal(size=(3, 11, 32)).astype("float32")
    value = rng.normal(size=(3, 11, 32)).astype("float32")
    mask = np.ones((3, 1, 1, 11), bool)
    mask[1, ..., 6:] = False
    mask[2] = False  # no key left: uniform attention, finite
    return query, key, value, mask


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fast_attention_equals_the_reference_formula(dtype):
    from bert_keras.kernels.attention import fast_attention
    from bert_keras.modeling.attention import scaled_dot_product_attention

    query, key, value, mask = _attention_inputs()
    weights = tf.sin(tf.range(3 * 9 * 32, dtype="float32"))

    def run(attention):
        tensors = [tf.cast(t, dtype) for t in (query, key, value)]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            context, probs = attention(
                *tensors,
                mask,
                num_heads=4,
                dropout=lambda p, training: p,
                training=True,
            )
            loss = tf.reduce_sum(
                tf.reshape(tf.cast(context, "float32"), [-1]) * weights
            )
        grads = tape.gradient(loss, tensors)
        return [np.asarray(tf.cast(t, "float32")) for t in (context, probs, *grads)]

    fast = run(fast_attention)
    reference = run(scaled_dot_product_attention)
    tolerance = {"float32": 1e-5, "bfloat16": 3e-2}[dtype]
    for got, expected in zip(fast, reference):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(
            got, expected, atol=tolerance * max(1.0, np.abs(expected).max())
        )


def test_select_rows_by_product_equals_the_gather():
    from bert_keras.kernels.attention import select_rows_by_product
    from bert_keras.modeling.attention import select_rows

    x = tf.constant(np.random.default_rng(2).normal(size=(3, 7, 5)), "float32")
    positions = tf.constant([[0, 3], [6, 6], [2, 0]])  # repeats accumulate
    weights = tf.reshape(tf.sin(tf.range(30, dtype="float32")), (3, 2, 5))

    def run(select):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = select(x, positions)
            loss = tf.reduce_sum(y * weights)
        return y, tape.gradient(loss, x)

    y, grad = run(select_rows)
    y_fast, grad_fast = run(select_rows_by_product)
    np.testing.assert_array_equal(y_fast, y)
    np.testing.assert_allclose(grad_fast, tf.convert_to_tensor(grad), atol=1e-6)


def test_add_bias_equals_the_plain_sum_and_its_gradient():
    from bert_keras.kernels import bias_adder

    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 7, 5)).astype("float32")
    bias = tf.Variable(rng.normal(size=5).astype("float32"))
    results = {}
    for kernels in ("fast", "reference"):
        add = bias_adder(kernels)
        results[kernels] = value_and_gradients(
            lambda t, add=add: add(t, bias), x, [bias]
        )
    (y, grads), (y_ref, grads_ref) = results["fast"], results["reference"]
    np.testing.assert_array_equal(y, y_ref)
    for got, expected in zip(grads, grads_ref):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# --- The policy ----------------------------------------------------------------


def _kernel_classes(model):
    from bert_keras import kernels

    substitutes = tuple(
        value for value in kernels.FAST_KERNELS.values() if isinstance(value, type)
    )
    return {
        type(layer).__name__
        for layer in all_layers(model)
        if isinstance(layer, substitutes)
    }


def test_reference_policy_builds_plain_keras_layers():
    import bert_keras as bk

    fast = bk.BertForPreTraining(tiny_config())
    reference = bk.BertForPreTraining(tiny_config(), kernels="reference")
    assert _kernel_classes(fast) == {
        "Float32BiasGradientDense",
        "LeanLayerNormalization",
        "SixteenBitDropout",
    }
    assert _kernel_classes(reference) == set()
    assert set(fast.hf_variables()) == set(reference.hf_variables())
    with pytest.raises(ValueError, match="kernels='slow'"):
        bk.BertModel(tiny_config(), kernels="slow")


@pytest.mark.parametrize(
    "name",
    ["BertForSequenceClassification", "BertForPreTraining", "BertForQuestionAnswering"],
)
def test_fast_and_reference_models_agree_in_training(name):
    """Whole models, dropout off: same outputs and gradients with either policy
    (the fast one runs the last layer at the rows its head reads)."""
    import bert_keras as bk

    config = tiny_config(name)
    kwargs = {"max_predictions_per_seq": 3} if name == "BertForPreTraining" else {}
    fast = getattr(bk, name)(config, **kwargs)
    reference = getattr(bk, name)(config, kernels="reference", **kwargs)
    reference.set_weights(fast.get_weights())
    rng = np.random.default_rng(5)
    inputs = {
        "input_ids": rng.integers(0, config.vocab_size, size=(4, 7)),
        "attention_mask": np.ones((4, 7), "int32"),
        "token_type_ids": np.zeros((4, 7), "int32"),
    }
    inputs["attention_mask"][1, 5:] = 0
    if kwargs:
        inputs["masked_lm_positions"] = np.array([[1, 2, 3]] * 4)

    def run(model):
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True)
            loss = sum(
                tf.reduce_sum(tf.sin(tf.cast(value, "float32")))
                for value in outputs.values()
            )
        grads = tape.gradient(loss, model.trainable_variables)
        return outputs, grads

    outputs, grads = run(fast)
    outputs_ref, grads_ref = run(reference)
    for key in outputs_ref:
        np.testing.assert_allclose(outputs[key], outputs_ref[key], atol=2e-5)
    for got, expected in zip(grads, grads_ref):
        got = tf.convert_to_tensor(got)
        expected = tf.convert_to_tensor(expected)
        np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-4)


def test_kernels_survive_keras_and_hf_round_trips(tmp_path):
    import bert_keras as bk

    model = bk.BertForSequenceClassification(tiny_config(), kernels="reference")
    assert model.get_config()["kernels"] == "reference"
    path = str(tmp_path / "model.keras")
    model.save(path)
    assert keras.saving.load_model(path).kernels == "reference"
    model.save_pretrained(tmp_path / "hf")
    loaded = bk.BertForSequenceClassification.from_pretrained(
        tmp_path / "hf", kernels="reference"
    )
    assert loaded.kernels == "reference" and _kernel_classes(loaded) == set()
    assert "kernels" not in (tmp_path / "hf" / "config.json").read_text()


@pytest.mark.parametrize("kernels", ["fast", "reference"])
def test_every_layer_gets_the_model_dtype_and_kernels(kernels):
    import bert_keras as bk

    for name in ("BertForPreTraining", "BertForMultipleChoice"):
        model = getattr(bk, name)(
            tiny_config(name), dtype="mixed_bfloat16", kernels=kernels
        )
        layers = [
            layer
            for layer in all_layers(model)
            if layer is not model and not isinstance(layer, keras.layers.InputLayer)
        ]
        assert {layer.dtype_policy.name for layer in layers} == {"mixed_bfloat16"}
        assert {layer.kernels for layer in layers if hasattr(layer, "kernels")} == {
            kernels
        }
