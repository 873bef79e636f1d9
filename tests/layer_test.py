"""`run_layer_test`: the checks every layer of the library passes.

In the manner of keras-hub's `TestCase.run_layer_test`: one call builds a
layer from its constructor arguments and checks its output shapes, its
`get_config()` round trip, mixed precision, one training step and a `.keras`
round trip inside a functional model. Import it as conftest's helpers are:
`from layer_test import run_layer_test`.
"""

import json

import keras
import numpy as np
import tensorflow as tf
from keras import tree


def run_layer_test(
    cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    *,
    tmp_path=None,
    expected_num_trainable_weights=None,
    not_in_config=(),
    run_training_check=True,
    run_mixed_precision_check=True,
    run_saving_check=True,
):
    """Runs the standard checks of a layer and returns its eager outputs.

    Args:
        cls: the layer class.
        init_kwargs: dict, the constructor's arguments.
        input_data: a numpy array (the call's one input) or a dict of them
            (the call's keyword arguments, e.g. `input_ids`, `attention_mask`).
        expected_output_shape: the outputs' shapes as a structure like the
            outputs (a tuple of ints for one tensor, a dict or list of them
            for several).
        tmp_path: directory for the `.keras` file; required by the saving check.
        expected_num_trainable_weights: int, checked when given.
        not_in_config: names in `init_kwargs` that `get_config()` leaves out
            on purpose (a shared layer, such as the tied word embeddings);
            `from_config` gets them back from `init_kwargs`.
        run_training_check: bool, run one GradientTape step and SGD update.
        run_mixed_precision_check: bool, run under `mixed_bfloat16`.
        run_saving_check: bool, save and reload inside a functional model.

    Returns:
        The outputs of the layer called eagerly with `training=False`.
    """
    layer = cls(**init_kwargs)
    outputs = call(layer, input_data)
    assert_shapes(outputs, expected_output_shape)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, [
            variable.path for variable in layer.trainable_weights
        ]
    check_config_round_trip(layer, init_kwargs, input_data, outputs, not_in_config)
    if run_mixed_precision_check:
        check_mixed_precision(cls, init_kwargs, input_data, expected_output_shape)
    if run_training_check:
        check_training_step(cls(**init_kwargs), input_data)
    if run_saving_check:
        if tmp_path is None:
            raise ValueError("The saving check needs `tmp_path`. Received: None")
        check_keras_file_round_trip(layer, input_data, outputs, tmp_path)
    return outputs


def call(layer, input_data, training=False):
    if isinstance(input_data, dict):
        return layer(**input_data, training=training)
    return layer(input_data, training=training)


def shapes(structure):
    return tree.map_structure(lambda x: tuple(x.shape), structure)


def flat_shapes(structure):
    """The shapes of a structure of shapes, in `tree.flatten` order."""
    if isinstance(structure, dict):
        return [
            shape for key in sorted(structure) for shape in flat_shapes(structure[key])
        ]
    if isinstance(structure, (list, tuple)) and not all(
        size is None or isinstance(size, int) for size in structure
    ):
        return [shape for item in structure for shape in flat_shapes(item)]
    return [tuple(structure)]


def assert_shapes(outputs, expected, symbolic=False):
    """Output shapes equal `expected`; symbolic shapes may say None for a size."""
    actual = [tuple(x.shape) for x in tree.flatten(outputs)]
    wanted = flat_shapes(expected)
    message = f"output shapes {shapes(outputs)}, expected {expected}"
    assert len(actual) == len(wanted), message
    for got, want in zip(actual, wanted):
        if symbolic:
            got = tuple(w if g is None else g for g, w in zip(got, want))
        assert got == want, message


def assert_same_outputs(actual, expected):
    # A functional model returns a list where the layer returned a tuple.
    actual, expected = tree.flatten(actual), tree.flatten(expected)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want)
        )


def floating(structure):
    """The floating-point tensors of a structure, flattened."""
    return [
        x
        for x in tree.flatten(structure)
        if keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype))
    ]


