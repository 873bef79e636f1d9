"""Bad inputs and labels: a clear error before anything changes (issue 7).

Cases 8 (all-zero mask rows), 9 (left padding) and 10 (labels out of range);
the id, length and mask-shape checks of cases 7 and 8 are in test_errors.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_inputs
from conftest import tiny_config

import bert_keras as bk


def trainable_values(model):
    return [np.array(w.numpy()) for w in model.trainable_weights]


def unchanged(before, model):
    return all(
        np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights)
    )


# --- Case 8: an all-zero mask row ---------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("name", ["BertModel", "BertForSequenceClassification"])
def test_all_zero_mask_row_gives_finite_outputs(name, dtype):
    model = getattr(bk, name)(tiny_config(name), dtype=dtype)
    inputs = random_inputs(model.config)
    inputs["attention_mask"][1] = 0
    outputs = model(inputs)
    for key, value in outputs.items():
        value = keras.ops.convert_to_numpy(keras.ops.cast(value, "float32"))
        assert np.isfinite(value).all(), key
    # The other rows do not notice.
    alone = model({k: v[:1] for k, v in inputs.items()})
    key = "logits" if "logits" in outputs else "last_hidden_state"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(outputs[key][:1], "float32")),
        keras.ops.convert_to_numpy(keras.ops.cast(alone[key], "float32")),
        atol=1e-5 if dtype == "float32" else 5e-2,
    )


# --- Case 9: left padding is refused --------------------------------------------


def left_padded(config):
    inputs = random_inputs(config)
    # Row 2 has 3 real tokens; move them to the end of the row.
    for field in inputs:
        inputs[field][2] = np.roll(inputs[field][2], -3 + inputs[field].shape[1])
    assert inputs["attention_mask"][2, 0] == 0 and inputs["attention_mask"][2, -1] == 1
    return inputs


def test_left_padding_is_refused_eagerly():
    model = bk.BertModel(tiny_config())
    with pytest.raises(bk.InputError, match=r"row \[2\].*left padding.*padding_side"):
        model(left_padded(model.config))


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True])
def test_left_padding_is_refused_in_predict_and_fit(jit_compile):
    model = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification")
    )
    model.compile(jit_compile=jit_compile)
    inputs = left_padded(model.config)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, np.zeros(3, "int32"))).batch(
        3
    )
    with pytest.raises(bk.InputError, match="left padding"):
        model.predict(inputs, verbose=0)
    before = trainable_values(model)
    with pytest.raises(bk.InputError, match="left padding.* row 2"):
        model.fit(dataset, verbose=0)
    assert unchanged(before, model)


def test_right_padding_and_empty_rows_are_not_left_padding():
    model = bk.BertModel(tiny_config())
    inputs = random_inputs(model.config)
    inputs["attention_mask"][2] = 0  # an all-padding row: nothing is shifted
    model(inputs)
    model.predict(inputs, verbose=0)


# --- Case 10: labels out of range -------------------------------------------------

# (model, bad label value, the names the message must contain)
BAD_LABELS = [
    ("BertForSequenceClassification", 3, ["[0, 3)", "num_labels", "3"]),
    ("BertForSequenceClassification", -100, ["[0, 3)", "-100 marks ignored"]),
    ("BertForSequenceClassification", -1, ["[0, 3)", "-1"]),
    ("BertForTokenClassification", 7, ["[0, 3)", "or -100 (ignored)", "7"]),
    ("BertForTokenClassification", -5, ["[0, 3)", "-5"]),
    ("BertForMaskedLM", 99, ["[0, 99)", "vocab_size", "99"]),
    ("BertForNextSentencePrediction", 2, ["[0, 2)", "2"]),
    ("BertForMultipleChoice", 5, ["number of choices", "5"]),
]


def labelled_data(name, config, bad=None):
    """Inputs and labels of the model's kind; the first label set to `bad`."""
    rng = np.random.default_rng(0)
    if name == "BertForMultipleChoice":
        flat = random_inputs(config, batch=8)
        inputs = {k: np.stack([v[:4], v[4:]], axis=1) for k, v in flat.items()}
        labels = rng.integers(0, 2, size=4)
    else:
        inputs = random_inputs(config, batch=4)
        if name in ("BertForTokenClassification", "BertForMaskedLM"):
            high = config.num_labels if "Token" in name else config.vocab_size
            labels = rng.integers(0, high, size=inputs["input_ids"].shape)
            labels[inputs["attention_mask"] == 0] = -100
        else:
            high = 2 if "NextSentence" in name else config.num_labels
            labels = rng.integers(0, high, size=4)
    if bad is not None:
        labels.flat[0] = bad
    return inputs, labels


def check_message(error, words):
    for word in words:
        assert word in str(error.value), f"{word!r} not in {error.value}"


