"""BertForPreTraining with the MLM head applied only at masked positions."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import perturb_keras
from conftest import tiny_config

import bert_keras as bk
from bert_keras.training.losses import masked_cross_entropy

MAX_PREDICTIONS = 4


def _batch(rs, config, batch=3, seq=9):
    ids = rs.randint(0, config.vocab_size, (batch, seq))
    positions = np.stack(
        [rs.choice(seq, MAX_PREDICTIONS, replace=False) for _ in range(batch)]
    )
    used = rs.rand(batch, MAX_PREDICTIONS) < 0.75
    used[:, 0] = True
    gathered_labels = np.where(
        used, rs.randint(0, config.vocab_size, (batch, MAX_PREDICTIONS)), -100
    )
    full_labels = np.full((batch, seq), -100)
    for row in range(batch):
        for slot in range(MAX_PREDICTIONS):
            if used[row, slot]:
                full_labels[row, positions[row, slot]] = gathered_labels[row, slot]
    nsp = rs.randint(0, 2, batch)
    return ids, positions, gathered_labels, full_labels, nsp


def test_gathered_loss_equals_full_vocabulary_loss():
    config = tiny_config("BertForPreTraining")
    full = bk.BertForPreTraining(config)
    gathered = bk.BertForPreTraining(config, max_predictions_per_seq=MAX_PREDICTIONS)
    gathered.set_weights(full.get_weights())
    rs = np.random.RandomState(0)
    ids, positions, gathered_labels, full_labels, nsp = _batch(rs, config)
    full_out = full({"input_ids": ids})
    gathered_out = gathered({"input_ids": ids, "masked_lm_positions": positions})
    assert gathered_out["prediction_logits"].shape == (3, MAX_PREDICTIONS, 99)
    np.testing.assert_allclose(
        gathered_out["prediction_logits"].numpy(),
        np.take_along_axis(
            full_out["prediction_logits"].numpy(), positions[:, :, None], axis=1
        ),
        atol=1e-5,
    )
    full_loss = full.task().loss(
        {"labels": full_labels, "next_sentence_label": nsp}, full_out
    )
    gathered_loss = gathered.task().loss(
        {"labels": gathered_labels, "next_sentence_label": nsp}, gathered_out
    )
    assert float(gathered_loss) == pytest.approx(float(full_loss), abs=1e-5)


def test_gathered_model_has_the_full_models_gradients():
    """The last layer runs only at [CLS] and the masked positions: the same
    loss gradient for every weight as the full model's."""
    config = tiny_config("BertForPreTraining", num_hidden_layers=3)
    full = perturb_keras(bk.BertForPreTraining(config))
    gathered = bk.BertForPreTraining(config, max_predictions_per_seq=MAX_PREDICTIONS)
    gathered.set_weights(full.get_weights())
    rs = np.random.RandomState(1)
    ids, positions, gathered_labels, full_labels, nsp = _batch(rs, config)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    features = {"input_ids": ids, "attention_mask": mask}

    def gradients(model, extra, labels):
        with tf.GradientTape() as tape:
            outputs = model({**features, **extra})
            loss = model.task().loss(
                {"labels": labels, "next_sentence_label": nsp}, outputs
            )
        return tape.gradient(loss, model.trainable_variables)

    ours = gradients(gathered, {"masked_lm_positions": positions}, gathered_labels)
    theirs = gradients(full, {}, full_labels)
    for variable, got, want in zip(gathered.trainable_variables, ours, theirs):
        got, want = tf.convert_to_tensor(got), tf.convert_to_tensor(want)
        scale = float(tf.reduce_max(tf.abs(want)))
        np.testing.assert_allclose(
            got.numpy(), want.numpy(), atol=1e-5 * scale + 1e-9, err_msg=variable.path
        )


