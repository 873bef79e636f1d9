"""`resize_token_embeddings`, `get_output_embeddings`, `get_bias` / `set_bias`.

Every class is resized larger and smaller: old rows kept, new rows drawn as a
fresh model draws them, shapes, tying, training of the new rows, and the
saved checkpoint checked against transformers' PyTorch class.
"""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import transformers
from conftest import CLASS_NAMES
from conftest import assert_outputs_close
from conftest import hf_weights
from conftest import inputs_for
from conftest import labels_for
from conftest import max_abs_diff
from conftest import perturb_keras
from conftest import tiny_config
from conftest import torch_outputs

import bert_keras as bk
from bert_keras.errors import ConfigError
from bert_keras.errors import InputError

OLD = 99
GROW = 111
SHRINK = 85
LM_CLASSES = ("BertForPreTraining", "BertForMaskedLM")
# The HF keys whose first axis is the vocabulary.
VOCAB_KEYS = (
    "embeddings.word_embeddings.weight",
    "bert.embeddings.word_embeddings.weight",
    "cls.predictions.bias",
    "cls.predictions.decoder.weight",
)
# The output whose last axis is the vocabulary, per LM class.
VOCAB_OUTPUT = {"BertForPreTraining": "prediction_logits", "BertForMaskedLM": "logits"}


def build(name, **overrides):
    return perturb_keras(getattr(bk, name)(tiny_config(name, **overrides)))


def numpy(value):
    return keras.ops.convert_to_numpy(value)


def with_new_tokens(name, config, new_size, seed=0):
    """Inputs whose real tokens include ids above the old vocabulary."""
    inputs = inputs_for(name, config, seed=seed)
    ids = inputs["input_ids"]
    real = inputs["attention_mask"].astype(bool)
    rng = np.random.default_rng(seed)
    fresh = rng.integers(OLD, new_size, size=ids.shape)
    inputs["input_ids"] = np.where(real & (rng.random(ids.shape) < 0.5), fresh, ids)
    inputs["input_ids"][..., 1] = new_size - 1  # the last new row, in every row
    return inputs


@pytest.mark.parametrize("new_size", [GROW, SHRINK], ids=["grow", "shrink"])
@pytest.mark.parametrize("name", CLASS_NAMES)
def test_resize_keeps_old_rows_and_changes_only_the_vocabulary(name, new_size):
    model = build(name)
    before = hf_weights(model)
    paths = [variable.path for variable in model.weights]
    layer = model.resize_token_embeddings(new_size)

    assert layer is model.get_input_embeddings()
    assert layer.input_dim == model.config.vocab_size == new_size
    assert getattr(model, "bert", model).embeddings.get_config()["vocab_size"] == (
        new_size
    )
    assert [variable.path for variable in model.weights] == paths
    after = hf_weights(model)
    assert set(after) == set(before)
    keep = min(OLD, new_size)
    for key, value in after.items():
        if key in VOCAB_KEYS:
            assert value.shape == (new_size,) + before[key].shape[1:], key
            np.testing.assert_array_equal(value[:keep], before[key][:keep], key)
        else:
            np.testing.assert_array_equal(value, before[key], key)

    inputs = inputs_for(name, model.config)
    outputs = model(inputs, training=False)
    if name in LM_CLASSES:
        assert outputs[VOCAB_OUTPUT[name]].shape[-1] == new_size
    if new_size < OLD:
        inputs["input_ids"][..., 1] = new_size  # a row the model no longer has
        with pytest.raises(InputError, match="vocab_size"):
            model(inputs)


