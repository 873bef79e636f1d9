"""Old TensorFlow BERT checkpoints load with the original code's outputs.

The fixtures under tests/data/legacy/ were written by the original code
(transformers 4's TF classes; google-research/bert's `modeling.py`), and so
were the outputs in each `expected.npz`; make_fixtures.py there says how.
Each one must load into bert_keras with those outputs, and its
`save_pretrained` copy must open in transformers' PyTorch classes with no
missing or unexpected key and the same outputs.
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import torch
import transformers

import bert_keras as bk
from bert_keras.checkpoints.legacy import h5_key
from bert_keras.checkpoints.legacy import model_garden_key
from bert_keras.checkpoints.legacy import tf1_key
from bert_keras.errors import CheckpointError
from bert_keras.errors import CheckpointNotFoundError

DATA = os.path.join(os.path.dirname(__file__), "data", "legacy")
INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
TOLERANCE = 1e-5


def log_softmax(logits):
    return torch.log_softmax(torch.tensor(np.asarray(logits)), -1).numpy()


# The original outputs of each fixture, as functions of a model's outputs:
# (fixture, class name, {expected name: output -> array}).
CASES = [
    (
        "h5_pretraining",
        "BertForPreTraining",
        {
            "prediction_logits": lambda out: out["prediction_logits"],
            "seq_relationship_logits": lambda out: out["seq_relationship_logits"],
        },
    ),
    (
        "h5_classification",
        "BertForSequenceClassification",
        {"logits": lambda out: out["logits"]},
    ),
    (
        "h5_model",
        "BertModel",
        {
            "last_hidden_state": lambda out: out["last_hidden_state"],
            "pooler_output": lambda out: out["pooler_output"],
        },
    ),
    (
        # google-research/bert reports log-probabilities, not logits.
        "tf1_pretraining",
        "BertForPreTraining",
        {
            "mlm_log_probs": lambda out: log_softmax(out["prediction_logits"]),
            "nsp_log_probs": lambda out: log_softmax(out["seq_relationship_logits"]),
        },
    ),
    (
        "tf1_pretraining",
        "BertModel",
        {
            "sequence_output": lambda out: out["last_hidden_state"],
            "pooled_output": lambda out: out["pooler_output"],
        },
    ),
    (
        # run_classifier.py, with its Adam slots and global_step (skipped).
        "tf1_classifier",
        "BertForSequenceClassification",
        {"logits": lambda out: out["logits"]},
    ),
    (
        "model_garden_encoder",
        "BertModel",
        {
            "sequence_output": lambda out: out["last_hidden_state"],
            "pooled_output": lambda out: out["pooler_output"],
        },
    ),
]
IDS = [f"{folder}-{name}" for folder, name, _ in CASES]


def expected(folder):
    with np.load(os.path.join(DATA, folder, "expected.npz")) as arrays:
        return dict(arrays)


def assert_outputs(outputs, folder, outputs_of):
    arrays = expected(folder)
    for name, output_of in outputs_of.items():
        difference = np.abs(np.asarray(output_of(outputs)) - arrays[name]).max()
        assert difference <= TOLERANCE, (name, difference)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """`{case id: directory}` of each case's `save_pretrained` copy."""
    directories = {}
    for case_id, (folder, name, _) in zip(IDS, CASES):
        model = getattr(bk, name).from_pretrained(os.path.join(DATA, folder))
        directory = tmp_path_factory.mktemp(case_id)
        model.save_pretrained(directory)
        directories[case_id] = str(directory)
    return directories


@pytest.mark.parametrize("folder, name, outputs_of", CASES, ids=IDS)
def test_matches_the_original_code(folder, name, outputs_of):
    model, info = getattr(bk, name).from_pretrained(
        os.path.join(DATA, folder), output_loading_info=True
    )
    assert info["missing_keys"] == [] and info["mismatched_keys"] == []
    if name != "BertModel":  # BertModel leaves the pretraining heads unused
        assert info["unexpected_keys"] == []
    arrays = expected(folder)
    outputs = model({key: arrays[key] for key in INPUT_NAMES}, training=False)
    assert_outputs(outputs, folder, outputs_of)


