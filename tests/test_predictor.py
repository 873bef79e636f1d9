"""`bk.Predictor`: the frozen single-request path gives the model's outputs.

Every class in float32 and mixed bfloat16 against `model(..., training=False)`
on padded batches, one class against transformers' PyTorch model, any batch
and sequence length from one trace, the packed query/key/value projection
actually in the graph, snapshot semantics, LoRA, and clear input errors; the
same for `runtime="onnxruntime"`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CLASS_NAMES
from conftest import assert_outputs_close
from conftest import inputs_for
from conftest import make_pair
from conftest import max_abs_diff
from conftest import perturb_keras
from conftest import random_inputs
from conftest import tiny_config
from conftest import torch_outputs

import bert_keras as bk


def build(name, dtype=None, **overrides):
    config = tiny_config(name, **overrides)
    model = getattr(bk, name)(config, dtype=dtype)
    model(inputs_for(name, config))
    return perturb_keras(model), config


def inference_outputs(model, inputs, names):
    outputs = model(inputs, training=False)
    return {name: np.asarray(outputs[name], np.float32) for name in names}


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_outputs_equal_the_models_call(name):
    model, config = build(name)
    predictor = bk.Predictor(model)
    inputs = inputs_for(name, config)
    ours = predictor(inputs)
    assert set(ours) == set(predictor.output_names) and len(ours) > 0
    assert_outputs_close(ours, inference_outputs(model, inputs, ours), atol=1e-5)


@pytest.mark.parametrize(
    "name", ["BertModel", "BertForSequenceClassification", "BertForQuestionAnswering"]
)
def test_mixed_bfloat16_equals_the_models_call(name):
    model, config = build(name, dtype="mixed_bfloat16")
    inputs = inputs_for(name, config)
    ours = bk.Predictor(model)(inputs)
    theirs = inference_outputs(model, inputs, ours)
    for key in ours:
        assert ours[key].dtype == np.float32
        # Casts folded at freeze time vs per call, the same bfloat16 weights:
        # a bfloat16 ulp or two apart (values here reach about 3).
        np.testing.assert_allclose(ours[key], theirs[key], rtol=2e-2, atol=2e-2)


def test_matches_pytorch_transformers():
    ours, theirs = make_pair("BertForSequenceClassification")
    inputs = random_inputs()
    logits = bk.Predictor(ours)(inputs)["logits"]
    assert max_abs_diff(logits, torch_outputs(theirs, inputs).logits) <= 1e-5


def test_one_trace_serves_any_batch_and_length():
    model, config = build("BertForTokenClassification")
    predictor = bk.Predictor(model)
    for batch, seq in [(1, 5), (4, 11), (2, 64)]:
        inputs = random_inputs(config, batch=batch, seq=seq, seed=batch)
        out = predictor(inputs)["logits"]
        assert out.shape == (batch, seq, config.num_labels)
        expected = inference_outputs(model, inputs, ["logits"])["logits"]
        assert max_abs_diff(out, expected) <= 1e-5


def test_defaults_and_argument_forms_agree():
    model, config = build("BertModel")
    predictor = bk.Predictor(model)
    ids = random_inputs(config, lengths=(7, 7, 7))["input_ids"]
    alone = predictor(ids)
    explicit = predictor(
        ids, attention_mask=np.ones_like(ids), token_type_ids=np.zeros_like(ids)
    )
    mapping = predictor({"input_ids": ids.tolist()})
    boolean_mask = predictor(ids, attention_mask=np.ones(ids.shape, bool))
    for other in (explicit, mapping, boolean_mask):
        assert_outputs_close(alone, other, atol=0.0)


def test_projections_are_one_packed_product():
    model, _ = build("BertModel", dtype="mixed_bfloat16")
    predictor = bk.Predictor(model)
    captured = [tuple(t.shape) for t in predictor._function.captured_inputs]
    hidden = model.config.hidden_size
    # Query, key and value side by side: one (hidden, 3 * hidden) kernel per
    # layer, taken with the snapshot.
    assert captured.count((hidden, 3 * hidden)) == model.config.num_hidden_layers
    graph = predictor._function.graph.as_graph_def()
    # No variable is read at call time, and no captured weight is cast per call.
    assert "ReadVariableOp" not in {node.op for node in graph.node}
    captures = {node.name for node in graph.node if node.op == "Placeholder"}
    assert len(captures) > 3 + 2 * model.config.num_hidden_layers
    casts = [
        node.name
        for node in graph.node
        if node.op == "Cast" and node.input[0].split(":")[0] in captures
    ]
    assert casts == []


def test_is_a_snapshot_of_the_weights():
    model, config = build("BertForSequenceClassification")
    inputs = random_inputs(config)
    predictor = bk.Predictor(model)
    before = predictor(inputs)["logits"]
    perturb_keras(model, seed=7)
    assert max_abs_diff(predictor(inputs)["logits"], before) == 0.0
    fresh = bk.Predictor(model)(inputs)["logits"]
    assert max_abs_diff(fresh, before) > 1e-3
    expected = inference_outputs(model, inputs, ["logits"])["logits"]
    assert max_abs_diff(fresh, expected) <= 1e-5


def test_training_after_the_snapshot_does_not_reach_it():
    model, config = build("BertForSequenceClassification")
    inputs = random_inputs(config)
    predictor = bk.Predictor(model)
    before = predictor(inputs)["logits"]
    model.compile(optimizer=keras.optimizers.AdamW(1e-2))
    model.fit(inputs, np.array([0, 1, 2]), epochs=1, verbose=0)
    assert max_abs_diff(predictor(inputs)["logits"], before) == 0.0
    trained = inference_outputs(model, inputs, ["logits"])["logits"]
    assert max_abs_diff(trained, before) > 1e-3


def test_lora_model_keeps_its_adapter():
    model, config = build("BertForSequenceClassification")
    bk.enable_lora(model, rank=2, target_modules=["query", "value"])
    for variable in model.trainable_weights:
        if "lora_B" in variable.path or "lora_kernel_b" in variable.path:
            variable.assign(np.full(variable.shape, 0.05, "float32"))
    inputs = random_inputs(config)
    expected = inference_outputs(model, inputs, ["logits"])["logits"]
    assert max_abs_diff(bk.Predictor(model)(inputs)["logits"], expected) <= 1e-5


BAD_INPUTS = [
    (lambda p: p(np.array([[1, 500, 2]])), r"input_ids.*\[0, 99\).*500"),
    (lambda p: p(np.array([1, 5, 2])), r"\(batch, seq\).*ids\[None\]"),
    (lambda p: p(np.array([[1.0, 5.0]])), "must hold integer"),
    (
        lambda p: p(np.array([[1, 5, 2]]), attention_mask=np.ones((1, 4), int)),
        r"shape of input_ids \(1, 3\)",
    ),
    (
        lambda p: p(np.array([[1, 5, 2]]), attention_mask=np.array([[0, 1, 1]])),
        "left padding",
    ),
    (lambda p: p(np.array([[1, 2**40]])), "beyond int32"),
    (lambda p: p({"attention_mask": np.ones((1, 3), int)}), "input_ids"),
]


@pytest.mark.parametrize("call, message", BAD_INPUTS)
def test_bad_inputs_raise_input_error(call, message):
    model, _ = build("BertModel")
    with pytest.raises(bk.InputError, match=message):
        call(bk.Predictor(model))


def test_out_of_range_ids_are_also_tf_invalid_argument():
    model, _ = build("BertModel")
    with pytest.raises(tf.errors.InvalidArgumentError):
        bk.Predictor(model)(np.array([[1, 500, 2]]))


# --- runtime="onnxruntime" ---------------------------------------------------


@pytest.fixture(scope="module")
def onnx_predictors():
    """Tiny float32 models and their ONNX Runtime predictors (one conversion
    each: tf2onnx takes a few seconds)."""
    made = {}
    for name in ("BertModel", "BertForSequenceClassification", "BertForMultipleChoice"):
        model, config = build(name)
        made[name] = (model, config, bk.Predictor(model, runtime="onnxruntime"))
    return made


@pytest.mark.parametrize(
    "name", ["BertModel", "BertForSequenceClassification", "BertForMultipleChoice"]
)
def test_onnxruntime_equals_the_models_call(onnx_predictors, name):
    model, config, predictor = onnx_predictors[name]
    assert predictor.runtime == "onnxruntime" and "onnxruntime" in repr(predictor)
    for batch, length in ((3, 7), (1, 12)):
        inputs = inputs_for(name, config, batch=batch, seq=length)
        ours = predictor(inputs)
        assert set(ours) == set(predictor.output_names) and len(ours) > 0
        expected = inference_outputs(model, inputs, ours)
        for key in ours:
            assert ours[key].dtype == np.float32
        assert_outputs_close(ours, expected, atol=1e-5)


def test_onnxruntime_is_a_snapshot_and_checks_inputs(onnx_predictors):
    model, config, predictor = onnx_predictors["BertModel"]
    inputs = random_inputs(config)
    before = predictor(inputs)["last_hidden_state"]
    perturb_keras(model, seed=11)
    assert max_abs_diff(predictor(inputs)["last_hidden_state"], before) == 0.0
    # The ONNX graph has no asserts; the same checks run before it.
    for call, message in BAD_INPUTS:
        with pytest.raises(bk.InputError, match=message):
            call(predictor)


def test_onnxruntime_refusals():
    model, _ = build("BertModel")
    with pytest.raises(bk.ConfigError, match="one of"):
        bk.Predictor(model, runtime="onnx")
    with pytest.raises(bk.ConfigError, match="tf.config.threading"):
        bk.Predictor(model, num_threads=2)
    mixed, _ = build("BertModel", dtype="mixed_bfloat16")
    with pytest.raises(bk.ConfigError, match="bfloat16 CPU kernels.*dtype='float32'"):
        bk.Predictor(mixed, runtime="onnxruntime")