@pytest.mark.parametrize("name", LM_CLASSES)
def test_new_rows_are_initialised_as_a_fresh_model_would(name):
    model = getattr(bk, name)(tiny_config(name, tie_word_embeddings=False))
    model.resize_token_embeddings(2000)  # many new rows, for the statistics
    stddev = model.config.initializer_range
    for table in (model.get_input_embeddings().embeddings, model.predictions.decoder):
        new_rows = numpy(table)[OLD:]
        # Truncated normal: within two stddevs, std about 0.88 of stddev.
        assert np.abs(new_rows).max() <= 2 * stddev
        assert abs(new_rows.std() - 0.88 * stddev) < 0.05 * stddev
        assert abs(new_rows.mean()) < 0.05 * stddev
    np.testing.assert_array_equal(numpy(model.get_bias()["bias"])[OLD:], 0.0)


@pytest.mark.parametrize("name", LM_CLASSES)
def test_resize_keeps_the_decoder_tied(name):
    model = build(name)
    model.resize_token_embeddings(GROW)
    embedding = model.get_input_embeddings()
    assert model.predictions.word_embeddings is embedding
    assert model.get_output_embeddings() is embedding
    assert model.hf_tied_weights  # the decoder is not written, as transformers
    # A new embedding row scores its token: editing it moves that logit alone
    # (the inputs hold old tokens only).
    inputs = inputs_for(name, tiny_config(name))
    key = VOCAB_OUTPUT[name]
    before = numpy(model(inputs, training=False)[key])
    table = numpy(embedding.embeddings)
    table[GROW - 1] += 1.0
    embedding.embeddings.assign(table)
    after = numpy(model(inputs, training=False)[key])
    assert max_abs_diff(before[..., : GROW - 1], after[..., : GROW - 1]) == 0
    assert max_abs_diff(before[..., GROW - 1], after[..., GROW - 1]) > 1e-2


def test_untied_decoder_is_resized_apart_from_the_embeddings():
    model = build("BertForMaskedLM", tie_word_embeddings=False)
    model.resize_token_embeddings(GROW)
    head = model.predictions
    assert not head.tied and model.get_output_embeddings() is head
    assert head.decoder.shape == (GROW, 32) and head.vocab_size == GROW
    assert head.decoder is not model.get_input_embeddings().embeddings