@pytest.mark.parametrize("folder, name, outputs_of", CASES, ids=IDS)
def test_saved_copy_opens_in_transformers(saved, folder, name, outputs_of):
    model, info = getattr(transformers, name).from_pretrained(
        saved[f"{folder}-{name}"], output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    arrays = expected(folder)
    inputs = {key: torch.as_tensor(arrays[key]).long() for key in INPUT_NAMES}
    with torch.no_grad():
        outputs = model.eval()(**inputs)
    outputs = {key: value.numpy() for key, value in outputs.items()}
    assert_outputs(outputs, folder, outputs_of)


def test_google_gelu_is_saved_as_the_tanh_form(saved):
    config = transformers.BertConfig.from_pretrained(
        saved["tf1_pretraining-BertForPreTraining"]
    )
    assert config.hidden_act == "gelu_new"
    assert config.architectures == ["BertForPreTraining"]


@pytest.mark.parametrize("suffix", ["", ".index"])
def test_loads_from_a_checkpoint_prefix(suffix):
    prefix = os.path.join(DATA, "tf1_pretraining", "bert_model.ckpt")
    model = bk.BertModel.from_pretrained(prefix + suffix)
    arrays = expected("tf1_pretraining")
    outputs = model({key: arrays[key] for key in INPUT_NAMES}, training=False)
    difference = np.abs(outputs["pooler_output"] - arrays["pooled_output"]).max()
    assert difference <= TOLERANCE


def test_loads_a_tf_model_h5_file_path():
    path = os.path.join(DATA, "h5_classification", "tf_model.h5")
    model = bk.BertForSequenceClassification.from_pretrained(path)
    assert model.config.num_labels == 3


@pytest.mark.parametrize(
    "name, key",
    [
        (
            "tf_bert_for_pre_training/mlm___cls/predictions/transform/dense/kernel:0",
            ("cls.predictions.transform.dense.weight", "kernel"),
        ),
        (
            "tf_bert_model/bert/embeddings/position_embeddings/embeddings:0",
            ("bert.embeddings.position_embeddings.weight", "as_is"),
        ),
        (
            "tf_bert_for_sequence_classification/bert/encoder/layer_._11/output/"
            "LayerNorm/gamma:0",
            ("bert.encoder.layer.11.output.LayerNorm.weight", "as_is"),
        ),
    ],
)
def test_h5_names(name, key):
    assert h5_key(name) == key


@pytest.mark.parametrize(
    "name, key",
    [
        (
            "bert/encoder/layer_10/output/LayerNorm/beta",
            ("bert.encoder.layer.10.output.LayerNorm.bias", "as_is"),
        ),  # noqa: E501
        ("cls/predictions/output_bias", ("cls.predictions.bias", "as_is")),
        ("output_weights", ("classifier.weight", "as_is")),
        ("cls/squad/output_weights", ("qa_outputs.weight", "as_is")),
        ("bert/pooler/dense/kernel/adam_m", None),
        ("global_step", None),
    ],
)
def test_tf1_names(name, key):
    assert tf1_key(name) == key


@pytest.mark.parametrize(
    "name, key",
    [
        (
            "encoder/_transformer_layers/0/_attention_layer/_query_dense/kernel",
            ("encoder.layer.0.attention.self.query.weight", "kernel"),
        ),
        (
            "model/encoder/_transformer_layers/3/_attention_layer/_value_dense/bias",
            ("encoder.layer.3.attention.self.value.bias", "flat"),
        ),
        (
            "encoder/_transformer_layers/0/_output_layer_norm/gamma",
            ("encoder.layer.0.output.LayerNorm.weight", "as_is"),
        ),
        (
            "encoder/_position_embedding_layer/embeddings",
            ("embeddings.position_embeddings.weight", "as_is"),
        ),
        ("encoder/_pooler_layer/kernel", ("pooler.dense.weight", "kernel")),
        ("save_counter", None),
        (
            "encoder/_pooler_layer/kernel/.OPTIMIZER_SLOT/optimizer/m",
            None,
        ),
    ],
)
def test_model_garden_names(name, key):
    assert model_garden_key(name + "/.ATTRIBUTES/VARIABLE_VALUE") == key


def test_positional_object_checkpoints_are_refused(tmp_path):
    # Model Garden's functional BertEncoder (v1) names layers by position.
    embeddings = tf.train.Checkpoint(embeddings=tf.Variable(np.ones((99, 32))))
    layers = tf.train.Checkpoint(**{"layer_with_weights-0": embeddings})
    tf.train.Checkpoint(encoder=layers).write(str(tmp_path / "bert_model.ckpt"))
    shutil.copy(os.path.join(DATA, "tf1_pretraining", "bert_config.json"), tmp_path)
    with pytest.raises(CheckpointError, match="BertEncoderV2"):
        bk.BertModel.from_pretrained(tmp_path)


@pytest.fixture()
def tf1_copy(tmp_path):
    directory = tmp_path / "tf1"
    shutil.copytree(os.path.join(DATA, "tf1_pretraining"), directory)
    return directory


@pytest.fixture()
def h5_copy(tmp_path):
    directory = tmp_path / "h5"
    shutil.copytree(os.path.join(DATA, "h5_pretraining"), directory)
    return directory


def test_missing_data_file_is_reported(tf1_copy):
    os.remove(tf1_copy / "bert_model.ckpt.data-00000-of-00001")
    with pytest.raises(CheckpointError, match="data-00000-of-00001 is missing"):
        bk.BertModel.from_pretrained(tf1_copy)


def test_truncated_data_file_is_reported(tf1_copy):
    path = tf1_copy / "bert_model.ckpt.data-00000-of-00001"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        bk.BertModel.from_pretrained(tf1_copy)


def test_missing_bert_config_is_reported(tf1_copy):
    os.remove(tf1_copy / "bert_config.json")
    with pytest.raises(CheckpointNotFoundError, match="config=BertConfig"):
        bk.BertModel.from_pretrained(tf1_copy)


def test_several_checkpoints_need_a_prefix(tf1_copy):
    for name in ("bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001"):
        shutil.copy(tf1_copy / name, tf1_copy / name.replace("bert_model", "other"))
    with pytest.raises(CheckpointError, match="several TensorFlow checkpoints"):
        bk.BertModel.from_pretrained(tf1_copy)
    bk.BertModel.from_pretrained(tf1_copy / "other.ckpt")


def test_truncated_h5_is_reported(h5_copy):
    path = h5_copy / "tf_model.h5"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="tf_model.h5"):
        bk.BertForPreTraining.from_pretrained(h5_copy)


