"""LoRA (bert_keras.lora) against Hugging Face PEFT on the same weights.

Adapters written by bert_keras open in `peft.PeftModel.from_pretrained` on the
transformers model with the same outputs, adapters written by PEFT load onto
the bert_keras model with the same outputs, merged models save ordinary
checkpoints, and the trainable weights are PEFT's.
"""

import copy
import json
import os

import keras
import numpy as np
import peft
import pytest
import torch
import transformers
from conftest import assert_outputs_close
from conftest import inputs_for
from conftest import labels_for
from conftest import make_pair
from conftest import max_abs_diff
from conftest import tiny_config
from conftest import to_torch
from conftest import torch_outputs

import bert_keras as bk
from bert_keras import lora
from bert_keras.errors import CheckpointError
from bert_keras.errors import CheckpointNotFoundError
from bert_keras.errors import ConfigError

TASK_CLASSES = ["BertForSequenceClassification", "BertForTokenClassification"]
# Every kind of Linear in a layer; `output.dense` also matches the attention's.
TARGETS = ["query", "key", "value", "output.dense", "intermediate.dense"]


def _randomize_adapters(model, seed=0):
    """Gives every adapter a non-zero B (zero at init: a no-op adapter)."""
    rng = np.random.default_rng(seed)
    for dense in lora.lora_state(model).layers.values():
        for variable in (dense.lora_kernel_a, dense.lora_kernel_b):
            variable.assign(0.2 * rng.standard_normal(variable.shape))
    return model


def _peft_config(name, **overrides):
    fields = dict(
        task_type=lora.TASK_TYPES.get(name),
        r=4,
        lora_alpha=8,
        target_modules=list(TARGETS),
    )
    fields.update(overrides)
    return peft.LoraConfig(**fields)


def _trainable_size(model):
    return sum(int(np.prod(variable.shape)) for variable in model.trainable_weights)


@pytest.mark.parametrize("name", TASK_CLASSES)
def test_adapter_written_by_bert_keras_opens_in_peft(name, tmp_path):
    ours, theirs = make_pair(name)
    modules = lora.enable_lora(ours, rank=4, alpha=8, target_modules=TARGETS)
    # 2 layers x (query, key, value, attention.output.dense, intermediate, output)
    assert len(modules) == 12
    _randomize_adapters(ours)
    head = ours.classifier.kernel
    head.assign(head + 0.3)  # a trained head: modules_to_save must carry it
    written = lora.save_lora_adapter(ours, tmp_path, base_model_name_or_path="base")
    assert sorted(os.path.basename(path) for path in written) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert not [file for file in os.listdir(tmp_path) if file.endswith(".tmp")]

    inputs = inputs_for(name, ours.config)
    expected = torch_outputs(theirs, inputs)["logits"]
    peft_model = peft.PeftModel.from_pretrained(theirs, tmp_path).eval()
    assert type(peft_model).__name__.startswith("PeftModelFor")
    theirs_logits = torch_outputs(peft_model, inputs)["logits"]
    ours_logits = ours(inputs, training=False)["logits"]
    assert max_abs_diff(ours_logits, theirs_logits) <= 1e-5
    # The adapters change the outputs, so the comparison is not vacuous.
    assert max_abs_diff(theirs_logits, expected) > 1e-2

    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "base"
    assert config["r"] == 4 and config["lora_alpha"] == 8
    assert "classifier" in config["modules_to_save"]