@pytest.mark.parametrize(
    ("name", "overrides"),
    [(name, {}) for name in CLASS_NAMES]
    + [("BertForMaskedLM", {"tie_word_embeddings": False})],
    ids=list(CLASS_NAMES) + ["BertForMaskedLM-untied"],
)
@pytest.mark.parametrize("new_size", [GROW, SHRINK], ids=["grow", "shrink"])
def test_resized_checkpoint_matches_transformers(name, overrides, new_size, tmp_path):
    model = build(name, **overrides)
    model.resize_token_embeddings(new_size)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["vocab_size"] == new_size

    theirs, info = getattr(transformers, name).from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert not any(info.values()), info  # no missing, unexpected, mismatched key
    if new_size > OLD:
        inputs = with_new_tokens(name, model.config, new_size)
    else:
        inputs = inputs_for(name, model.config)  # ids below the new size
    ours = model(inputs, training=False)
    assert_outputs_close(ours, torch_outputs(theirs.eval(), inputs))

    reloaded = getattr(bk, name).from_pretrained(tmp_path)
    assert reloaded.config.vocab_size == new_size
    assert_outputs_close(ours, reloaded(inputs, training=False), atol=0.0)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_fit_trains_the_new_rows(name):
    model = build(name)
    model.resize_token_embeddings(GROW)
    embedding = model.get_input_embeddings()
    assert any(variable is embedding.embeddings for variable in model.trainable_weights)
    config = model.config
    inputs = with_new_tokens(name, config, GROW)
    before = numpy(embedding.embeddings)
    if name == "BertModel":
        # No task loss: one optimizer step on `trainable_variables` instead.
        optimizer = keras.optimizers.Adam(1e-3)
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True)
            loss = tf.reduce_mean(outputs.last_hidden_state**2) + tf.reduce_mean(
                outputs.pooler_output**2
            )
        variables = model.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
    else:
        # Eager steps: the same train_step, without a ~20 s trace per class
        # (the traced step is tested below).
        model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
        labels = labels_for(name, config)
        if name in LM_CLASSES:  # the new tokens are targets too
            mlm = labels["labels"] if name == "BertForPreTraining" else labels
            mlm[:, 0] = GROW - 1
        bias = model.get_bias()
        bias_before = None if bias is None else numpy(bias["bias"])
        history = model.fit(inputs, labels, epochs=1, batch_size=3, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        if bias_before is not None:
            assert numpy(bias["bias"])[GROW - 1] != bias_before[GROW - 1]
    after = numpy(embedding.embeddings)
    used = np.unique(inputs["input_ids"][inputs["input_ids"] >= OLD])
    assert len(used) > 1
    assert np.abs(after[used] - before[used]).min() > 0, "new rows not trained"


@pytest.mark.slow
def test_compiled_before_resizing_trains_in_a_traced_step():
    model = build("BertForMaskedLM")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.resize_token_embeddings(GROW)
    table = model.get_input_embeddings().embeddings
    before = numpy(table)
    inputs = with_new_tokens("BertForMaskedLM", model.config, GROW)
    labels = labels_for("BertForMaskedLM", model.config)
    labels[:, 0] = GROW - 1  # out of the old range, in the new one
    history = model.fit(inputs, labels, epochs=1, batch_size=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert np.abs(numpy(table)[GROW - 1] - before[GROW - 1]).min() > 0
    # The traced step checks labels against the new size.
    labels[:, 0] = GROW
    with pytest.raises(InputError, match=str(GROW)):
        model.fit(inputs, labels, epochs=1, batch_size=3, verbose=0)


def test_predict_after_resize_is_traced_again():
    model = build("BertForMaskedLM")
    inputs = inputs_for("BertForMaskedLM", model.config)
    assert model.predict(inputs, verbose=0)["logits"].shape[-1] == OLD
    model.resize_token_embeddings(GROW)
    inputs = with_new_tokens("BertForMaskedLM", model.config, GROW)
    predicted = model.predict(inputs, verbose=0)["logits"]
    assert predicted.shape[-1] == GROW
    expected = model(inputs, training=False)["logits"]
    assert max_abs_diff(predicted, expected) <= 1e-5


def test_trained_optimizer_refuses_until_compiled_again():
    name = "BertForSequenceClassification"
    model = build(name)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    inputs, labels = inputs_for(name, model.config), labels_for(name, model.config)
    model.fit(inputs, labels, epochs=1, verbose=0)
    table = model.get_input_embeddings().embeddings
    with pytest.raises(ConfigError, match="optimizer"):
        model.resize_token_embeddings(GROW)
    assert model.get_input_embeddings().embeddings is table  # left as it was
    assert model.config.vocab_size == OLD

    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    model.resize_token_embeddings(GROW)
    inputs = with_new_tokens(name, model.config, GROW)
    history = model.fit(inputs, labels, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("name", ["BertModel", "BertForMaskedLM"])
def test_keras_file_round_trip_after_resize(name, tmp_path):
    model = build(name)
    model.resize_token_embeddings(GROW)
    inputs = with_new_tokens(name, model.config, GROW)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.config.vocab_size == GROW
    assert loaded.get_input_embeddings().input_dim == GROW
    assert_outputs_close(model(inputs), loaded(inputs), atol=0.0)


def test_resize_back_and_forth_keeps_the_common_rows():
    model = build("BertForPreTraining")
    table = numpy(model.get_input_embeddings().embeddings)
    model.resize_token_embeddings(GROW)
    model.resize_token_embeddings(SHRINK)
    np.testing.assert_array_equal(
        numpy(model.get_input_embeddings().embeddings), table[:SHRINK]
    )
    assert model.get_bias()["bias"].shape == (SHRINK,)
    assert model.predictions.compute_output_shape((3, 7, 32)) == (3, 7, SHRINK)


@pytest.mark.parametrize("name", ["BertModel", "BertForMaskedLM"])
def test_none_or_same_size_changes_nothing(name):
    model = build(name)
    table = model.get_input_embeddings().embeddings
    assert model.resize_token_embeddings() is model.get_input_embeddings()
    assert model.resize_token_embeddings(OLD) is model.get_input_embeddings()
    assert model.get_input_embeddings().embeddings is table
    assert model.config.vocab_size == OLD


@pytest.mark.parametrize("size", [0, -3, 10.0, "120", True, np.int64(-1)])
def test_invalid_sizes_are_refused(size):
    model = build("BertForMaskedLM")
    with pytest.raises(InputError, match="new_num_tokens"):
        model.resize_token_embeddings(size)
    assert model.config.vocab_size == OLD


def test_numpy_integer_size_is_taken():
    model = build("BertModel")
    model.resize_token_embeddings(np.int64(GROW))
    assert model.config.vocab_size == GROW
    assert type(model.config.vocab_size) is int


def test_size_without_the_padding_row_is_refused():
    model = build("BertModel", pad_token_id=7)
    with pytest.raises(ConfigError, match="pad_token_id=7"):
        model.resize_token_embeddings(7)
    model.resize_token_embeddings(8)
    assert model.config.vocab_size == 8


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_output_embeddings_and_bias_by_class(name):
    model = build(name)
    if name not in LM_CLASSES:
        assert model.get_output_embeddings() is None
        assert model.get_bias() is None
        with pytest.raises(InputError, match="no LM head"):
            model.set_bias({"bias": np.zeros(OLD)})
        return
    assert isinstance(model.get_output_embeddings(), keras.layers.Embedding)
    assert model.get_output_embeddings() is model.get_input_embeddings()
    bias = model.get_bias()
    assert list(bias) == ["bias"] and bias["bias"] is model.predictions.bias
    assert isinstance(bias["bias"], keras.Variable) and bias["bias"].shape == (OLD,)


@pytest.mark.parametrize("name", LM_CLASSES)
def test_set_bias_moves_the_logits_by_the_change(name):
    model = build(name)
    inputs = inputs_for(name, model.config)
    key = VOCAB_OUTPUT[name]
    before = numpy(model(inputs, training=False)[key])
    delta = np.random.default_rng(0).standard_normal(OLD).astype("float32")
    model.set_bias({"bias": numpy(model.get_bias()["bias"]) + delta})
    after = numpy(model(inputs, training=False)[key])
    assert max_abs_diff(after - before, np.broadcast_to(delta, after.shape)) <= 1e-5


def test_set_bias_refuses_other_shapes_and_keys():
    model = build("BertForMaskedLM")
    with pytest.raises(InputError, match="resize_token_embeddings"):
        model.set_bias({"bias": np.zeros(OLD + 1)})
    with pytest.raises(InputError, match="keys"):
        model.set_bias({"decoder_bias": np.zeros(OLD)})
    with pytest.raises(InputError, match="keys"):
        model.set_bias(np.zeros(OLD))


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np, bert_keras as bk
    keras.utils.set_random_seed(0)
    config = bk.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=20)
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")])
    with strategy.scope():
        model = bk.BertForMaskedLM(config)
    model.resize_token_embeddings(60)
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
    table = model.get_input_embeddings().embeddings
    before = keras.ops.convert_to_numpy(table)
    ids = np.full((4, 6), 55, "int32")
    model.fit({"input_ids": ids}, ids, epochs=1, batch_size=4, verbose=0)
    after = keras.ops.convert_to_numpy(table)
    print("RESULT", json.dumps({
        "distributed": isinstance(table.value, tf.distribute.DistributedValues),
        "trained": bool(np.abs(after[55] - before[55]).min() > 0)}))
    """
)


@pytest.mark.slow
def test_resize_under_mirrored_strategy_trains():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    assert json.loads(line[len("RESULT ") :]) == {"distributed": True, "trained": True}
