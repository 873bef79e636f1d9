"""Model behaviour without torch in the loop: shapes, serialization, masking,
dtypes and the activations table."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
from conftest import BATCH
from conftest import CHOICES
from conftest import CLASS_NAMES
from conftest import SEQ
from conftest import assert_outputs_close
from conftest import inputs_for
from conftest import labels_for
from conftest import max_abs_diff
from conftest import perturb_keras
from conftest import random_inputs
from conftest import tiny_config
from transformers.activations import ACT2FN

import bert_keras as bk
from bert_keras.modeling.activations import ACTIVATIONS

HIDDEN = 32
VOCAB = 99
EXPECTED_SHAPES = {
    "BertModel": {
        "last_hidden_state": (BATCH, SEQ, HIDDEN),
        "pooler_output": (BATCH, HIDDEN),
    },
    "BertForPreTraining": {
        "prediction_logits": (BATCH, SEQ, VOCAB),
        "seq_relationship_logits": (BATCH, 2),
    },
    "BertForMaskedLM": {"logits": (BATCH, SEQ, VOCAB)},
    "BertForNextSentencePrediction": {"logits": (BATCH, 2)},
    "BertForSequenceClassification": {"logits": (BATCH, 3)},
    "BertForTokenClassification": {"logits": (BATCH, SEQ, 3)},
    "BertForQuestionAnswering": {
        "start_logits": (BATCH, SEQ),
        "end_logits": (BATCH, SEQ),
    },
    "BertForMultipleChoice": {"logits": (BATCH, CHOICES)},
}


def build(name, **overrides):
    return getattr(bk, name)(tiny_config(name, **overrides))


def fit_dataset(name, config):
    features = inputs_for(name, config)
    labels = labels_for(name, config)
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(BATCH)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_output_keys_shapes_and_dtypes(name):
    model = build(name)
    outputs = model(inputs_for(name, model.config))
    assert {key: tuple(value.shape) for key, value in outputs.items()} == (
        EXPECTED_SHAPES[name]
    )
    for value in outputs.values():
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        assert np.isfinite(keras.ops.convert_to_numpy(value)).all()


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_hidden_states_and_attentions_on_request(name):
    model = build(name, output_hidden_states=True, output_attentions=True)
    outputs = model(inputs_for(name, model.config))
    rows = BATCH * CHOICES if name == "BertForMultipleChoice" else BATCH
    assert len(outputs["hidden_states"]) == 3
    assert len(outputs["attentions"]) == 2
    for hidden in outputs["hidden_states"]:
        assert tuple(hidden.shape) == (rows, SEQ, HIDDEN)
    for attention in outputs["attentions"]:
        assert tuple(attention.shape) == (rows, 4, SEQ, SEQ)
        # Probabilities over the keys; padded keys get none.
        attention = keras.ops.convert_to_numpy(attention)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)


def _full_encoder_logits(name, model, inputs):
    """The task logits computed through the full `model.bert(...)` outputs."""
    if name == "BertForNextSentencePrediction":
        return model.seq_relationship(model.bert(inputs)["pooler_output"])
    if name == "BertForSequenceClassification":
        return model.classifier(model.bert(inputs)["pooler_output"])
    shape = inputs["input_ids"].shape
    flat = {key: np.reshape(value, (-1, shape[-1])) for key, value in inputs.items()}
    scores = model.classifier(model.bert(flat)["pooler_output"])
    return keras.ops.reshape(scores, shape[:2])


@pytest.mark.parametrize(
    "name",
    [
        "BertForSequenceClassification",
        "BertForNextSentencePrediction",
        "BertForMultipleChoice",
    ],
)
def test_first_token_heads_equal_the_full_encoder(name):
    """Heads on [CLS] alone run the last layer on that row: same logits and
    the same gradient for every weight as the full encoder's outputs."""
    model = perturb_keras(build(name, num_hidden_layers=3))
    inputs = inputs_for(name, model.config)
    weights = None

    def value_and_gradients(fn):
        nonlocal weights
        with tf.GradientTape() as tape:
            logits = tf.cast(fn(), "float32")
            if weights is None:
                steps = tf.range(tf.size(logits), dtype="float32")
                weights = tf.sin(tf.reshape(steps, logits.shape))
            loss = tf.reduce_sum(logits * weights)
        return logits, tape.gradient(loss, model.trainable_variables)

    logits, grads = value_and_gradients(lambda: model(inputs)["logits"])
    expected, expected_grads = value_and_gradients(
        lambda: _full_encoder_logits(name, model, inputs)
    )
    assert max_abs_diff(logits, expected) <= 1e-6
    for variable, got, want in zip(model.trainable_variables, grads, expected_grads):
        got, want = tf.convert_to_tensor(got), tf.convert_to_tensor(want)
        scale = float(tf.reduce_max(tf.abs(want)))
        assert max_abs_diff(got, want) <= 1e-5 * scale + 1e-9, variable.path


