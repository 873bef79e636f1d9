"""Errors say what was wrong, naming the field and the value received."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import BATCH
from conftest import SEQ
from conftest import random_inputs
from conftest import tiny_config

import bert_keras as bk

# (case id, field, bad value, the config field the message must name)
BAD_VALUES = [
    ("id-equals-vocab", "input_ids", 99, "vocab_size"),
    ("id-far-above-vocab", "input_ids", 5000, "vocab_size"),
    ("label-value-as-id", "input_ids", -100, "vocab_size"),
    # Must be checked before any cast to int32, which would wrap it to 5.
    ("id-wraps-in-int32", "input_ids", 2**32 + 5, "vocab_size"),
    ("token-type-equals-type-vocab", "token_type_ids", 2, "type_vocab_size"),
]


def bad_inputs(field, value, config):
    inputs = random_inputs(config)
    inputs[field][1, 2] = value
    return inputs


def model_and_dataset(inputs, jit_compile=False):
    config = tiny_config("BertForSequenceClassification")
    model = bk.BertForSequenceClassification(config)
    model.compile(jit_compile=jit_compile)
    labels = np.zeros(len(inputs["input_ids"]), np.int64)
    return model, tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(BATCH)


def assert_names(error, *words):
    message = str(error.value)
    for word in words:
        assert str(word) in message, f"{word!r} not in: {message}"


# Every way ids reach the model. XLA drops in-graph asserts and clamps
# gathers, so "fit-xla" checks that the ids are refused before the graph runs.
ENTRY_POINTS = ("eager", "predict", "fit", "fit-xla")


def call_entry_point(entry_point, inputs):
    if entry_point in ("fit", "fit-xla"):
        model, data = model_and_dataset(inputs, jit_compile=entry_point == "fit-xla")
        return model.fit(data, epochs=1, verbose=0)
    model = bk.BertModel(tiny_config())
    if entry_point == "predict":
        return model.predict(inputs, verbose=0)
    return model(inputs)


@pytest.mark.parametrize(
    ("entry_point", "field", "value", "limit_field"),
    [
        pytest.param(
            entry_point,
            *case[1:],
            id=f"{entry_point}-{case[0]}",
            # Each fit compiles a training step.
            marks=[pytest.mark.slow] if entry_point.startswith("fit") else [],
        )
        for entry_point in ENTRY_POINTS
        for case in BAD_VALUES
        if (entry_point, case[0]) != ("fit-xla", "id-far-above-vocab")
    ],
)
def test_out_of_range_ids(entry_point, field, value, limit_field):
    inputs = bad_inputs(field, value, tiny_config())
    with pytest.raises(bk.InputError) as error:
        call_entry_point(entry_point, inputs)
    assert_names(error, f"`{field}`", limit_field, value)


def test_out_of_range_ids_in_evaluate():
    model, data = model_and_dataset(bad_inputs("input_ids", 123, tiny_config()))
    with pytest.raises(bk.InputError) as error:
        model.evaluate(data, verbose=0)
    assert_names(error, "`input_ids`", "vocab_size", 123)


@pytest.mark.slow
def test_in_graph_errors_stay_invalid_argument_errors_outside_keras_entry_points():
    """A bare `tf.function` sees TF's own error, whose message names the field."""
    config = tiny_config()
    model = bk.BertModel(config)
    inputs = bad_inputs("input_ids", 99, config)

    @tf.function
    def run(batch):
        return model(batch)["last_hidden_state"]

    with pytest.raises(tf.errors.InvalidArgumentError, match="input_ids"):
        run({key: tf.constant(value) for key, value in inputs.items()})


def too_long(config):
    return random_inputs(
        config, seq=config.max_position_embeddings + 1, lengths=[65, 30, 2]
    )


def test_too_long_eager():
    config = tiny_config()
    with pytest.raises(bk.InputError) as error:
        bk.BertModel(config)(too_long(config))
    assert_names(error, "max_position_embeddings", "64", "65")


