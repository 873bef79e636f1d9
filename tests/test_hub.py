"""Hugging Face checkpoint I/O: from_pretrained, save_pretrained, push_to_hub."""

import json
import logging
import os

import huggingface_hub
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers
from conftest import hf_weights
from conftest import tiny_config
from huggingface_hub import ModelCard
from safetensors.torch import save_file as torch_save_file

import bert_keras as bk
from bert_keras.checkpoints import hub
from bert_keras.checkpoints import reading as checkpoint_io
from bert_keras.errors import CheckpointError
from bert_keras.errors import CheckpointNotFoundError
from bert_keras.errors import ConfigError
from bert_keras.errors import UnsafeCheckpointError

INPUT_IDS = np.array([[2, 5, 7, 9, 1, 3, 4], [8, 6, 4, 2, 0, 0, 0]])
ATTENTION_MASK = (INPUT_IDS > 0).astype("int32")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test reaches the network: the Hub is only ever seen through a cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def assert_same_weights(model, other, keys=None):
    expected, actual = hf_weights(model), hf_weights(other)
    for key in keys or expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def torch_outputs(model, input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK):
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(input_ids),
            attention_mask=torch.tensor(attention_mask),
        )


def keras_outputs(model, input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK):
    return model({"input_ids": input_ids, "attention_mask": attention_mask})


def files_of(directory):
    return sorted(os.listdir(directory))


# --- Round trips --------------------------------------------------------------


def test_save_load_round_trip_is_bit_exact(tmp_path):
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    model = bk.BertForSequenceClassification(tiny_config(id2label=labels))
    written = model.save_pretrained(tmp_path)

    assert sorted(os.path.basename(path) for path in written) == [
        "config.json",
        "model.safetensors",
    ]
    assert files_of(tmp_path) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    with safetensors.safe_open(tmp_path / "model.safetensors", "np") as file:
        assert file.metadata() == {"format": "pt"}

    loaded, info = bk.BertForSequenceClassification.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert info == {
        "missing_keys": [],
        "unexpected_keys": [],
        "mismatched_keys": [],
        "error_msgs": [],
    }
    assert_same_weights(model, loaded)
    assert loaded.config.id2label == labels
    assert loaded.config.label2id == model.config.label2id


def test_two_saves_are_byte_identical(tmp_path):
    model = bk.BertForMaskedLM(tiny_config())
    model.save_pretrained(tmp_path / "a")
    model.save_pretrained(tmp_path / "b")
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (
            tmp_path / "b" / name
        ).read_bytes()


def test_sharded_save_and_load(tmp_path):
    model = bk.BertModel(tiny_config())
    model.save_pretrained(tmp_path, max_shard_size="20KB")

    names = files_of(tmp_path)
    shards = [name for name in names if name.startswith("model-")]
    assert len(shards) > 2 and "model.safetensors" not in names
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(model.hf_variables())
    assert set(index["weight_map"].values()) == set(shards)
    for shard in shards:
        assert (tmp_path / shard).stat().st_size <= 20_000 + 1_000  # + header

    loaded = bk.BertModel.from_pretrained(tmp_path)
    assert_same_weights(model, loaded)
    _, info = transformers.BertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]

    # Re-saving unsharded removes the old shards, which would shadow nothing
    # but confuse readers of the directory.
    model.save_pretrained(tmp_path)
    assert files_of(tmp_path) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("max_shard_size", ["big", 0, "-5MB", 1.5])
def test_bad_max_shard_size_is_refused(tmp_path, max_shard_size):
    model = bk.BertModel(tiny_config(num_hidden_layers=1))
    with pytest.raises(CheckpointError, match="max_shard_size"):
        model.save_pretrained(tmp_path, max_shard_size=max_shard_size)
    assert not tmp_path.exists() or files_of(tmp_path) == []


def test_save_into_the_directory_it_was_loaded_from(tmp_path):
    bk.BertModel(tiny_config()).save_pretrained(tmp_path)
    model = bk.BertModel.from_pretrained(tmp_path)
    variable, _ = model.hf_variables()["pooler.dense.bias"]
    variable.assign(np.full(variable.shape, 0.5, "float32"))
    model.save_pretrained(tmp_path)

    reloaded = bk.BertModel.from_pretrained(tmp_path)
    assert_same_weights(model, reloaded)
    assert files_of(tmp_path) == ["config.json", "model.safetensors"]