def test_encoder_output_positions_gather_the_full_states():
    config = tiny_config(num_hidden_layers=2)
    model = perturb_keras(build("BertModel", num_hidden_layers=2))
    inputs = random_inputs(config)
    embeddings = model.embeddings(inputs["input_ids"], inputs["token_type_ids"])
    full = model.encoder(embeddings, inputs["attention_mask"])["last_hidden_state"]
    positions = np.array([[3, 0], [0, 1], [2, 2], [5, 0]], "int32")[:BATCH]
    partial = model.encoder(
        embeddings, inputs["attention_mask"], output_positions=positions
    )["last_hidden_state"]
    assert tuple(partial.shape) == (positions.shape[0], 2, HIDDEN)
    gathered = np.take_along_axis(
        keras.ops.convert_to_numpy(full), positions[:, :, None], axis=1
    )
    assert max_abs_diff(partial, gathered) <= 1e-6


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_config_round_trip(name):
    model = perturb_keras(build(name, hidden_act="gelu_new", layer_norm_eps=1e-7))
    inputs = inputs_for(name, model.config)
    outputs = model(inputs)

    config = model.get_config()
    restored = getattr(bk, name).from_config(config)
    assert type(restored) is type(model)
    assert restored.get_config() == config
    assert restored.config.to_dict() == model.config.to_dict()
    restored.set_weights(model.get_weights())
    assert_outputs_close(outputs, restored(inputs), atol=0.0)
    # As keras-hub checks: every attribute the original has is restored.
    assert set(dir(restored)) == set(dir(model))


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASS_NAMES)
def test_keras_file_round_trip_then_fit(name, tmp_path):
    model = perturb_keras(build(name))
    inputs = inputs_for(name, model.config)
    if name != "BertModel":
        model.compile()
    outputs = model(inputs)
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.config.to_dict() == model.config.to_dict()
    assert_outputs_close(outputs, loaded(inputs), atol=0.0)
    assert set(model.hf_variables()) == set(loaded.hf_variables())

    if name == "BertModel":
        return
    history = loaded.fit(fit_dataset(name, model.config), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_keras_file_round_trip_keeps_decoder_tying(tied, tmp_path):
    model = perturb_keras(build("BertForMaskedLM", tie_word_embeddings=tied))
    inputs = random_inputs(model.config)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.predictions.tied == tied
    if tied:
        embeddings = loaded.bert.embeddings.word_embeddings
        assert loaded.predictions.word_embeddings is embeddings
    assert_outputs_close(model(inputs), loaded(inputs), atol=0.0)


def test_bare_model_without_pooler_round_trip():
    model = bk.BertModel(tiny_config(), add_pooling_layer=False)
    assert set(model(random_inputs())) == {"last_hidden_state"}
    assert not any(key.startswith("pooler.") for key in model.hf_variables())
    restored = bk.BertModel.from_config(model.get_config())
    assert set(restored(random_inputs())) == {"last_hidden_state"}
    assert restored.get_config() == model.get_config()


def _policies(model):
    return {layer.dtype_policy.name for layer in model._flatten_layers()}


@pytest.mark.parametrize("name", ["BertModel", "BertForSequenceClassification"])
def test_config_round_trip_keeps_dtype_policy(name):
    model = getattr(bk, name)(tiny_config(name), dtype="mixed_bfloat16")
    assert "mixed_bfloat16" in _policies(model)
    restored = getattr(bk, name).from_config(model.get_config())
    assert _policies(restored) == _policies(model)


def test_keras_file_round_trip_keeps_dtype_policy(tmp_path):
    name = "BertForSequenceClassification"
    model = getattr(bk, name)(tiny_config(name), dtype="mixed_bfloat16")
    inputs = random_inputs(model.config)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.bert.encoder.dtype_policy.name == "mixed_bfloat16"
    assert_outputs_close(model(inputs), loaded(inputs), atol=0.0)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("BertModel", "last_hidden_state"),
        ("BertForSequenceClassification", "logits"),
        ("BertForTokenClassification", "logits"),
    ],
)
def test_right_padding_does_not_change_real_tokens(name, key):
    model = perturb_keras(build(name))
    inputs = random_inputs(model.config)
    outputs = keras.ops.convert_to_numpy(model(inputs)[key])

    extra = 5
    padded = {
        field: np.pad(value, ((0, 0), (0, extra))) for field, value in inputs.items()
    }
    padded_outputs = keras.ops.convert_to_numpy(model(padded)[key])
    if outputs.ndim == 2 and key == "logits":  # one vector per sequence
        assert max_abs_diff(outputs, padded_outputs) <= 1e-5
        return
    real = inputs["attention_mask"].astype(bool)
    assert max_abs_diff(outputs[real], padded_outputs[:, :SEQ][real]) <= 1e-5


