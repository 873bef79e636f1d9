"""`model.export(path)` (Keras' "tf_saved_model") with hidden states and attentions.

A SavedModel signature returns tensors only, so the per-layer tuples are
served stacked under their HF names: `hidden_states` (layers + 1, batch, ...)
and `attentions` (layers, batch, heads, seq, seq), as transformers v4's TF
SavedModels had them.
"""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import inputs_for
from conftest import make_pair
from conftest import tiny_config
from conftest import torch_outputs

import bert_keras as bk

FLAGS = {
    "hidden_states": {"output_hidden_states": True},
    "attentions": {"output_attentions": True},
    "both": {"output_hidden_states": True, "output_attentions": True},
    "neither": {},
}


def int32(inputs):
    return {name: tf.constant(value, tf.int32) for name, value in inputs.items()}


def expected(model, inputs):
    """The model's own outputs (inference mode), tuples stacked."""
    outputs = model(inputs, training=False)
    return {
        name: np.stack(value) if isinstance(value, (list, tuple)) else np.asarray(value)
        for name, value in outputs.items()
    }


def assert_served_equal(served, reference):
    assert sorted(served) == sorted(reference)
    for name, value in reference.items():
        got = np.asarray(served[name])
        assert got.dtype == np.float32, name
        assert got.shape == value.shape, name
        np.testing.assert_allclose(got, value, atol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    "name, flags",
    [
        ("BertModel", "both"),
        ("BertModel", "neither"),
        ("BertForSequenceClassification", "hidden_states"),
        ("BertForTokenClassification", "attentions"),
        ("BertForMultipleChoice", "both"),
        ("BertForPreTraining", "both"),
    ],
)
def test_export_serves_every_output(tmp_path, name, flags):
    config = tiny_config(name, **FLAGS[flags])
    model = getattr(bk, name)(config)
    inputs = int32(inputs_for(name, config))
    path = model.export(tmp_path / "exported", verbose=False)
    assert path == str(tmp_path / "exported")

    served = tf.saved_model.load(path)
    # Tracked as Keras' own export does: the revived object lists the weights.
    assert len(served.variables) == len(model.variables)
    reference = expected(model, inputs)
    assert ("hidden_states" in reference) == ("output_hidden_states" in FLAGS[flags])
    assert ("attentions" in reference) == ("output_attentions" in FLAGS[flags])
    assert_served_equal(served.serve(inputs), reference)
    assert_served_equal(served.signatures["serving_default"](**inputs), reference)
    layers = config.num_hidden_layers
    if "hidden_states" in reference:
        assert reference["hidden_states"].shape[0] == layers + 1
    if "attentions" in reference:
        assert reference["attentions"].shape[0] == layers


def test_layers_are_indexed_as_in_transformers(tmp_path):
    """Stacked index i is transformers' `hidden_states[i]` / `attentions[i]`."""
    overrides = {"output_hidden_states": True, "output_attentions": True}
    ours, theirs = make_pair("BertModel", **overrides)
    inputs = inputs_for("BertModel")
    served = tf.saved_model.load(ours.export(tmp_path / "exported", verbose=False))
    outputs = served.serve(int32(inputs))
    reference = torch_outputs(theirs, inputs)
    for key in ("hidden_states", "attentions"):
        assert outputs[key].shape[0] == len(reference[key])
        for index, layer in enumerate(reference[key]):
            np.testing.assert_allclose(
                outputs[key][index].numpy(),
                layer.numpy(),
                atol=1e-5,
                err_msg=f"{key}[{index}]",
            )


def test_export_runs_in_inference_mode(tmp_path):
    config = tiny_config(
        "BertForSequenceClassification",
        hidden_dropout_prob=0.5,
        attention_probs_dropout_prob=0.5,
        output_hidden_states=True,
    )
    model = bk.BertForSequenceClassification(config)
    inputs = int32(inputs_for("BertForSequenceClassification", config))
    served = tf.saved_model.load(model.export(tmp_path / "exported", verbose=False))
    first, second = served.serve(inputs), served.serve(inputs)
    reference = expected(model, inputs)
    assert_served_equal(first, reference)
    assert_served_equal(second, reference)


def test_input_signature_is_honoured(tmp_path):
    config = tiny_config(output_hidden_states=True)
    model = bk.BertModel(config)
    signature = [
        {
            name: tf.TensorSpec((None, 7), tf.int32, name=name)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        }
    ]
    path = model.export(tmp_path / "exported", verbose=False, input_signature=signature)
    served = tf.saved_model.load(path)
    specs = served.signatures["serving_default"].structured_input_signature[1]
    assert {name: spec.shape.as_list() for name, spec in specs.items()} == {
        "input_ids": [None, 7],
        "attention_mask": [None, 7],
        "token_type_ids": [None, 7],
    }
    inputs = int32(inputs_for("BertModel", config))
    assert_served_equal(served.serve(inputs), expected(model, inputs))


def test_other_formats_are_keras_own(tmp_path):
    model = bk.BertModel(tiny_config())
    with pytest.raises(ValueError, match="format"):
        model.export(tmp_path / "exported", format="no-such-format")


@pytest.mark.slow
def test_export_loads_with_tensorflow_alone(tmp_path):
    """The SavedModel needs neither bert_keras nor transformers to serve."""
    config = tiny_config(output_hidden_states=True, output_attentions=True)
    model = bk.BertModel(config)
    path = model.export(tmp_path / "exported", verbose=False)
    inputs = inputs_for("BertModel", config)
    np.savez(tmp_path / "inputs.npz", **inputs)
    np.savez(tmp_path / "expected.npz", **expected(model, int32(inputs)))
    script = f"""
import sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load({path!r})
inputs = dict(np.load({str(tmp_path / "inputs.npz")!r}))
inputs = {{k: tf.constant(v, tf.int32) for k, v in inputs.items()}}
outputs = served.signatures["serving_default"](**inputs)
expected = np.load({str(tmp_path / "expected.npz")!r})
assert sorted(outputs) == sorted(expected.files), sorted(outputs)
for key in expected.files:
    np.testing.assert_allclose(outputs[key].numpy(), expected[key], atol=1e-5)
assert not [m for m in sys.modules if m.split(".")[0] in ("bert_keras", "transformers")]
print("served")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "served" in result.stdout