def test_failed_save_leaves_previous_files_intact(tmp_path, monkeypatch):
    model = bk.BertModel(tiny_config())
    model.save_pretrained(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in files_of(tmp_path)}

    real_save, calls = safetensors.numpy.save, []

    def broken_save(tensors, metadata=None):
        calls.append(1)
        if len(calls) == 2:  # the first shard's temporary file is written
            raise OSError("disk full")
        return real_save(tensors, metadata=metadata)

    monkeypatch.setattr(safetensors.numpy, "save", broken_save)
    variable, _ = model.hf_variables()["pooler.dense.bias"]
    variable.assign(np.ones(variable.shape, "float32"))
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path, max_shard_size="20KB")

    after = {name: (tmp_path / name).read_bytes() for name in files_of(tmp_path)}
    assert after == before  # no temp file left, nothing replaced


def test_safe_serialization_false_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="safe_serialization"):
        bk.BertModel(tiny_config()).save_pretrained(tmp_path, safe_serialization=False)


def test_save_with_tokenizer(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]
    tokenizer = transformers.BertTokenizerFast(
        vocab={token: i for i, token in enumerate(vocab)}
    )
    written = bk.BertModel(tiny_config()).save_pretrained(
        tmp_path / "out", tokenizer=tokenizer
    )
    names = {os.path.basename(path) for path in written}
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= names
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert reloaded("hello world")["input_ids"] == [2, 5, 6, 3]


# --- transformers compatibility ---------------------------------------------


@pytest.mark.parametrize(
    "name", ["BertModel", "BertForSequenceClassification", "BertForMaskedLM"]
)
def test_saved_directory_opens_in_transformers(tmp_path, name):
    model = getattr(bk, name)(tiny_config())
    model.save_pretrained(tmp_path)
    torch_model, info = getattr(transformers, name).from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    output_name = {"BertModel": "last_hidden_state"}.get(name, "logits")
    np.testing.assert_allclose(
        np.asarray(keras_outputs(model)[output_name]),
        torch_outputs(torch_model)[output_name].numpy(),
        atol=1e-5,
    )


def test_transformers_checkpoint_loads_with_same_outputs(tmp_path):
    torch.manual_seed(0)
    torch_model = transformers.BertForSequenceClassification(tiny_config()).eval()
    torch_model.save_pretrained(tmp_path)
    model, info = bk.BertForSequenceClassification.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert not any(info.values())
    np.testing.assert_allclose(
        np.asarray(keras_outputs(model)["logits"]),
        torch_outputs(torch_model).logits.numpy(),
        atol=1e-5,
    )


# --- Key rules -----------------------------------------------------------------


def test_base_checkpoint_into_task_model_reports_missing_head(tmp_path, caplog):
    base = bk.BertModel(tiny_config())
    base.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bert_keras"):
        model, info = bk.BertForSequenceClassification.from_pretrained(
            tmp_path, output_loading_info=True
        )
    assert info["missing_keys"] == ["classifier.bias", "classifier.weight"]
    assert info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    prefixed = {f"bert.{key}": value for key, value in hf_weights(base).items()}
    for key, value in hf_weights(model).items():
        if key.startswith("bert."):
            np.testing.assert_array_equal(value, prefixed[key], err_msg=key)
    assert "Some weights of BertForSequenceClassification were not initialized" in (
        caplog.text
    )
    assert "['classifier.bias', 'classifier.weight']" in caplog.text
    assert "You should probably TRAIN this model" in caplog.text


def test_task_checkpoint_into_base_model_reports_unexpected(tmp_path, caplog):
    task = bk.BertForSequenceClassification(tiny_config())
    task.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bert_keras"):
        model, info = bk.BertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert info["unexpected_keys"] == ["classifier.bias", "classifier.weight"]
    assert info["missing_keys"] == []
    for key, value in hf_weights(model).items():
        np.testing.assert_array_equal(
            value, hf_weights(task)[f"bert.{key}"], err_msg=key
        )
    assert "were not used when initializing BertModel" in caplog.text