def test_too_long_in_predict():
    config = tiny_config()
    with pytest.raises(bk.InputError) as error:
        bk.BertModel(config).predict(too_long(config), verbose=0)
    assert_names(error, "max_position_embeddings", "64", "65")


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_too_long_in_fit(jit_compile):
    model, data = model_and_dataset(too_long(tiny_config()), jit_compile)
    assert data.element_spec[0]["input_ids"].shape[-1] == 65
    with pytest.raises(bk.InputError) as error:
        model.fit(data, epochs=1, verbose=0)
    assert_names(error, "max_position_embeddings", "64", "65")


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_too_long_in_fit_with_unknown_static_length(jit_compile):
    inputs = too_long(tiny_config())
    model, _ = model_and_dataset(inputs, jit_compile)
    labels = np.zeros(BATCH, np.int64)
    # Only an in-graph (or in-pipeline) check can see this sequence length.
    spec = tf.TensorSpec(shape=(None, None), dtype=tf.int64)
    data = tf.data.Dataset.from_generator(
        lambda: iter([(inputs, labels)]),
        output_signature=(
            {key: spec for key in inputs},
            tf.TensorSpec(shape=(None,), dtype=tf.int64),
        ),
    )
    with pytest.raises(bk.InputError) as error:
        model.fit(data, epochs=1, verbose=0)
    assert_names(error, "max_position_embeddings", "64", "65")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_input_ids_rejected(dtype):
    config = tiny_config()
    inputs = random_inputs(config)
    inputs["input_ids"] = inputs["input_ids"].astype(dtype)
    with pytest.raises(bk.InputError) as error:
        bk.BertModel(config)(inputs)
    assert_names(error, "input_ids", np.dtype(dtype).name)


def test_float_token_type_ids_rejected():
    config = tiny_config()
    inputs = random_inputs(config)
    inputs["token_type_ids"] = inputs["token_type_ids"].astype(np.float32)
    with pytest.raises(bk.InputError) as error:
        bk.BertModel(config)(inputs)
    assert_names(error, "token_type_ids", "float32")


def test_mismatched_mask_shape_rejected():
    config = tiny_config()
    inputs = random_inputs(config)
    inputs["attention_mask"] = inputs["attention_mask"][:, :-1]
    with pytest.raises(bk.InputError) as error:
        bk.BertModel(config)(inputs)
    assert_names(error, "attention_mask", (BATCH, SEQ - 1), (BATCH, SEQ))


def test_wrong_rank_rejected():
    config = tiny_config("BertForMultipleChoice")
    with pytest.raises(bk.InputError) as error:
        bk.BertForMultipleChoice(config)(random_inputs(config))
    assert_names(error, "(batch, choices, seq)", (BATCH, SEQ))


def test_unsupported_hf_inputs_rejected():
    config = tiny_config()
    inputs = dict(random_inputs(config), head_mask=np.ones((2, 4), "float32"))
    with pytest.raises(bk.InputError) as error:
        bk.BertModel(config)(inputs)
    assert_names(error, "head_mask")


def test_missing_input_ids_rejected():
    config = tiny_config()
    inputs = random_inputs(config)
    del inputs["input_ids"]
    with pytest.raises(bk.InputError) as error:
        bk.BertModel(config)(inputs)
    assert_names(error, "input_ids", "attention_mask")


def test_input_errors_are_value_errors():
    assert issubclass(bk.InputError, ValueError)
    assert issubclass(bk.ConfigError, ValueError)
    assert issubclass(bk.CheckpointError, ValueError)
    assert issubclass(bk.CheckpointNotFoundError, OSError)


# --- Configs ---------------------------------------------------------------------


def test_hidden_size_not_divisible_by_heads():
    with pytest.raises(bk.ConfigError) as error:
        bk.BertModel(tiny_config(hidden_size=30))
    assert_names(error, "hidden_size=30", "num_attention_heads=4")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vocab_size", 0),
        ("num_hidden_layers", -1),
        ("hidden_dropout_prob", 1.5),
        ("layer_norm_eps", 0.0),
        ("position_embedding_type", "relative_key"),
    ],
)
def test_bad_config_fields(field, value):
    with pytest.raises(bk.ConfigError) as error:
        bk.BertModel(tiny_config(**{field: value}))
    assert_names(error, f"{field}={value!r}")


def test_unknown_problem_type():
    name = "BertForSequenceClassification"
    with pytest.raises(bk.ConfigError) as error:
        bk.BertForSequenceClassification(tiny_config(name, problem_type="ranking"))
    assert_names(error, "problem_type='ranking'")


def test_question_answering_needs_two_labels():
    with pytest.raises(bk.ConfigError, match="num_labels=2.*Received: num_labels=3"):
        bk.BertForQuestionAnswering(tiny_config("BertModel", num_labels=3))