@pytest.mark.parametrize(("name", "bad", "words"), BAD_LABELS)
def test_bad_labels_in_arrays_stop_fit_before_the_first_step(name, bad, words):
    model = getattr(bk, name)(tiny_config(name))
    model.compile()
    inputs, labels = labelled_data(name, model.config, bad)
    before = trainable_values(model)
    with pytest.raises(bk.InputError) as error:
        model.fit(inputs, labels, batch_size=2, verbose=0)
    check_message(error, words)
    assert unchanged(before, model)
    assert int(model.optimizer.iterations.numpy()) == 0
    with pytest.raises(bk.InputError):
        model.evaluate(inputs, labels, verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "bad", "words", "jit_compile"),
    [BAD_LABELS[0] + (False,), BAD_LABELS[0] + (True,), BAD_LABELS[3] + (False,),
     BAD_LABELS[-1] + (False,)],
)  # fmt: skip
def test_bad_labels_in_a_dataset_stop_before_their_step(name, bad, words, jit_compile):
    model = getattr(bk, name)(tiny_config(name))
    model.compile(jit_compile=jit_compile)
    inputs, labels = labelled_data(name, model.config, bad)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(2)
    before = trainable_values(model)
    with pytest.raises(bk.InputError) as error:
        model.fit(dataset, verbose=0)
    check_message(error, words[:1])
    # Not one step: no weight moved, not even by AdamW's decoupled decay.
    assert unchanged(before, model)
    assert int(model.optimizer.iterations.numpy()) == 0
    with pytest.raises(bk.InputError):
        model.evaluate(dataset, verbose=0)


def test_bad_pretraining_labels_are_named():
    config = tiny_config("BertForPreTraining")
    model = bk.BertForPreTraining(config)
    model.compile()
    inputs = random_inputs(config, batch=2)
    mlm = np.full(inputs["input_ids"].shape, -100)
    mlm[:, 1] = 5
    with pytest.raises(bk.InputError, match="next_sentence_label.*\\[0, 2\\)"):
        model.fit(inputs, {"labels": mlm, "next_sentence_label": np.array([0, 2])},
                  verbose=0)  # fmt: skip
    mlm[0, 2] = 99
    with pytest.raises(bk.InputError, match="`labels`.*vocab_size"):
        model.fit(inputs, {"labels": mlm, "next_sentence_label": np.array([0, 1])},
                  verbose=0)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", ["BertForTokenClassification", "BertForMaskedLM"])
def test_ignored_labels_train_with_a_finite_loss(name):
    model = getattr(bk, name)(tiny_config(name))
    model.compile()
    inputs, labels = labelled_data(name, model.config)
    labels[:, ::2] = -100
    history = model.fit(inputs, labels, batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # A batch whose labels are all ignored has a loss of 0, not NaN.
    result = model.evaluate(
        inputs, np.full_like(labels, -100), verbose=0, return_dict=True
    )
    assert result["loss"] == 0.0


@pytest.mark.slow
def test_regression_and_question_answering_take_any_label_value():
    # Regression labels are real numbers; QA positions outside the sequence
    # are clamped and ignored, as in transformers.
    config = tiny_config("BertForSequenceClassification", num_labels=1)
    model = bk.BertForSequenceClassification(config)
    model.compile()
    inputs = random_inputs(config, batch=2)
    model.fit(inputs, np.array([-100.0, 7.5]), verbose=0)
    config = tiny_config("BertForQuestionAnswering")
    model = bk.BertForQuestionAnswering(config)
    model.compile()
    history = model.fit(
        inputs,
        {"start_positions": np.array([1, 500]), "end_positions": np.array([2, 500])},
        verbose=0,
    )
    assert np.isfinite(history.history["loss"]).all()


# --- Issue 21, item 15: malformed model inputs ----------------------------------


def test_sequences_of_length_zero_are_an_input_error():
    model = bk.BertModel(tiny_config())
    empty = {"input_ids": np.zeros((2, 0), "int32")}
    with pytest.raises(bk.InputError, match="no tokens.*shape \\(2, 0\\)"):
        model(empty)
    with pytest.raises(bk.InputError, match="no tokens"):
        model.predict(empty, verbose=0)


def test_ragged_lists_say_to_pad():
    model = bk.BertModel(tiny_config())
    with pytest.raises(bk.InputError, match="different lengths.*padding=True"):
        model({"input_ids": [[5, 6, 7], [5, 6]]})
    with pytest.raises(bk.InputError, match="different lengths.*padding=True"):
        model({"input_ids": [[5, 6], [5, 6]], "attention_mask": [[1, 1], [1]]})


def test_ragged_tensors_say_to_pad():
    model = bk.BertModel(tiny_config())
    ragged = tf.ragged.constant([[5, 6, 7], [5, 6]])
    with pytest.raises(bk.InputError, match="RaggedTensor.*to_tensor\\(\\)"):
        model({"input_ids": ragged})


@pytest.mark.parametrize("name", ["input_ids", "token_type_ids"])
def test_boolean_ids_are_refused(name):
    model = bk.BertModel(tiny_config())
    inputs = {"input_ids": np.ones((2, 3), "int32")}
    inputs[name] = np.ones((2, 3), bool)
    with pytest.raises(bk.InputError, match=f"`{name}` must hold integers.*bool"):
        model(inputs)


def test_boolean_attention_masks_still_work():
    model = bk.BertModel(tiny_config())
    ids = np.array([[5, 6, 7], [5, 6, 0]], "int32")
    as_bool = model({"input_ids": ids, "attention_mask": ids > 0})
    as_int = model({"input_ids": ids, "attention_mask": (ids > 0).astype("int32")})
    np.testing.assert_array_equal(
        as_bool["last_hidden_state"], as_int["last_hidden_state"]
    )