def test_legacy_names_buffers_and_tied_decoder(tmp_path):
    """LayerNorm.gamma/beta, position_ids and a decoder standing in for the
    word embeddings, as in old TF-converted checkpoints."""
    source = transformers.BertForMaskedLM(tiny_config()).eval()
    state = {key: value.clone() for key, value in source.state_dict().items()}
    word_embeddings = state.pop("bert.embeddings.word_embeddings.weight")
    state["cls.predictions.decoder.weight"] = word_embeddings
    state["bert.embeddings.position_ids"] = torch.arange(64)[None]
    for key in [key for key in state if "LayerNorm" in key]:
        legacy = key.replace(".weight", ".gamma").replace(".bias", ".beta")
        state[legacy] = state.pop(key)
    torch_save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    source.config.save_pretrained(tmp_path)

    model, info = bk.BertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values())
    np.testing.assert_allclose(
        np.asarray(keras_outputs(model)["logits"]),
        torch_outputs(source).logits.numpy(),
        atol=1e-5,
    )


class UntiedMaskedLM(bk.BertForMaskedLM):
    """With tie_word_embeddings=False transformers keeps `cls.predictions.bias`
    and a live `cls.predictions.decoder.bias` apart: one variable, two keys."""

    @property
    def hf_tied_weights(self):
        return {}

    def hf_variables(self):
        variables = dict(super().hf_variables())
        bias = variables.pop("cls.predictions.bias")
        variables["cls.predictions.decoder.bias"] = bias
        variables["cls.predictions.bias"] = bias
        return variables


def test_variable_under_two_keys_loads_the_first_and_saves_both(tmp_path):
    config = tiny_config(tie_word_embeddings=False)
    torch_model = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():
        torch_model.cls.predictions.decoder.bias.normal_()  # the bias in use
    torch_model.save_pretrained(tmp_path / "hf")

    model, info = UntiedMaskedLM.from_pretrained(
        tmp_path / "hf", output_loading_info=True
    )
    assert not any(info.values())
    np.testing.assert_allclose(
        np.asarray(keras_outputs(model)["logits"]),
        torch_outputs(torch_model).logits.numpy(),
        atol=1e-5,
    )
    model.save_pretrained(tmp_path / "ours")
    reloaded, info = transformers.BertForMaskedLM.from_pretrained(
        tmp_path / "ours", output_loading_info=True
    )
    assert not any(info.values())
    torch.testing.assert_close(
        reloaded.cls.predictions.decoder.bias, torch_model.cls.predictions.decoder.bias
    )


def test_mismatched_sizes_raise_before_assigning(tmp_path):
    bk.BertForSequenceClassification(tiny_config(num_labels=2)).save_pretrained(
        tmp_path
    )
    with pytest.raises(CheckpointError) as error:
        bk.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    message = str(error.value)
    assert "classifier.weight: checkpoint shape (2, 32), model shape (5, 32)" in message
    assert "ignore_mismatched_sizes=True" in message


def test_ignore_mismatched_sizes_keeps_fresh_head(tmp_path, caplog):
    saved = bk.BertForSequenceClassification(tiny_config(num_labels=2))
    saved.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bert_keras"):
        model, info = bk.BertForSequenceClassification.from_pretrained(
            tmp_path,
            num_labels=5,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
        )
    assert info["mismatched_keys"] == [
        ("classifier.bias", (2,), (5,)),
        ("classifier.weight", (2, 32), (5, 32)),
    ]
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert model.hf_variables()["classifier.weight"][0].shape == (32, 5)
    encoder_keys = [key for key in hf_weights(saved) if key.startswith("bert.")]
    assert_same_weights(saved, model, encoder_keys)
    assert "shapes did not match" in caplog.text


# --- Config --------------------------------------------------------------------


def test_config_overrides(tmp_path):
    bk.BertForSequenceClassification(tiny_config(num_labels=2)).save_pretrained(
        tmp_path
    )
    model = bk.BertForSequenceClassification.from_pretrained(
        tmp_path,
        num_labels=3,
        ignore_mismatched_sizes=True,
        hidden_dropout_prob=0.0,
        output_hidden_states=True,
    )
    assert model.config.num_labels == 3
    assert model.config.hidden_dropout_prob == 0.0
    assert len(keras_outputs(model)["hidden_states"]) == 3

    labels = {0: "no", 1: "yes"}
    model = bk.BertForSequenceClassification.from_pretrained(tmp_path, id2label=labels)
    assert model.config.id2label == labels

    explicit = tiny_config(hidden_act="gelu_new", num_labels=2)
    model = bk.BertForSequenceClassification.from_pretrained(tmp_path, config=explicit)
    assert model.config.hidden_act == "gelu_new"
    assert explicit.name_or_path == ""  # the caller's config is not modified