@pytest.mark.parametrize("name", ["BertModel", "BertForSequenceClassification"])
def test_row_in_batch_equals_row_alone(name):
    model = perturb_keras(build(name))
    inputs = random_inputs(model.config)
    batched = model(inputs)
    for row in range(BATCH):
        length = int(inputs["attention_mask"][row].sum())
        alone = model(
            {key: value[row : row + 1, :length] for key, value in inputs.items()}
        )
        if name == "BertModel":
            diff = max_abs_diff(
                batched["last_hidden_state"][row : row + 1, :length],
                alone["last_hidden_state"],
            )
            assert diff <= 1e-5, row
            diff = max_abs_diff(
                batched["pooler_output"][row : row + 1], alone["pooler_output"]
            )
        else:
            diff = max_abs_diff(batched["logits"][row : row + 1], alone["logits"])
        assert diff <= 1e-5, row


@pytest.mark.parametrize(
    "convert",
    [
        lambda mask: mask.astype(bool),
        lambda mask: mask.astype(np.int32),
        lambda mask: mask.astype(np.int64),
        lambda mask: mask.astype(np.float32),
        lambda mask: tf.constant(mask, tf.int64),
        lambda mask: torch.tensor(mask, dtype=torch.int64),
    ],
    ids=["bool", "int32", "int64", "float32", "tf-int64", "torch-int64"],
)
def test_attention_mask_dtypes_agree(convert):
    model = perturb_keras(build("BertModel"))
    inputs = random_inputs(model.config)
    reference = model(inputs)
    converted = dict(inputs, attention_mask=convert(inputs["attention_mask"]))
    assert_outputs_close(reference, model(converted), atol=0.0)


def test_default_mask_and_token_types():
    model = perturb_keras(build("BertModel"))
    input_ids = random_inputs(model.config, lengths=[SEQ] * BATCH)["input_ids"]
    explicit = model(
        {
            "input_ids": input_ids,
            "attention_mask": np.ones_like(input_ids),
            "token_type_ids": np.zeros_like(input_ids),
        }
    )
    assert_outputs_close(explicit, model({"input_ids": input_ids}), atol=0.0)
    assert_outputs_close(explicit, model(input_ids), atol=0.0)


def test_predict_matches_eager_call():
    model = perturb_keras(build("BertForTokenClassification"))
    inputs = random_inputs(model.config)
    predicted = model.predict(inputs, verbose=0)
    assert max_abs_diff(model(inputs)["logits"], predicted["logits"]) <= 1e-6


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_mixed_bfloat16_close_to_float32(name):
    reference = perturb_keras(build(name))
    config = tiny_config(name)
    model = getattr(bk, name)(config, dtype="mixed_bfloat16")
    model.set_weights(reference.get_weights())
    assert all(
        keras.backend.standardize_dtype(v.dtype) == "float32" for v in model.weights
    )
    inputs = inputs_for(name, config)
    expected = reference(inputs)
    outputs = model(inputs)
    for key, value in outputs.items():
        if name != "BertModel":
            # Task heads upcast their logits so losses run in float32.
            assert keras.backend.standardize_dtype(value.dtype) == "float32", key
        value = keras.ops.convert_to_numpy(value).astype(np.float32)
        assert np.isfinite(value).all(), key
        scale = np.abs(keras.ops.convert_to_numpy(expected[key])).max()
        assert max_abs_diff(value, expected[key]) <= 0.05 * scale + 0.05, key


def test_global_mixed_bfloat16_policy():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = build("BertForSequenceClassification")
        assert model.bert.encoder.dtype_policy.name == "mixed_bfloat16"
        logits = keras.ops.convert_to_numpy(
            model(random_inputs(model.config))["logits"]
        )
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_transformers(name):
    x = np.concatenate(
        [np.linspace(-12.0, 12.0, 481), [-1e-3, 0.0, 1e-3, 3.0, 6.0, 10.0]]
    ).astype(np.float32)
    ours = keras.ops.convert_to_numpy(ACTIVATIONS[name](keras.ops.convert_to_tensor(x)))
    with torch.no_grad():
        theirs = ACT2FN[name](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_unknown_activation_is_a_config_error():
    with pytest.raises(bk.ConfigError, match="hidden_act='swiglu'"):
        build("BertModel", hidden_act="swiglu")