@pytest.mark.parametrize("name", TASK_CLASSES)
def test_adapter_trained_by_peft_loads_onto_bert_keras(name, tmp_path):
    ours, theirs = make_pair(name)
    # PEFT's dropout acts in training only: loading needs no dropout of ours.
    peft_config = _peft_config(name, lora_dropout=0.1)
    peft_model = peft.get_peft_model(copy.deepcopy(theirs), peft_config)
    # One SGD step: non-zero lora_B and a changed classifier copy.
    inputs = inputs_for(name, ours.config)
    labels = torch.as_tensor(labels_for(name, ours.config))
    peft_model.train()
    loss = peft_model(**to_torch(inputs), labels=labels).loss
    loss.backward()
    with torch.no_grad():
        for parameter in peft_model.parameters():
            if parameter.requires_grad:
                parameter -= 1.0 * parameter.grad
    peft_model.eval()
    peft_model.save_pretrained(tmp_path)

    modules = lora.load_lora_adapter(ours, tmp_path)
    assert len(modules) == 12
    theirs_logits = torch_outputs(peft_model, inputs)["logits"]
    assert max_abs_diff(ours(inputs, training=False)["logits"], theirs_logits) <= 1e-5
    assert max_abs_diff(theirs_logits, torch_outputs(theirs, inputs)["logits"]) > 1e-3

    # And back: what bert_keras writes again gives peft the same outputs.
    lora.save_lora_adapter(ours, tmp_path / "again")
    again = json.loads((tmp_path / "again" / "adapter_config.json").read_text())
    assert again["lora_dropout"] == 0.1 and again["task_type"] == peft_config.task_type
    reopened = peft.PeftModel.from_pretrained(theirs, tmp_path / "again").eval()
    assert (
        max_abs_diff(torch_outputs(reopened, inputs)["logits"], theirs_logits) <= 1e-5
    )


@pytest.mark.parametrize("name", TASK_CLASSES)
def test_merged_model_saves_an_ordinary_checkpoint(name, tmp_path):
    ours, _ = make_pair(name)
    plain_weight_count = len(ours.weights)
    lora.enable_lora(ours, rank=4, alpha=16, target_modules=["query", "value"])
    _randomize_adapters(ours)
    inputs = inputs_for(name, ours.config)
    before = ours(inputs, training=False)
    # Unmerged, save_pretrained writes the effective kernels already.
    ours.save_pretrained(tmp_path / "unmerged")
    unmerged = getattr(transformers, name).from_pretrained(tmp_path / "unmerged")
    assert_outputs_close(
        before, torch_outputs(unmerged.eval(), inputs), keys=["logits"]
    )
    assert lora.merge_lora(ours)
    assert lora.lora_state(ours) is None
    assert len(ours.weights) == plain_weight_count
    assert all(variable.trainable for variable in ours.weights)
    assert_outputs_close(ours(inputs, training=False), before, atol=1e-5)

    ours.save_pretrained(tmp_path)
    theirs, info = getattr(transformers, name).from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert_outputs_close(before, torch_outputs(theirs.eval(), inputs), keys=["logits"])


@pytest.mark.parametrize(
    ("name", "target_modules"),
    [
        ("BertForSequenceClassification", TARGETS),
        ("BertForTokenClassification", ["query", "value"]),
        ("BertForQuestionAnswering", ["dense"]),
        ("BertModel", r".*\.(query|value)"),
        ("BertForMaskedLM", ["query", "value", "transform.dense"]),
    ],
)
def test_trainable_parameters_are_peft_s(name, target_modules):
    config = tiny_config(name)
    ours = getattr(bk, name)(config)
    lora.enable_lora(ours, rank=4, target_modules=target_modules)
    theirs = peft.get_peft_model(
        getattr(transformers, name)(config),
        _peft_config(name, target_modules=target_modules),
    )
    trainable, _ = theirs.get_nb_trainable_parameters()
    assert _trainable_size(ours) == trainable


def test_fit_one_step_changes_only_adapters_and_head():
    name = "BertForSequenceClassification"
    ours, _ = make_pair(name)
    lora.enable_lora(ours, rank=4, target_modules=["query", "value"])
    # A's gradient is zero while B is (at init): B first, so both move.
    _randomize_adapters(ours)
    state = lora.lora_state(ours)
    expected = {id(ours.classifier.kernel), id(ours.classifier.bias)}
    for dense in state.layers.values():
        expected |= {id(dense.lora_kernel_a), id(dense.lora_kernel_b)}
    assert {id(variable) for variable in ours.trainable_weights} == expected

    before = {id(v): keras.ops.convert_to_numpy(v).copy() for v in ours.weights}
    ours.compile(optimizer=keras.optimizers.Adam(1e-2))
    inputs = inputs_for(name, ours.config)
    ours.fit(inputs, labels_for(name, ours.config), epochs=1, batch_size=3, verbose=0)
    changed = {
        id(variable)
        for variable in ours.weights
        if not np.array_equal(
            keras.ops.convert_to_numpy(variable), before[id(variable)]
        )
    }
    assert changed == expected