def test_non_bert_and_remote_code_configs_are_refused(tmp_path):
    bk.BertModel(tiny_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())

    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ConfigError, match="gpt2"):
        bk.BertModel.from_pretrained(tmp_path)

    auto_map = {"AutoModel": "modeling_evil.EvilModel"}
    (tmp_path / "config.json").write_text(json.dumps({**config, "auto_map": auto_map}))
    with pytest.raises(UnsafeCheckpointError, match="never runs code"):
        bk.BertModel.from_pretrained(tmp_path, trust_remote_code=True)


# --- Weight files --------------------------------------------------------------


def test_no_weights_fails_before_building_the_model(tmp_path, monkeypatch):
    tiny_config().save_pretrained(tmp_path)
    (tmp_path / "notes.txt").write_text("no weights here")

    def must_not_build(*args, **kwargs):
        raise AssertionError("the model was built before the weights were found")

    monkeypatch.setattr(bk.BertModel, "__init__", must_not_build)
    with pytest.raises(CheckpointNotFoundError) as error:
        bk.BertModel.from_pretrained(tmp_path)
    assert "model.safetensors" in str(error.value)
    assert "notes.txt" in str(error.value)


def test_missing_directory_or_config(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=r"config\.json"):
        bk.BertModel.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointNotFoundError, match="directory"):
        bk.BertModel.from_pretrained(tmp_path / "model.safetensors")


def test_corrupt_safetensors_is_a_checkpoint_error(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        bk.BertModel.from_pretrained(tmp_path)


def test_pickle_refused_by_default_and_loaded_when_allowed(tmp_path):
    torch_model = transformers.BertModel(tiny_config()).eval()
    torch_model.config.save_pretrained(tmp_path)
    torch.save(torch_model.state_dict(), tmp_path / "pytorch_model.bin")

    with pytest.raises(UnsafeCheckpointError, match="allow_pickle=True"):
        bk.BertModel.from_pretrained(tmp_path)
    model, info = bk.BertModel.from_pretrained(
        tmp_path, allow_pickle=True, output_loading_info=True
    )
    assert not any(info.values())
    np.testing.assert_allclose(
        np.asarray(keras_outputs(model)["last_hidden_state"]),
        torch_outputs(torch_model).last_hidden_state.numpy(),
        atol=1e-5,
    )


def test_bfloat16_safetensors_load(tmp_path):
    torch_model = transformers.BertModel(tiny_config()).to(torch.bfloat16)
    torch_model.save_pretrained(tmp_path)
    with safetensors.safe_open(tmp_path / "model.safetensors", "np") as file:
        assert file.get_slice("pooler.dense.weight").get_dtype() == "BF16"

    model = bk.BertModel.from_pretrained(tmp_path)
    state = torch_model.state_dict()
    for key, (variable, transpose) in model.hf_variables().items():
        expected = state[key].float().numpy()
        actual = np.asarray(variable.numpy())
        np.testing.assert_array_equal(actual.T if transpose else actual, expected)

    # Kept in bfloat16 when asked, and saved back as bfloat16 for transformers.
    model = bk.BertModel.from_pretrained(tmp_path, dtype="bfloat16")
    variable, _ = model.hf_variables()["pooler.dense.bias"]
    assert variable.dtype == "bfloat16"
    model.save_pretrained(tmp_path / "again")
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    reloaded = transformers.BertModel.from_pretrained(tmp_path / "again")
    for key, value in reloaded.state_dict().items():
        if key in state:
            assert value.dtype == torch.bfloat16
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)


# --- Hub ----------------------------------------------------------------------


