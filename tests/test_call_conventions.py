"""transformers' call conventions: keywords, positions, labels, outputs.

Each class is called as transformers code calls it and compared with the
PyTorch class of the same weights: same fields, same order, same values.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
from conftest import CLASS_NAMES
from conftest import assert_outputs_close
from conftest import inputs_for
from conftest import labels_for
from conftest import make_pair
from conftest import max_abs_diff
from conftest import tiny_config
from conftest import to_numpy
from conftest import torch_outputs

import bert_keras as bk
from bert_keras.errors import InputError
from bert_keras.modeling.call import REFUSED


def _label_kwargs(name, config):
    labels = labels_for(name, config)
    if labels is None:
        return {}
    return dict(labels) if isinstance(labels, dict) else {"labels": labels}


def _torch_labels(labels):
    return {key: torch.as_tensor(np.asarray(value)) for key, value in labels.items()}


@pytest.fixture(scope="module")
def pairs():
    return {name: make_pair(name) for name in CLASS_NAMES}


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_keywords_labels_and_outputs_match_transformers(pairs, name):
    ours, theirs = pairs[name]
    inputs = inputs_for(name, ours.config)
    labels = _label_kwargs(name, ours.config)
    flags = {"output_hidden_states": True, "output_attentions": True}
    expected = torch_outputs(theirs, inputs, **_torch_labels(labels), **flags)
    got = ours(
        inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        token_type_ids=inputs["token_type_ids"],
        **labels,
        **flags,
    )
    assert isinstance(got, bk.ModelOutput)
    # Encoders have no cross-attention (transformers' BertModel gives an
    # empty `cross_attentions` when attentions are asked for).
    assert not expected.get("cross_attentions")
    expected = {k: v for k, v in expected.items() if k != "cross_attentions"}
    assert list(got) == list(expected)  # transformers' field order
    assert_outputs_close(got, expected, atol=1e-5)
    for index, (mine, other) in enumerate(zip(got.to_tuple(), expected.values())):
        assert type(mine) is type(got[index])
        if not isinstance(mine, (list, tuple)):
            assert max_abs_diff(mine, other) <= 1e-5, index
    first = next(iter(expected))
    assert getattr(got, first) is got[first] is got[0]


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_every_way_of_passing_inputs_gives_the_same_outputs(pairs, name):
    model = pairs[name][0]
    inputs = inputs_for(name, model.config)
    reference = model(inputs)
    ids, mask, types = (
        inputs[key] for key in ("input_ids", "attention_mask", "token_type_ids")
    )
    for outputs in (
        model(**inputs),
        model(ids, mask, types),
        model(ids, attention_mask=mask, token_type_ids=types),
        model({"input_ids": ids}, attention_mask=mask, token_type_ids=types),
        model(input_ids=ids, attention_mask=mask, token_type_ids=types, use_cache=True),
    ):
        assert list(outputs) == list(reference)
        assert_outputs_close(outputs, reference, atol=0)
    assert_outputs_close(model([ids, mask, types]), reference, atol=0)
    assert_outputs_close(model((ids, mask)), model(ids, mask), atol=0)
    as_tuple = model(inputs, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(reference)
    # The mask is honoured: without it the padded rows change.
    unmasked = model(ids, token_type_ids=types)
    key = next(iter(reference))
    assert max_abs_diff(unmasked[key], reference[key]) > 1e-3


@pytest.mark.parametrize("name", ["BertModel", "BertForSequenceClassification"])
def test_unknown_and_unsupported_keywords_are_refused(pairs, name):
    model = pairs[name][0]
    inputs = inputs_for(name, model.config)
    with pytest.raises(InputError, match="unexpected argument `foo`.*input_ids"):
        model(inputs, foo=1)
    with pytest.raises(InputError, match="unexpected argument `head_masks`"):
        model(inputs, head_masks=1)
    for keyword in REFUSED:
        with pytest.raises(InputError, match=f"cannot take `{keyword}`"):
            model(inputs, **{keyword: inputs["input_ids"]})
        model(inputs, **{keyword: None})  # transformers' default: fine
    with pytest.raises(InputError, match="`attention_mask` was given twice"):
        model(inputs, attention_mask=inputs["attention_mask"])
    limit = len(model.call_arguments)
    with pytest.raises(InputError, match=f"at most {limit} positional"):
        model(inputs["input_ids"], *[None] * limit)
    with pytest.raises(InputError, match="both as a list"):
        model([inputs["input_ids"]], inputs["attention_mask"])


def test_a_base_model_refuses_labels(pairs):
    model = pairs["BertModel"][0]
    with pytest.raises(InputError, match="no training loss"):
        model(inputs_for("BertModel"), labels=np.zeros(2, "int32"))


def test_output_flags_override_the_config_both_ways():
    config = tiny_config(output_hidden_states=True)
    model = bk.BertModel(config)
    inputs = inputs_for("BertModel", config)
    assert "hidden_states" in model(inputs)
    assert "hidden_states" not in model(inputs, output_hidden_states=False)
    plain = bk.BertModel(tiny_config())
    for layer_from, layer_to in zip(model.weights, plain.weights):
        layer_to.assign(layer_from)
    asked = plain(inputs, output_hidden_states=True)
    assert_outputs_close(asked, model(inputs), atol=1e-6)
    # In training the second pass would draw other dropout masks: refused.
    with pytest.raises(InputError, match="training call.*config"):
        plain(inputs, output_attentions=True, training=True)


def test_labels_inside_the_features_train_like_labels_beside_them():
    """transformers v4's internal loss: compile(optimizer), fit(dicts)."""
    config = tiny_config("BertForSequenceClassification")
    inputs = inputs_for("BertForSequenceClassification", config, batch=8)
    labels = labels_for("BertForSequenceClassification", config, batch=8)
    losses = []
    for inside in (False, True):
        keras.utils.set_random_seed(3)
        model = bk.BertForSequenceClassification(config)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        if inside:
            data = tf.data.Dataset.from_tensor_slices({**inputs, "labels": labels})
        else:
            data = tf.data.Dataset.from_tensor_slices((inputs, labels))
        history = model.fit(data.batch(4), epochs=2, verbose=0)
        losses.append(history.history["loss"])
        predictions = model.predict(data.batch(4), verbose=0)
        assert sorted(predictions) == ["logits"]
    assert np.allclose(losses[0], losses[1], atol=1e-6), losses


