"""Pins every private Keras member bert_keras uses (bert_keras/keras_private.py).

When a Keras upgrade renames or reshapes one of them, the test naming it
fails here, instead of a training run failing somewhere else.
"""

import inspect

import keras
import numpy as np
import pytest
from conftest import tiny_config

import bert_keras as bk
from bert_keras import keras_private
from bert_keras.training.optimization import create_optimizer


def _owner(path):
    obj = keras
    for part in path.split(".")[1:-1]:
        obj = getattr(obj, part)
    return obj


def test_written_for_this_keras_version():
    major_minor = ".".join(keras.__version__.split(".")[:2])
    assert major_minor == keras_private.KERAS_VERSION, (
        "Keras changed: check each member in keras_private.PINNED_MEMBERS "
        "(these tests), then update KERAS_VERSION."
    )


@pytest.mark.parametrize(
    "path",
    [p for p, args in keras_private.PINNED_MEMBERS.items() if args is not None],
)
def test_private_method_keeps_its_signature(path):
    method = getattr(_owner(path), path.rsplit(".", 1)[1])
    parameters = tuple(inspect.signature(method).parameters)
    assert parameters == keras_private.PINNED_MEMBERS[path]


def _trained_model():
    model = bk.BertForSequenceClassification(tiny_config())
    model.compile(optimizer=create_optimizer())
    x = {"input_ids": np.ones((4, 5), "int32")}
    model.fit(x, np.zeros(4, "int32"), epochs=1, verbose=0)
    return model


def test_private_attributes_exist_where_read():
    model = _trained_model()
    assert keras_private.distribute_strategy(model) is None
    assert model in keras_private.all_layers(model)
    assert any(layer.name == "classifier" for layer in keras_private.all_layers(model))
    keras_private.set_initial_epoch(model, 2)
    assert model._initial_epoch == 2
    variable = model.trainable_variables[0]
    momentum, velocity = keras_private.adam_slots(model.optimizer, variable)
    assert momentum.shape == variable.shape == velocity.shape
    assert keras_private.uses_weight_decay(model.optimizer, variable) in (True, False)


def test_compiled_loss_and_metrics_are_seen():
    model = bk.BertForSequenceClassification(tiny_config())
    model.compile(optimizer="adam")  # the task's own loss and metrics
    assert not keras_private.has_compiled_keras_loss_or_metrics(model)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    assert keras_private.has_compiled_keras_loss_or_metrics(model)
    assert model._compile_loss is not None and model._compile_metrics is not None


def test_initial_epoch_is_what_fit_starts_from():
    model = _trained_model()
    keras_private.set_initial_epoch(model, 1)
    x = {"input_ids": np.ones((4, 5), "int32")}
    history = model.fit(x, np.zeros(4, "int32"), epochs=2, verbose=0)
    assert history.epoch == [1]


def test_hooks_are_what_keras_calls():
    # Keras calls these private hooks by name; our overrides must shadow them.
    assert keras_private.ModelHooks._maybe_symbolic_build.__name__ == (
        "_maybe_symbolic_build"
    )
    for name in ("_clip_gradients", "_apply_weight_decay"):
        assert hasattr(keras.optimizers.Optimizer, name)
        assert name in vars(keras_private.OptimizerHooks)
    assert hasattr(keras.Model, "_maybe_symbolic_build")


def test_replace_weight_swaps_a_built_layers_variable_in_place():
    # resize_token_embeddings: Keras' tracker stores, locked after build.
    norm = keras.layers.LayerNormalization()
    norm.build((None, 3))
    assert norm._tracker.locked
    gamma, beta = norm.gamma, norm.beta
    assert norm._tracker.config["trainable_variables"][1] is norm._trainable_variables
    assert id(beta) in norm._tracker.stored_ids["trainable_variables"]
    new_beta = keras.Variable(np.full(3, 2.0, "float32"), name="beta")
    # Same shape as gamma: a comparison with `==` (Keras' own
    # replace_tracked_value) would be elementwise and fail here.
    keras_private.replace_weight(norm, "beta", new_beta)
    assert norm.beta is new_beta
    assert [id(w) for w in norm.weights] == [id(gamma), id(new_beta)]
    outputs = keras.ops.convert_to_numpy(norm(np.zeros((1, 3), "float32")))
    np.testing.assert_allclose(outputs, 2.0)


def test_replace_embedding_table_changes_rows_and_config():
    embedding = keras.layers.Embedding(5, 3)
    embedding.build()
    assert embedding._embeddings is embedding.embeddings
    table = keras.Variable(np.ones((7, 3), "float32"), name="embeddings")
    keras_private.replace_embedding_table(embedding, table)
    assert embedding.embeddings is table and embedding.weights[0] is table
    assert len(embedding.weights) == 1
    assert embedding.get_config()["input_dim"] == 7
    assert tuple(embedding(np.array([6])).shape) == (1, 3)


def test_optimizer_members_read_under_accumulation_exist():
    import keras

    optimizer = keras.optimizers.AdamW(gradient_accumulation_steps=2)
    variable = keras.Variable(np.zeros((2, 3), "float32"))
    optimizer.build([variable])
    assert len(optimizer._accumulated_gradients) == 1
    assert optimizer._iterations.path.endswith("iteration")