def fake_hub_cache(cache_dir, repo_id, source_dir):
    """Lays out `source_dir` as the cached snapshot of `repo_id` (main)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for name in os.listdir(source_dir):
        os.replace(source_dir / name, snapshot / name)
    return snapshot


def test_hub_id_loads_offline_from_the_cache(tmp_path):
    model = bk.BertForSequenceClassification(tiny_config())
    model.save_pretrained(tmp_path / "saved")
    fake_hub_cache(tmp_path / "cache", "someone/tiny-bert", tmp_path / "saved")

    loaded = bk.BertForSequenceClassification.from_pretrained(
        "someone/tiny-bert", cache_dir=tmp_path / "cache"
    )
    assert_same_weights(model, loaded)
    assert loaded.config.name_or_path == "someone/tiny-bert"


def test_unknown_hub_id_names_it(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as error:
        bk.BertModel.from_pretrained("nobody/no-such-bert", cache_dir=tmp_path)
    assert "'nobody/no-such-bert'" in str(error.value)
    assert "HF_HUB_OFFLINE" in str(error.value)
    with pytest.raises(CheckpointNotFoundError, match="valid Hub id"):
        bk.BertModel.from_pretrained(str(tmp_path / "no" / "such" / "dir"))


def test_hub_pickle_only_repo(tmp_path):
    torch_model = transformers.BertModel(tiny_config())
    (tmp_path / "saved").mkdir()
    torch_model.config.save_pretrained(tmp_path / "saved")
    torch.save(torch_model.state_dict(), tmp_path / "saved" / "pytorch_model.bin")
    fake_hub_cache(tmp_path / "cache", "someone/old-bert", tmp_path / "saved")

    with pytest.raises(UnsafeCheckpointError, match="allow_pickle=True"):
        bk.BertModel.from_pretrained("someone/old-bert", cache_dir=tmp_path / "cache")
    model = bk.BertModel.from_pretrained(
        "someone/old-bert", cache_dir=tmp_path / "cache", allow_pickle=True
    )
    np.testing.assert_array_equal(
        hf_weights(model)["pooler.dense.bias"],
        torch_model.state_dict()["pooler.dense.bias"].numpy(),
    )


def test_push_to_hub_uploads_one_commit(tmp_path, monkeypatch):
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        names = sorted(os.listdir(folder_path))
        card = ModelCard.load(os.path.join(folder_path, "README.md"))
        calls.append(("upload_folder", repo_id, names, card, kwargs))
        return "commit-info"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)

    bk.BertModel(tiny_config()).save_pretrained(tmp_path / "base")
    fake_hub_cache(tmp_path / "cache", "someone/tiny-bert", tmp_path / "base")
    model = bk.BertForSequenceClassification.from_pretrained(
        "someone/tiny-bert", cache_dir=tmp_path / "cache"
    )
    result = model.push_to_hub(
        "me/tiny-sst2",
        private=True,
        commit_message="Fine-tuned",
        license="apache-2.0",
        results={"accuracy": 0.9125},
    )

    assert result == "commit-info"
    assert [call[0] for call in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1] == "me/tiny-sst2" and calls[0][2]["private"] is True
    _, repo_id, names, card, kwargs = calls[1]
    assert repo_id == "me/tiny-sst2"
    assert names == ["README.md", "config.json", "model.safetensors"]
    assert kwargs["commit_message"] == "Fine-tuned"
    metadata = card.data.to_dict()
    assert metadata["library_name"] == "bert_keras"
    assert metadata["tags"] == ["bert", "keras", "tensorflow"]
    assert metadata["pipeline_tag"] == "text-classification"
    assert metadata["base_model"] == "someone/tiny-bert"
    assert metadata["license"] == "apache-2.0"
    assert "| accuracy | 0.9125 |" in card.text
    assert 'BertForSequenceClassification.from_pretrained("me/tiny-sst2")' in card.text


def test_model_card_without_pushing(tmp_path):
    model = bk.BertForQuestionAnswering(tiny_config("BertForQuestionAnswering"))
    card = hub.model_card(
        model,
        datasets=["rajpurkar/squad"],
        training_hyperparameters={"learning_rate": 3e-5, "epochs": 2},
        tags=["squad"],
    )
    card.save(tmp_path / "README.md")
    metadata = ModelCard.load(tmp_path / "README.md").data.to_dict()
    assert metadata["pipeline_tag"] == "question-answering"
    assert metadata["tags"] == ["bert", "keras", "tensorflow", "squad"]
    assert "base_model" not in metadata  # built from scratch: no base model
    assert "| learning_rate | 3e-05 |" in card.text


def test_find_weight_files_prefers_safetensors(tmp_path):
    bk.BertModel(tiny_config(num_hidden_layers=1)).save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"never read")
    assert checkpoint_io.find_weight_files(tmp_path) == [
        str(tmp_path / "model.safetensors")
    ]


def test_hub_repo_without_weights(tmp_path):
    (tmp_path / "saved").mkdir()
    tiny_config().save_pretrained(tmp_path / "saved")
    fake_hub_cache(tmp_path / "cache", "someone/config-only", tmp_path / "saved")
    with pytest.raises(CheckpointNotFoundError, match="'someone/config-only'"):
        bk.BertModel.from_pretrained(
            "someone/config-only", cache_dir=tmp_path / "cache"
        )