def test_next_sentence_label_is_the_v4_name_of_labels(pairs):
    model, theirs = pairs["BertForNextSentencePrediction"]
    inputs = inputs_for("BertForNextSentencePrediction", model.config)
    labels = labels_for("BertForNextSentencePrediction", model.config)
    loss = model(inputs, next_sentence_label=labels).loss
    expected = torch_outputs(theirs, inputs, **_torch_labels({"labels": labels})).loss
    assert max_abs_diff(loss, expected) <= 1e-5


@pytest.mark.parametrize(
    "monitor, better",
    [("val_accuracy", "greater"), ("val_loss", "less")],
)
def test_keras_callbacks_know_which_way_task_metrics_improve(monitor, better):
    config = tiny_config("BertForSequenceClassification")
    inputs = inputs_for("BertForSequenceClassification", config, batch=4)
    labels = labels_for("BertForSequenceClassification", config, batch=4)
    model = bk.BertForSequenceClassification(config)
    model.compile()
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=5)
    keep = keras.callbacks.ModelCheckpoint(
        "unused.keras", monitor=monitor, save_best_only=True
    )
    for callback in (stop, keep):
        callback.set_model(model)
        callback._set_monitor_op()
        assert callback.monitor_op.__name__ == better, (callback, monitor)
    history = model.fit(
        inputs, labels, validation_data=(inputs, labels), epochs=1, verbose=0,
        callbacks=[stop],
    )  # fmt: skip
    assert monitor in history.history