@pytest.mark.parametrize("typo", ["num_lables", "hiden_size"])
def test_unknown_override_in_from_pretrained_is_refused(hf_checkpoint, typo):
    directory, _ = hf_checkpoint("BertModel")
    with pytest.raises(bk.ConfigError) as error:
        bk.BertModel.from_pretrained(directory, **{typo: 64})
    assert_names(error, typo)


# --- Checkpoints -----------------------------------------------------------------


def test_shape_mismatch_names_key_and_both_shapes(hf_checkpoint):
    directory, _ = hf_checkpoint("BertForSequenceClassification")
    with pytest.raises(bk.CheckpointError) as error:
        bk.BertForSequenceClassification.from_pretrained(directory, num_labels=5)
    assert_names(
        error, "classifier.weight", "(3, 32)", "(5, 32)", "ignore_mismatched_sizes"
    )


def test_shape_mismatch_ignored_on_request(hf_checkpoint):
    directory, torch_model = hf_checkpoint("BertForSequenceClassification")
    model, info = bk.BertForSequenceClassification.from_pretrained(
        directory, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert {key for key, *_ in info["mismatched_keys"]} == {
        "classifier.weight",
        "classifier.bias",
    }
    assert tuple(model(random_inputs())["logits"].shape) == (BATCH, 5)
    expected = torch_model.bert.embeddings.word_embeddings.weight.detach().numpy()
    loaded = np.asarray(model.bert.embeddings.word_embeddings.embeddings)
    np.testing.assert_array_equal(loaded, expected)


def test_shape_mismatch_leaves_no_half_loaded_model(hf_checkpoint, monkeypatch):
    """Every shape is checked before any variable is assigned."""
    directory, _ = hf_checkpoint("BertForSequenceClassification")
    built = []
    original = bk.BertForSequenceClassification.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(bk.BertForSequenceClassification, "__init__", spy)
    with pytest.raises(bk.CheckpointError):
        bk.BertForSequenceClassification.from_pretrained(directory, num_labels=5)
    (model,) = built
    fresh = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification", num_labels=5)
    )
    # Still at initialisation: LayerNorm gammas are exactly one.
    gamma = np.asarray(model.bert.embeddings.layer_norm.gamma)
    np.testing.assert_array_equal(gamma, np.ones_like(gamma))
    assert len(model.weights) == len(fresh.weights)


def _raise_if_built(self, *args, **kwargs):
    raise AssertionError("the model was built before the checkpoint was found")


def test_directory_without_weights(tmp_path, monkeypatch):
    bk.BertModel(tiny_config()).config.to_json_file(tmp_path / "config.json")
    monkeypatch.setattr(bk.BertModel, "__init__", _raise_if_built)
    with pytest.raises(bk.CheckpointNotFoundError) as error:
        bk.BertModel.from_pretrained(tmp_path)
    assert_names(error, "model.safetensors", str(tmp_path))


def test_directory_without_config(tmp_path, monkeypatch):
    monkeypatch.setattr(bk.BertModel, "__init__", _raise_if_built)
    with pytest.raises(bk.CheckpointNotFoundError) as error:
        bk.BertModel.from_pretrained(tmp_path)
    assert_names(error, "config.json")


def test_missing_path_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(bk.BertModel, "__init__", _raise_if_built)
    with pytest.raises(bk.CheckpointNotFoundError) as error:
        bk.BertModel.from_pretrained(str(tmp_path / "no-such-model"))
    assert_names(error, "no-such-model")


def test_non_bert_config_rejected(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    monkeypatch.setattr(bk.BertModel, "__init__", _raise_if_built)
    with pytest.raises(bk.ConfigError) as error:
        bk.BertModel.from_pretrained(tmp_path)
    assert_names(error, "model_type='gpt2'")


@pytest.mark.parametrize("pad_token_id", [99, 150, -1])
def test_pad_token_id_outside_the_vocabulary_is_a_config_error(pad_token_id):
    """transformers refuses such a config (its embedding's padding_idx)."""
    with pytest.raises(bk.ConfigError, match="pad_token_id.*vocab_size=99"):
        bk.BertModel(tiny_config(pad_token_id=pad_token_id))


def test_pad_token_id_none_or_inside_the_vocabulary_is_fine():
    for pad_token_id in (None, 0, 98):
        bk.BertModel(tiny_config(pad_token_id=pad_token_id))