def test_sharded_h5_is_refused(h5_copy):
    os.rename(h5_copy / "tf_model.h5", h5_copy / "tf_model-00001-of-00001.h5")
    (h5_copy / "tf_model.h5.index.json").write_text('{"weight_map": {}}')
    with pytest.raises(CheckpointError, match="sharded"):
        bk.BertForPreTraining.from_pretrained(h5_copy)


def test_safetensors_win_over_tf_weights(h5_copy):
    bk.BertForPreTraining(bk.BertConfig.from_pretrained(h5_copy)).save_pretrained(
        h5_copy
    )
    model = bk.BertForPreTraining.from_pretrained(h5_copy)
    arrays = expected("h5_pretraining")
    outputs = model({key: arrays[key] for key in INPUT_NAMES}, training=False)
    difference = np.abs(outputs["prediction_logits"] - arrays["prediction_logits"])
    assert difference.max() > 0.1  # the fresh safetensors weights, not the h5


def test_tf_weights_are_read_instead_of_a_refused_pickle(h5_copy):
    (h5_copy / "pytorch_model.bin").write_bytes(b"not read: a pickle")
    model = bk.BertForPreTraining.from_pretrained(h5_copy)
    arrays = expected("h5_pretraining")
    outputs = model({key: arrays[key] for key in INPUT_NAMES}, training=False)
    difference = np.abs(outputs["prediction_logits"] - arrays["prediction_logits"])
    assert difference.max() <= TOLERANCE


def test_a_classifier_with_other_labels_is_reported_by_name():
    with pytest.raises(CheckpointError, match="classifier.weight"):
        bk.BertForSequenceClassification.from_pretrained(
            os.path.join(DATA, "tf1_classifier"), num_labels=3
        )