def test_model_outputs_survive_keras_structures(pairs):
    model = pairs["BertForQuestionAnswering"][0]
    outputs = model(inputs_for("BertForQuestionAnswering"))
    mapped = keras.tree.map_structure(lambda x: x, outputs)
    assert isinstance(mapped, bk.ModelOutput)
    assert list(mapped) == ["start_logits", "end_logits"]
    flat = tf.nest.flatten(outputs)
    assert len(flat) == 2
    with pytest.raises(AttributeError, match="no `logits`.*start_logits"):
        _ = outputs.logits
    assert to_numpy(outputs[-1]).shape == to_numpy(outputs.end_logits).shape


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_inputs_embeds_and_position_ids_match_transformers(pairs, name):
    ours, theirs = pairs[name]
    inputs = inputs_for(name, ours.config)
    ids = inputs["input_ids"]
    rng = np.random.default_rng(5)
    positions = rng.integers(0, ours.config.max_position_embeddings, ids.shape)
    words = ours.get_input_embeddings()(ids).numpy()
    embeds = words + rng.normal(0, 0.02, words.shape).astype("float32")
    given = {k: v for k, v in inputs.items() if k != "input_ids"}
    expected = torch_outputs(
        theirs,
        given,
        inputs_embeds=torch.as_tensor(embeds),
        position_ids=torch.as_tensor(positions),
    )
    got = ours(inputs_embeds=embeds, position_ids=positions, **given)
    assert list(got) == list(expected)
    assert_outputs_close(got, expected, atol=1e-5)
    # Positional, as transformers' forward orders them.
    again = ours(ids, given["attention_mask"], given["token_type_ids"], positions)
    assert max_abs_diff(again[0], ours(inputs, position_ids=positions)[0]) == 0
    # The embeddings layer is back to its defaults after the call.
    assert_outputs_close(ours(inputs), torch_outputs(theirs, inputs), atol=1e-5)


def test_inputs_embeds_train_and_refuse_bad_shapes(pairs):
    model = pairs["BertForSequenceClassification"][0]
    inputs = inputs_for("BertForSequenceClassification", model.config)
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    with pytest.raises(InputError, match="both given"):
        model(inputs, inputs_embeds=embeds)
    with pytest.raises(InputError, match=r"\(batch, seq, hidden_size\)"):
        model(inputs_embeds=embeds[..., :5])
    with pytest.raises(InputError, match=r"position_ids.*\[0, 64\)"):
        model(inputs, position_ids=np.full(inputs["input_ids"].shape, 64))
    embeds = tf.Variable(embeds)
    with tf.GradientTape() as tape:
        loss = model(
            inputs_embeds=embeds,
            attention_mask=inputs["attention_mask"],
            labels=np.zeros(embeds.shape[0], "int32"),
            training=True,
        ).loss
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, embeds)))) > 0


def test_keras_losses_and_metrics_by_output_name_train_a_base_model():
    config = tiny_config()
    keras.utils.set_random_seed(0)
    model = bk.BertModel(config)
    inputs = inputs_for("BertModel", config)
    batch, seq = inputs["input_ids"].shape
    targets = {
        "last_hidden_state": np.zeros((batch, seq, config.hidden_size), "float32"),
        "pooler_output": np.full((batch, config.hidden_size), 0.5, "float32"),
    }
    model.compile(
        optimizer="adam",
        loss={"last_hidden_state": "mse", "pooler_output": "mse"},
        metrics={"pooler_output": ["mae"]},
    )
    history = model.fit(inputs, targets, epochs=1, verbose=0).history
    outputs = model(inputs)
    pooled = np.asarray(outputs.pooler_output)
    assert set(history) >= {"loss", "pooler_output_loss", "pooler_output_mae"}
    after = model.evaluate(inputs, targets, verbose=0, return_dict=True)
    assert after["pooler_output_mae"] == pytest.approx(
        np.abs(pooled - 0.5).mean(), abs=1e-5
    )


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_call_signature_and_positions_are_transformers_v4s(pairs, name):
    import inspect

    model = pairs[name][0]
    names = list(inspect.signature(model.call).parameters)
    assert names[:6] == [
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "position_ids",
        "head_mask",
        "inputs_embeds",
    ]
    assert names[-1] == "training" and names == list(model.call_arguments)
    labels = {
        "BertModel": [],
        "BertForNextSentencePrediction": ["next_sentence_label"],
        "BertForPreTraining": ["labels", "next_sentence_label"],
        "BertForQuestionAnswering": ["start_positions", "end_positions"],
    }.get(name, ["labels"])
    assert names[names.index("return_dict") + 1 : -1] == labels
    inputs = inputs_for(name, model.config)
    # Every argument by position, as v4 TF's list inputs took them.
    given = dict(inputs, **_label_kwargs(name, model.config), return_dict=True)
    as_list = [given.get(argument) for argument in names[:-1]]
    reference = model(**given)
    assert_outputs_close(model(as_list), reference, atol=0)
    assert_outputs_close(model(*as_list), reference, atol=0)
