"""Hub and evaluation (issue 7): offline loads, token hygiene, every example.

Case 13: offline with sockets failing, a cached model loads without a single
network call; a partly cached one names the missing file.
Case 14: `push_to_hub` makes one commit of config, weights, tokenizer and
card, and a token never shows up in a log, exception, repr, file or card.
Case 15: 1,001 evaluation examples at batch 32 give 1,001 predictions, in
GLUE and in SQuAD.
"""

import json
import logging
import os
import socket
import traceback

import huggingface_hub
import huggingface_hub.constants
import numpy as np
import pytest
from conftest import tiny_config

import bert_keras as bk
from tests.test_glue_cli import write_glue_dir
from tests.test_hub import fake_hub_cache

SECRET = "hf_TESTSECRETabcdefghijklmnopqrstuvwxyz0123"


@pytest.fixture
def no_network(monkeypatch):
    """HF_HUB_OFFLINE=1, and any socket use is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def constructions(monkeypatch, cls):
    built = []
    original = cls.__init__

    def init(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", init)
    return built


def test_a_cached_model_loads_offline_without_touching_the_network(
    tmp_path, no_network, tokenizer
):
    model = bk.BertForSequenceClassification(tiny_config())
    model.save_pretrained(tmp_path / "saved", tokenizer=tokenizer)
    fake_hub_cache(tmp_path / "cache", "someone/tiny-bert", tmp_path / "saved")

    loaded = bk.BertForSequenceClassification.from_pretrained(
        "someone/tiny-bert", cache_dir=tmp_path / "cache"
    )
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert no_network == []


@pytest.mark.parametrize("missing", ["model.safetensors", "shard", "config.json"])
def test_a_partly_cached_model_names_the_missing_file(
    tmp_path, no_network, monkeypatch, missing
):
    model = bk.BertModel(tiny_config())
    shard = missing == "shard"
    model.save_pretrained(tmp_path / "saved", max_shard_size="20KB" if shard else None)
    names = sorted(os.listdir(tmp_path / "saved"))
    if shard:
        missing = [n for n in names if n.startswith("model-00002")][0]
    os.remove(tmp_path / "saved" / missing)
    fake_hub_cache(tmp_path / "cache", "someone/part-bert", tmp_path / "saved")
    built = constructions(monkeypatch, bk.BertModel)

    with pytest.raises((bk.CheckpointNotFoundError, bk.CheckpointError)) as error:
        bk.BertModel.from_pretrained("someone/part-bert", cache_dir=tmp_path / "cache")
    assert missing in str(error.value)
    assert "someone/part-bert" in str(error.value) or "part-bert" in str(error.value)
    # Refused before a model was built: nothing half-loaded exists.
    assert built == []
    assert no_network == []


def test_push_to_hub_is_one_commit_and_never_shows_the_token(
    tmp_path, monkeypatch, caplog, tokenizer
):
    commits = []

    def create_repo(self, repo_id, **kwargs):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {}
        for name in sorted(os.listdir(folder_path)):
            with open(os.path.join(folder_path, name), "rb") as handle:
                files[name] = handle.read()
        commits.append((repo_id, files, self.token))
        if kwargs.get("commit_message") == "fail":
            raise OSError("upload refused by the server")
        return "commit-info"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    caplog.set_level(logging.DEBUG)

    model = bk.BertForSequenceClassification(tiny_config())
    result = model.push_to_hub(
        "me/tiny", tokenizer=tokenizer, token=SECRET, results={"accuracy": 0.5}
    )
    assert result == "commit-info"
    assert len(commits) == 1
    repo_id, files, used_token = commits[0]
    assert used_token == SECRET  # given to huggingface_hub, and only there
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= set(
        files
    )
    assert not any(SECRET.encode() in content for content in files.values())

    with pytest.raises(OSError) as error:
        model.push_to_hub("me/tiny", token=SECRET, commit_message="fail")
    shown = "".join(traceback.format_exception(error.value))
    everything = [shown, caplog.text, repr(model), str(model.config)]
    everything.append(model.config.to_json_string())
    assert not any(SECRET in text for text in everything)


@pytest.mark.slow
def test_glue_cli_push_keeps_the_token_out_of_outputs(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    from tasks import glue

    uploaded = []
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "create_repo",
        lambda self, repo_id, **kw: huggingface_hub.RepoUrl(f"https://hf.co/{repo_id}"),
    )
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "upload_folder",
        lambda self, **kw: uploaded.append(sorted(os.listdir(kw["folder_path"]))),
    )
    (tmp_path / "glue_data").mkdir()
    data = write_glue_dir(tmp_path / "glue_data")
    out = tmp_path / "out"
    glue.main(
        ["--task", "sst2", "--model", tiny_checkpoint, "--data-dir", data,
         "--output-dir", str(out), "--epochs", "1", "--batch-size", "8",
         "--max-seq-length", "32", "--verbose", "0", "--push-to-hub", "me/sst2"]
    )  # fmt: skip
    assert len(uploaded) == 1 and "model.safetensors" in uploaded[0]
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    for name in os.listdir(out):
        if os.path.isfile(out / name):
            assert SECRET.encode() not in (out / name).read_bytes(), name


# --- Case 15: every evaluation example gets a prediction --------------------------


@pytest.mark.slow
def test_glue_gives_one_prediction_per_dev_example(tiny_checkpoint, tmp_path):
    from tasks import glue

    data = tmp_path / "glue_data"
    data.mkdir()
    write_glue_dir(data)
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "dull", "warm", "a", "the", "very"]
    rows = [
        " ".join(rng.choice(words, size=rng.integers(1, 20))) + f"\t{i % 2}"
        for i in range(1001)
    ]
    (data / "SST-2" / "dev.tsv").write_text(
        "sentence\tlabel\n" + "\n".join(rows) + "\n"
    )
    results = glue.main(
        ["--task", "sst2", "--model", tiny_checkpoint, "--data-dir", str(data),
         "--output-dir", str(tmp_path / "out"), "--epochs", "1", "--batch-size", "8",
         "--eval-batch-size", "32", "--max-seq-length", "32", "--verbose", "0"]
    )  # fmt: skip
    assert results["dev_examples"] == 1001
    lines = (tmp_path / "out" / "predictions.tsv").read_text().splitlines()
    assert len(lines) == 1 + 1001
    assert [int(line.split("\t")[0]) for line in lines[1:]] == list(range(1001))


@pytest.mark.slow
def test_squad_gives_one_prediction_per_question(tiny_checkpoint, tmp_path):
    from tasks import squad

    rng = np.random.default_rng(0)
    base = "The Eiffel Tower is in Paris. It was finished in 1889 by Gustave Eiffel. "
    paragraphs = []
    for p in range(91):
        # Some contexts need several windows, so features outnumber questions.
        context = base * int(rng.integers(1, 6))
        qas = [
            {"id": f"q{p}-{i}", "question": "Where is the tower?",
             "answers": [{"text": "Paris", "answer_start": 23}]}
            for i in range(11)
        ]  # fmt: skip
        paragraphs.append({"context": context, "qas": qas})
    path = tmp_path / "dev.json"
    path.write_text(
        json.dumps(
            {"version": "1.1", "data": [{"title": "T", "paragraphs": paragraphs}]}
        )
    )
    results = squad.main(
        ["--model", tiny_checkpoint, "--output-dir", str(tmp_path / "out"),
         "--eval-file", str(path), "--eval-batch-size", "32",
         "--max-seq-length", "64", "--doc-stride", "32", "--max-query-length", "16",
         "--verbose", "0"]
    )  # fmt: skip
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(predictions) == 1001 == results["eval_examples"]
    assert set(predictions) == {f"q{p}-{i}" for p in range(91) for i in range(11)}
    assert results["eval_windows"] > 1001