def test_modules_to_save_can_be_chosen():
    model = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification")
    )
    lora.enable_lora(model, rank=2, modules_to_save=["pooler.dense"])
    trainable = {id(variable) for variable in model.trainable_weights}
    assert id(model.bert.pooler.dense.kernel) in trainable
    assert id(model.classifier.kernel) in trainable  # the task's own, as in PEFT


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"rank": 0}, "rank=0"),
        ({"rank": -2}, "rank=-2"),
        ({"rank": 2.5}, "rank=2.5"),
        ({"rank": True}, "rank=True"),
        ({"rank": 4, "alpha": 0}, "alpha=0"),
        ({"rank": 4, "target_modules": ["nothing"]}, "target_modules=['nothing']"),
        ({"rank": 4, "target_modules": []}, "target_modules="),
        ({"rank": 4, "target_modules": "(unclosed"}, "target_modules='(unclosed'"),
        ({"rank": 4, "dropout": 1.0}, "dropout=1.0"),
        ({"rank": 4, "dropout": -0.1}, "dropout=-0.1"),
        ({"rank": 4, "modules_to_save": ["nope"]}, "modules_to_save=['nope']"),
    ],
)
def test_bad_arguments_raise_config_error(arguments, fragment):
    model = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification")
    )
    with pytest.raises(ConfigError, match="Received: ") as raised:
        lora.enable_lora(model, **arguments)
    assert fragment in str(raised.value)
    assert lora.lora_state(model) is None
    assert len(model.trainable_weights) == len(model.weights)


def test_lora_twice_and_no_lora_raise(tmp_path):
    model = bk.BertForTokenClassification(tiny_config("BertForTokenClassification"))
    with pytest.raises(ConfigError, match="without LoRA"):
        lora.save_lora_adapter(model, tmp_path)
    with pytest.raises(ConfigError, match="without LoRA"):
        lora.merge_lora(model)
    lora.enable_lora(model, rank=np.int64(2), alpha=np.float32(3.0))
    with pytest.raises(ConfigError, match="already enabled"):
        lora.enable_lora(model, rank=2)
    lora.save_lora_adapter(model, tmp_path)  # numpy rank and alpha: valid JSON
    with pytest.raises(ConfigError, match="already enabled"):
        lora.load_lora_adapter(model, tmp_path)


def test_adapter_for_another_model_raises(tmp_path):
    name = "BertForSequenceClassification"
    source = bk.BertForSequenceClassification(tiny_config(name))
    lora.enable_lora(source, rank=2)
    lora.save_lora_adapter(source, tmp_path)

    wider = bk.BertForSequenceClassification(tiny_config(name, num_labels=5))
    with pytest.raises(CheckpointError, match="mismatched=.*classifier"):
        lora.load_lora_adapter(wider, tmp_path)
    other_task = bk.BertForTokenClassification(
        tiny_config("BertForTokenClassification")
    )
    with pytest.raises(CheckpointError, match="task 'SEQ_CLS'"):
        lora.load_lora_adapter(other_task, tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="Received: "):
        lora.load_lora_adapter(wider, tmp_path / "missing")
    # Nothing was enabled by the failed loads.
    assert lora.lora_state(wider) is None and lora.lora_state(other_task) is None


def test_peft_options_bert_keras_cannot_reproduce_raise(tmp_path):
    name = "BertForSequenceClassification"
    theirs = transformers.BertForSequenceClassification(tiny_config(name))
    peft.get_peft_model(theirs, _peft_config(name, use_dora=True)).save_pretrained(
        tmp_path
    )
    model = bk.BertForSequenceClassification(tiny_config(name))
    with pytest.raises(CheckpointError, match="use_dora=True"):
        lora.load_lora_adapter(model, tmp_path)