def check_config_round_trip(layer, init_kwargs, input_data, outputs, not_in_config):
    """`from_config(get_config())` rebuilds an equal layer.

    The configs are equal and JSON-serializable, the restored layer with the
    original's weights gives the same outputs, and it has every attribute the
    original has (keras-hub's `set(dir(...))` check, which catches state that
    `__init__` derives from an argument `get_config()` forgot).
    """
    config = layer.get_config()
    json.dumps(config)
    for name in not_in_config:
        assert name not in config, name
    shared = {name: init_kwargs[name] for name in not_in_config}
    restored = layer.__class__.from_config({**config, **shared})
    assert restored.get_config() == config

    revived = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(layer))),
    )
    assert type(revived) is type(layer)
    if not not_in_config:
        assert revived.get_config() == config

    call(restored, input_data)  # builds the weights
    restored.set_weights(layer.get_weights())
    assert_same_outputs(call(restored, input_data), outputs)
    missing = set(dir(layer)) ^ set(dir(restored))
    assert not missing, f"attributes not on both sides of the round trip: {missing}"


def check_mixed_precision(cls, init_kwargs, input_data, expected_output_shape):
    """Under `mixed_bfloat16`: variables float32, float outputs bfloat16 and finite."""
    layer = cls(**init_kwargs, dtype="mixed_bfloat16")
    for training in (False, True):
        outputs = call(layer, input_data, training=training)
        assert_shapes(outputs, expected_output_shape)
        for output in floating(outputs):
            dtype = keras.backend.standardize_dtype(output.dtype)
            assert dtype == "bfloat16", f"a {dtype} output under mixed_bfloat16"
            assert np.isfinite(keras.ops.convert_to_numpy(output)).all()
    for variable in layer.variables:
        if keras.backend.is_float_dtype(variable.dtype):
            assert variable.dtype == "float32", variable.path


def check_training_step(layer, input_data):
    """One step: every trainable variable and float input gets a finite gradient
    (not None), and SGD changes every trainable variable.

    The loss projects the outputs on fixed random directions: a loss such as
    `sum(y ** 2)` has no gradient through a LayerNorm with unit gain.
    """
    call(layer, input_data)  # builds the weights
    inputs = input_data if isinstance(input_data, dict) else {"": input_data}
    float_inputs = {
        name: tf.constant(value)
        for name, value in inputs.items()
        if np.issubdtype(np.asarray(value).dtype, np.floating)
    }
    inputs = {**inputs, **float_inputs}
    rng = np.random.default_rng(0)
    with tf.GradientTape() as tape:
        tape.watch(list(float_inputs.values()))
        data = inputs if isinstance(input_data, dict) else inputs[""]
        outputs = floating(call(layer, data, training=True))
        loss = sum(
            tf.reduce_sum(
                tf.cast(output, "float32")
                * rng.standard_normal(output.shape).astype("float32")
            )
            for output in outputs
        )
    if not outputs:
        # Integer in, integer out (FlattenChoices on ids): nothing to train.
        assert not layer.trainable_variables
        return
    variables = layer.trainable_variables
    watched = list(float_inputs.values())
    gradients = tape.gradient(loss, variables + watched)
    paths = [variable.path for variable in variables] + [
        f"input {name!r}" for name in float_inputs
    ]
    for path, gradient in zip(paths, gradients):
        assert gradient is not None, f"no gradient for {path}"
        assert np.isfinite(tf.convert_to_tensor(gradient).numpy()).all(), path

    if not variables:
        return
    before = [keras.ops.convert_to_numpy(variable) for variable in variables]
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    optimizer.apply_gradients(zip(gradients[: len(variables)], variables))
    for variable, old in zip(variables, before):
        new = keras.ops.convert_to_numpy(variable)
        assert not np.array_equal(new, old), f"SGD left {variable.path} unchanged"


def check_keras_file_round_trip(layer, input_data, outputs, tmp_path):
    """Inside a functional model, saved to `.keras` and loaded: same outputs."""
    data = input_data if isinstance(input_data, dict) else {"inputs": input_data}
    inputs = {
        name: keras.Input(
            batch_shape=np.shape(value), dtype=np.asarray(value).dtype, name=name
        )
        for name, value in data.items()
    }
    if isinstance(input_data, dict):
        symbolic = layer(**inputs)
    else:
        symbolic = layer(inputs["inputs"])
        inputs = inputs["inputs"]
    assert_shapes(symbolic, shapes(outputs), symbolic=True)
    model = keras.Model(inputs=inputs, outputs=symbolic)
    path = tmp_path / f"{layer.__class__.__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded_layer = loaded.get_layer(layer.name)
    assert type(loaded_layer) is type(layer)
    assert loaded_layer.get_config() == layer.get_config()
    assert_same_outputs(loaded(input_data), outputs)
