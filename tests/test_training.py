"""Training: default compile, fit/evaluate/predict, and losses equal to HF's."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
from conftest import BATCH
from conftest import SEQ
from conftest import TASK_CLASS_NAMES
from conftest import inputs_for
from conftest import labels_for
from conftest import max_abs_diff
from conftest import random_inputs
from conftest import tiny_config
from conftest import to_torch

import bert_keras as bk
from bert_keras.training.data import to_tf_dataset
from bert_keras.training.losses import masked_cross_entropy
from bert_keras.training.optimization import create_optimizer

METRICS = {
    "BertForPreTraining": {"mlm_accuracy", "nsp_accuracy", "mlm_loss", "nsp_loss"},
    "BertForMaskedLM": {"accuracy"},
    "BertForNextSentencePrediction": {"accuracy"},
    "BertForSequenceClassification": {"accuracy"},
    "BertForTokenClassification": {"accuracy"},
    "BertForQuestionAnswering": {"start_accuracy", "end_accuracy"},
    "BertForMultipleChoice": {"accuracy"},
}
# (class name, config overrides, label kind) for the loss parity test.
LOSS_CASES = [(name, {}, "default") for name in TASK_CLASS_NAMES] + [
    ("BertForSequenceClassification", {"num_labels": 1}, "regression"),
    (
        "BertForSequenceClassification",
        {"problem_type": "multi_label_classification"},
        "multi_hot",
    ),
    ("BertForQuestionAnswering", {}, "out_of_range"),
]


def dataset(features, labels, batch_size=BATCH):
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size)


def loss_labels(name, config, kind):
    """(labels for bert_keras, keyword arguments for the torch model)."""
    rng = np.random.default_rng(7)
    if kind == "regression":
        labels = rng.normal(size=BATCH).astype(np.float32)
        return labels, {"labels": torch.from_numpy(labels)}
    if kind == "multi_hot":
        labels = (rng.random((BATCH, config.num_labels)) < 0.5).astype(np.float32)
        return labels, {"labels": torch.from_numpy(labels)}
    labels = labels_for(name, config)
    if kind == "out_of_range":
        labels["start_positions"][0] = SEQ + 40
        labels["end_positions"][1] = 1000
    if isinstance(labels, dict):
        return labels, {key: torch.as_tensor(value) for key, value in labels.items()}
    return labels, {"labels": torch.as_tensor(labels)}


@pytest.mark.slow
@pytest.mark.parametrize("name", TASK_CLASS_NAMES)
def test_compile_and_fit_every_task(name):
    config = tiny_config(name)
    model = getattr(bk, name)(config)
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    data = dataset(
        inputs_for(name, config, batch=2 * BATCH),
        labels_for(name, config, batch=2 * BATCH),
    )
    history = model.fit(data, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert METRICS[name] <= set(history.history)

    results = model.evaluate(data, verbose=0, return_dict=True)
    assert np.isfinite(results["loss"])
    assert METRICS[name] <= set(results)

    predictions = model.predict(data, verbose=0)
    direct = model(inputs_for(name, config, batch=2 * BATCH))
    assert set(predictions) == set(direct)
    for key, value in direct.items():
        assert max_abs_diff(value, predictions[key]) <= 1e-5, key


def test_evaluate_loss_equals_compute_loss():
    name = "BertForTokenClassification"
    config = tiny_config(name)
    model = getattr(bk, name)(config)
    model.compile()
    features, labels = inputs_for(name, config), labels_for(name, config)
    results = model.evaluate(dataset(features, labels), verbose=0, return_dict=True)
    expected = model.compute_loss(y=labels, y_pred=model(features))
    assert abs(results["loss"] - float(expected)) <= 1e-5
    # Padded tail positions are labelled -100 and do not count.
    predictions = np.argmax(model(features)["logits"], axis=-1)
    kept = labels != -100
    assert abs(results["accuracy"] - np.mean(predictions[kept] == labels[kept])) < 1e-6


@pytest.mark.slow
def test_sequence_classification_learns_a_toy_rule():
    """Label = whether token 5 occurs; a tiny model must fit 16 examples."""
    config = tiny_config("BertForSequenceClassification", num_labels=2)
    rng = np.random.default_rng(0)
    input_ids = rng.integers(6, config.vocab_size, size=(16, SEQ))
    labels = np.arange(16) % 2
    positions = rng.integers(1, SEQ, size=16)
    input_ids[labels == 1, positions[labels == 1]] = 5
    input_ids[:, 0] = 2  # a [CLS]-like first token
    features = {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}
    model = bk.BertForSequenceClassification(config)
    model.compile(optimizer=create_optimizer(learning_rate=3e-3))
    history = model.fit(dataset(features, labels, 8), epochs=30, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses
    assert history.history["accuracy"][-1] >= 0.9


def test_predict_traces_once_for_batches_of_every_length():
    """A dataset padded per batch changes shape every batch; one trace serves."""
    config = tiny_config("BertForSequenceClassification")
    model = bk.BertForSequenceClassification(config)
    rng = np.random.default_rng(0)
    ids = [list(rng.integers(5, 99, n)) for n in (3, 9, 5, 12, 7, 4, 11)]
    ds = to_tf_dataset({"input_ids": ids}, 3)  # (3, 9), (3, 12), (1, 11)
    logits = model.predict(ds, verbose=0)["logits"]
    assert model.predict_function.experimental_get_tracing_count() == 1
    model.predict(ds.take(2), verbose=0)
    assert model.predict_function.experimental_get_tracing_count() == 1
    for row, example in zip(logits, ids):
        alone = model({"input_ids": np.array([example])})["logits"][0]
        np.testing.assert_allclose(row, alone, atol=1e-5)


@pytest.mark.slow
def test_fit_under_mixed_bfloat16():
    name = "BertForMaskedLM"
    config = tiny_config(name)
    model = bk.BertForMaskedLM(config, dtype="mixed_bfloat16")
    model.compile()
    data = dataset(inputs_for(name, config), labels_for(name, config))
    history = model.fit(data, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(
        keras.backend.standardize_dtype(v.dtype) == "float32"
        for v in model.trainable_variables
    )


@pytest.mark.parametrize(
    ("name", "overrides", "kind"),
    LOSS_CASES,
    ids=[f"{name}-{kind}" for name, _, kind in LOSS_CASES],
)
def test_task_loss_equals_transformers(name, overrides, kind, hf_checkpoint):
    directory, torch_model = hf_checkpoint(name, **overrides)
    model = getattr(bk, name).from_pretrained(directory)
    model.compile()
    inputs = inputs_for(name, model.config)
    labels, torch_labels = loss_labels(name, model.config, kind)
    ours = model.compute_loss(y=labels, y_pred=model(inputs))
    with torch.no_grad():
        theirs = torch_model(**to_torch(inputs), **torch_labels).loss
    assert np.isfinite(float(ours))
    assert abs(float(ours) - float(theirs)) <= 1e-5, (float(ours), float(theirs))


def test_masked_lm_loss_counts_only_labelled_positions():
    name = "BertForMaskedLM"
    config = tiny_config(name)
    model = bk.BertForMaskedLM(config)
    model.compile()
    inputs = random_inputs(config)
    logits = np.asarray(model(inputs)["logits"], dtype=np.float64)
    labels = np.full((BATCH, SEQ), -100)
    labels[1, 3] = 42
    loss = float(model.compute_loss(y=labels, y_pred=model(inputs)))

    row = logits[1, 3]
    by_hand = np.log(np.exp(row - row.max()).sum()) + row.max() - row[42]
    assert abs(loss - by_hand) <= 1e-5
    torch_loss = torch.nn.CrossEntropyLoss()(
        torch.from_numpy(logits.reshape(-1, config.vocab_size)),
        torch.from_numpy(labels.reshape(-1)),
    )
    assert abs(loss - float(torch_loss)) <= 1e-5


def test_masked_cross_entropy_matches_torch():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 9, 11)).astype(np.float32) * 3
    labels = rng.integers(0, 11, size=(4, 9))
    labels[rng.random((4, 9)) < 0.6] = -100
    ours = float(masked_cross_entropy(labels, logits))
    theirs = torch.nn.CrossEntropyLoss(ignore_index=-100)(
        torch.from_numpy(logits.reshape(-1, 11)), torch.from_numpy(labels.reshape(-1))
    )
    assert abs(ours - float(theirs)) <= 1e-5


def test_token_classification_ignores_minus_100():
    config = tiny_config("BertForTokenClassification")
    model = bk.BertForTokenClassification(config)
    model.compile()
    inputs = random_inputs(config)
    outputs = model(inputs)
    labels = labels_for("BertForTokenClassification", config)
    labels[:, 2:] = -100
    partial = float(model.compute_loss(y=labels, y_pred=outputs))
    kept = {"logits": outputs["logits"][:, :2]}
    expected = float(model.compute_loss(y=labels[:, :2], y_pred=kept))
    assert abs(partial - expected) <= 1e-6
    # Whatever the model predicts at ignored positions does not count.
    noisy = np.array(outputs["logits"])
    noisy[:, 2:] += np.random.default_rng(0).normal(size=noisy[:, 2:].shape) * 10
    noisy_loss = float(model.compute_loss(y=labels, y_pred={"logits": noisy}))
    assert abs(noisy_loss - partial) <= 1e-6


@pytest.mark.slow
def test_question_answering_accepts_tuple_labels():
    config = tiny_config("BertForQuestionAnswering")
    model = bk.BertForQuestionAnswering(config)
    model.compile()
    features = random_inputs(config)
    labels = labels_for("BertForQuestionAnswering", config)
    as_tuple = (labels["start_positions"], labels["end_positions"])
    history = model.fit(dataset(features, as_tuple), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    by_dict = float(model.compute_loss(y=labels, y_pred=model(features)))
    by_tuple = float(model.compute_loss(y=as_tuple, y_pred=model(features)))
    assert by_dict == by_tuple


def test_dict_labels_missing_a_key_is_an_input_error():
    config = tiny_config("BertForPreTraining")
    model = bk.BertForPreTraining(config)
    model.compile()
    inputs = random_inputs(config)
    labels = labels_for("BertForPreTraining", config)
    del labels["next_sentence_label"]
    with pytest.raises(bk.InputError, match="next_sentence_label"):
        model.compute_loss(y=labels, y_pred=model(inputs))


@pytest.mark.slow
@pytest.mark.parametrize("name", TASK_CLASS_NAMES)
def test_sample_weight_is_honoured_or_refused(name):
    """Keras' `sample_weight` must weight the loss, or be refused clearly;
    silently ignoring it trains on examples the user weighted out."""
    config = tiny_config(name)
    model = getattr(bk, name)(config)
    model.compile()
    features, labels = inputs_for(name, config), labels_for(name, config)
    try:
        results = model.evaluate(
            features,
            labels,
            sample_weight=np.zeros(BATCH, np.float32),
            verbose=0,
            return_dict=True,
        )
    except bk.InputError as error:
        assert "sample_weight" in str(error)
        return
    assert results["loss"] == pytest.approx(0.0, abs=1e-7)


def test_default_optimizer_skips_biases_and_layer_norm():
    model = bk.BertForPreTraining(tiny_config("BertForPreTraining"))
    model.compile()
    optimizer = model.optimizer
    decayed, kept = [], []
    for variable in model.trainable_variables:
        (decayed if optimizer._use_weight_decay(variable) else kept).append(
            variable.path
        )
    assert decayed and kept
    for path in kept:
        assert path.rsplit("/", 1)[-1] in ("bias", "gamma", "beta"), path
    for path in decayed:
        assert path.rsplit("/", 1)[-1] in ("kernel", "embeddings"), path
    assert any("word_embeddings" in path for path in decayed)


def test_weight_decay_effect_on_zero_gradients():
    model = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification")
    )
    variables = model.trainable_variables
    for variable in variables:
        variable.assign(keras.ops.ones_like(variable))
    optimizer = create_optimizer(learning_rate=0.1, weight_decay=0.5)
    optimizer.apply([keras.ops.zeros_like(v) for v in variables], variables)
    for variable in variables:
        value = keras.ops.convert_to_numpy(variable)
        name = variable.path.rsplit("/", 1)[-1]
        expected = 1.0 if name in ("bias", "gamma", "beta") else 1.0 - 0.1 * 0.5
        np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=variable.path)


def test_weight_decay_exclusions_survive_keras_file(tmp_path):
    model = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification")
    )
    model.compile()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    for variable in loaded.trainable_variables:
        name = variable.path.rsplit("/", 1)[-1]
        assert loaded.optimizer._use_weight_decay(variable) == (
            name not in ("bias", "gamma", "beta")
        ), variable.path


def test_dropout_only_in_training():
    config = tiny_config(
        "BertModel", hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3
    )
    model = bk.BertModel(config)
    inputs = random_inputs(config)
    first = model(inputs, training=False)["last_hidden_state"]
    assert max_abs_diff(first, model(inputs)["last_hidden_state"]) == 0
    trained = model(inputs, training=True)["last_hidden_state"]
    assert max_abs_diff(first, trained) > 1e-3