@pytest.mark.parametrize(
    ("name", "output"),
    [
        ("BertModel", "last_hidden_state"),
        ("BertForMaskedLM", "logits"),
        ("BertForQuestionAnswering", "start_logits"),
        ("BertForMultipleChoice", "logits"),
    ],
)
def test_adapter_round_trip_for_the_other_classes(name, output, tmp_path):
    ours, theirs = make_pair(name)
    config = _peft_config(name, r=3, lora_alpha=5, target_modules=r".*\.(query|dense)")
    peft_model = peft.get_peft_model(copy.deepcopy(theirs), config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter_name, parameter in peft_model.named_parameters():
            if "lora_B" in parameter_name:
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    peft_model.eval().save_pretrained(tmp_path / "peft")
    lora.load_lora_adapter(ours, tmp_path / "peft")
    inputs = inputs_for(name, ours.config)
    # The LoRA-injected transformers model: PeftModelForQuestionAnswering's own
    # forward drops `token_type_ids` (peft 0.21), the model itself does not.
    theirs_output = torch_outputs(peft_model.get_base_model(), inputs)[output]
    assert max_abs_diff(ours(inputs, training=False)[output], theirs_output) <= 1e-5
    assert max_abs_diff(theirs_output, torch_outputs(theirs, inputs)[output]) > 1e-3

    lora.save_lora_adapter(ours, tmp_path / "ours")
    reopened = peft.PeftModel.from_pretrained(theirs, tmp_path / "ours").eval()
    reopened_output = torch_outputs(reopened.get_base_model(), inputs)[output]
    assert max_abs_diff(reopened_output, theirs_output) <= 1e-5


def test_lora_dropout_acts_on_the_adapter_input_in_training_only(tmp_path):
    name = "BertForSequenceClassification"  # tiny_config: no other dropout
    ours, theirs = make_pair(name)
    lora.enable_lora(ours, rank=4, alpha=8, dropout=0.5, target_modules=TARGETS)
    inputs = inputs_for(name, ours.config)
    # B = 0: the adapters add nothing, with or without dropout.
    assert_outputs_close(ours(inputs, training=True), ours(inputs, training=False))
    _randomize_adapters(ours)
    inference = ours(inputs, training=False)["logits"]
    first, second = (ours(inputs, training=True)["logits"] for _ in range(2))
    assert max_abs_diff(first, second) > 1e-3

    lora.save_lora_adapter(ours, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["lora_dropout"] == 0.5
    peft_model = peft.PeftModel.from_pretrained(theirs, tmp_path).eval()
    assert max_abs_diff(inference, torch_outputs(peft_model, inputs)["logits"]) <= 1e-5

    # Eager: tracing a training step costs more than this test checks.
    ours.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    ours.fit(inputs, labels_for(name, ours.config), epochs=1, batch_size=3, verbose=0)
    trained = ours(inputs, training=False)["logits"]
    lora.merge_lora(ours)
    assert_outputs_close(ours(inputs, training=True), {"logits": trained})


def test_merge_dense_lora_pins_keras_private_members():
    # keras_private.merge_dense_lora reads `Dense._kernel` (Keras 3.15).
    from bert_keras import keras_private

    dense = keras.layers.Dense(5)
    dense.build((None, 7))
    kernel = dense.kernel
    assert dense._kernel is kernel
    before = keras.ops.convert_to_numpy(kernel).copy()
    dense.enable_lora(2, lora_alpha=6)
    rng = np.random.default_rng(0)
    dense.lora_kernel_a.assign(rng.standard_normal((7, 2)))
    dense.lora_kernel_b.assign(rng.standard_normal((2, 5)))
    delta = 3.0 * (
        keras.ops.convert_to_numpy(dense.lora_kernel_a)
        @ keras.ops.convert_to_numpy(dense.lora_kernel_b)
    )
    x = rng.standard_normal((4, 7)).astype("float32")
    expected = keras.ops.convert_to_numpy(dense(x))
    assert keras_private.merge_dense_lora(dense) is kernel
    assert not dense.lora_enabled and dense.lora_rank is None
    assert [id(v) for v in dense.weights] == [id(kernel), id(dense.bias)]
    assert kernel.trainable
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(kernel), before + delta, atol=1e-5
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(dense(x)), expected, atol=1e-5
    )