@pytest.mark.slow
def test_gathered_model_trains_saves_and_round_trips(tmp_path):
    config = tiny_config("BertForPreTraining")
    model = bk.BertForPreTraining(config, max_predictions_per_seq=MAX_PREDICTIONS)
    model.compile()
    rs = np.random.RandomState(1)
    ids, positions, labels, _, nsp = _batch(rs, config)
    features = {"input_ids": ids, "masked_lm_positions": positions}
    history = model.fit(
        features, {"labels": labels, "next_sentence_label": nsp}, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    assert {"mlm_accuracy", "nsp_accuracy"} <= set(history.history)
    # The two head losses it reports are the two terms of the loss.
    scores = model.evaluate(
        features, {"labels": labels, "next_sentence_label": nsp}, return_dict=True,
        verbose=0,
    )  # fmt: skip
    assert scores["mlm_loss"] + scores["nsp_loss"] == pytest.approx(
        scores["loss"], abs=1e-5
    )
    out = model(features)
    expected_mlm = masked_cross_entropy(labels, out["prediction_logits"])
    assert scores["mlm_loss"] == pytest.approx(float(expected_mlm), abs=1e-5)

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.max_predictions_per_seq == MAX_PREDICTIONS
    np.testing.assert_allclose(
        loaded(features)["prediction_logits"].numpy(),
        model(features)["prediction_logits"].numpy(),
        atol=0,
    )
    # The HF checkpoint is the plain BertForPreTraining one.
    model.save_pretrained(tmp_path / "hf")
    plain = bk.BertForPreTraining.from_pretrained(tmp_path / "hf")
    np.testing.assert_allclose(
        np.take_along_axis(
            plain({"input_ids": ids})["prediction_logits"].numpy(),
            positions[:, :, None],
            axis=1,
        ),
        model(features)["prediction_logits"].numpy(),
        atol=1e-5,
    )


def test_missing_positions_is_a_clear_error():
    model = bk.BertForPreTraining(
        tiny_config("BertForPreTraining"), max_predictions_per_seq=MAX_PREDICTIONS
    )
    with pytest.raises(bk.InputError, match="masked_lm_positions"):
        model({"input_ids": np.zeros((2, 5), "int32")})


def test_positions_outside_the_sequence_are_refused():
    model = bk.BertForPreTraining(
        tiny_config("BertForPreTraining"), max_predictions_per_seq=2
    )
    features = {
        "input_ids": np.zeros((2, 5), "int32"),
        "masked_lm_positions": np.array([[1, 5], [0, 1]]),
    }
    with pytest.raises(bk.InputError, match="masked_lm_positions.*5"):
        model(features)
    with pytest.raises(bk.InputError, match="masked_lm_positions"):
        model.predict(features, verbose=0)


def test_masked_lm_gathers_the_same_logits_and_gradients():
    """BertForMaskedLM (no pooler) computes only the masked rows: the same
    logits, loss gradients and checkpoint as the full model."""
    config = tiny_config("BertForMaskedLM", num_hidden_layers=2)
    full = perturb_keras(bk.BertForMaskedLM(config))
    gathered = bk.BertForMaskedLM(config, max_predictions_per_seq=MAX_PREDICTIONS)
    gathered.set_weights(full.get_weights())
    rs = np.random.RandomState(2)
    ids, positions, gathered_labels, full_labels, _ = _batch(rs, config)
    mask = np.ones_like(ids)
    mask[2, 7:] = 0

    def run(model, extra, labels):
        with tf.GradientTape() as tape:
            outputs = model({"input_ids": ids, "attention_mask": mask, **extra})
            loss = model.task().loss({"labels": labels}, outputs)
        return outputs["logits"].numpy(), tape.gradient(loss, model.trainable_variables)

    got_logits, ours = run(
        gathered, {"masked_lm_positions": positions}, gathered_labels
    )
    want_logits, theirs = run(full, {}, full_labels)
    assert got_logits.shape == (3, MAX_PREDICTIONS, config.vocab_size)
    np.testing.assert_allclose(
        got_logits,
        np.take_along_axis(want_logits, positions[:, :, None], axis=1),
        atol=1e-5,
    )
    for variable, got, want in zip(gathered.trainable_variables, ours, theirs):
        got, want = tf.convert_to_tensor(got), tf.convert_to_tensor(want)
        scale = float(tf.reduce_max(tf.abs(want)))
        np.testing.assert_allclose(
            got.numpy(), want.numpy(), atol=1e-5 * scale + 1e-9, err_msg=variable.path
        )
    assert (
        keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(gathered)
        ).max_predictions_per_seq
        == MAX_PREDICTIONS
    )
    with pytest.raises(bk.InputError, match="masked_lm_positions"):
        gathered({"input_ids": ids})
