"""transformers v4's Keras callbacks: KerasMetricCallback and PushToHubCallback.

Uploads never reach the network: `HfApi.create_repo` and `HfApi.upload_folder`
are replaced (as in test_hub.py) by a fake Hub that copies every uploaded
folder aside, so a test reads exactly what would have been committed.
"""

import logging
import os
import shutil
import threading

import huggingface_hub
import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
import transformers
from conftest import tiny_config
from huggingface_hub import ModelCard

import bert_keras as bk
from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.training.callbacks import ResumableCheckpoint
from bert_keras.training.hf_callbacks import KerasMetricCallback
from bert_keras.training.hf_callbacks import PushToHubCallback
from bert_keras.training.hf_callbacks import gather_batches

SEQ = 7


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def classification_data(rows=16, seed=0):
    """Features with a learnable label (the second token's id mod 3)."""
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(1, 99, size=(rows, SEQ)).astype("int32")
    features = {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}
    return features, (input_ids[:, 1] % 3).astype("int32")


def with_labels(features, labels):
    return {**features, "labels": labels}


def classifier(seed=0):
    keras.utils.set_random_seed(seed)
    model = bk.BertForSequenceClassification(tiny_config())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def train_dataset(rows=16, batch=4):
    features, labels = classification_data(rows)
    return tf.data.Dataset.from_tensor_slices(with_labels(features, labels)).batch(
        batch
    )


def accuracy(eval_prediction):
    logits, labels = eval_prediction
    return {"dev_accuracy": float(np.mean(np.argmax(logits, -1) == labels))}


def small_tokenizer():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]
    return transformers.BertTokenizerFast(
        vocab={token: i for i, token in enumerate(vocab)}
    )


def run_once(callback, model, logs=None):
    """One epoch end, without training."""
    callback.set_model(model)
    logs = {} if logs is None else logs
    callback.on_epoch_end(0, logs)
    return logs


# --- KerasMetricCallback -----------------------------------------------------


@pytest.mark.slow
def test_metric_reaches_the_logs_and_early_stopping():
    features, labels = classification_data(rows=10, seed=1)
    eval_data = tf.data.Dataset.from_tensor_slices(
        with_labels(features, labels)  # v4's labels inside the features
    ).batch(4)
    seen = []

    def metric_fn(eval_prediction):
        seen.append(eval_prediction)
        return accuracy(eval_prediction)

    # An accuracy can never beat 1.01: with patience 1 this stops after epoch
    # 2 of 5 only if the metric reaches EarlyStopping (a missing one never stops).
    stopping = keras.callbacks.EarlyStopping(
        monitor="dev_accuracy", mode="max", baseline=1.01, patience=1
    )
    model = classifier()
    callbacks = [KerasMetricCallback(metric_fn, eval_data), stopping]
    history = model.fit(train_dataset(), epochs=5, callbacks=callbacks, verbose=0)

    assert len(history.epoch) == 2 and stopping.stopped_epoch == 1
    assert len(history.history["dev_accuracy"]) == 2
    logits = model.predict(features, verbose=0)["logits"]
    expected = float(np.mean(np.argmax(logits, -1) == labels))
    assert history.history["dev_accuracy"][-1] == pytest.approx(expected, abs=1e-9)
    predictions, label_ids = seen[-1]  # unpacks as v4's tuple
    assert seen[-1].predictions is predictions and seen[-1].label_ids is label_ids
    np.testing.assert_allclose(predictions, logits, atol=1e-5)
    np.testing.assert_array_equal(label_ids, labels)


@pytest.mark.parametrize("layout", ["pairs", "pairs_with_weights", "numpy_pairs"])
def test_labels_beside_the_features(layout):
    features, labels = classification_data(rows=10, seed=1)
    if layout == "pairs":
        eval_data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(4)
    elif layout == "pairs_with_weights":
        weights = np.ones(10, "float32")
        eval_data = tf.data.Dataset.from_tensor_slices(
            (features, labels, weights)
        ).batch(4)
    else:
        eval_data = (features, labels)  # batched by the callback
    model = classifier()
    logs = run_once(KerasMetricCallback(accuracy, eval_data, batch_size=4), model)
    logits = model.predict(features, verbose=0)["logits"]
    expected = float(np.mean(np.argmax(logits, -1) == labels))
    assert logs == {"dev_accuracy": pytest.approx(expected, abs=1e-9)}


def token_batches(config):
    """Three batches padded to different lengths (5, 8, 4); -100 on padding."""
    rng = np.random.default_rng(3)
    batches = []
    for rows, length in ((2, 5), (3, 8), (1, 4)):
        input_ids = rng.integers(1, 99, size=(rows, length)).astype("int32")
        mask = np.ones_like(input_ids)
        mask[0, length - 2 :] = 0  # the first row of each batch is shorter
        input_ids[mask == 0] = 0
        labels = np.where(mask == 1, input_ids % config.num_labels, -100)
        batches.append(
            {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
        )
    return batches


@pytest.mark.slow
def test_token_classification_batches_of_different_lengths():
    config = tiny_config()
    batches = token_batches(config)
    dataset = None
    for batch in batches:
        part = tf.data.Dataset.from_tensor_slices(batch).batch(len(batch["labels"]))
        dataset = part if dataset is None else dataset.concatenate(part)
    seen = []

    def token_accuracy(eval_prediction):
        logits, labels = eval_prediction
        seen.append((logits, labels))
        real = labels != -100
        hits = np.argmax(logits, -1)[real] == labels[real]
        return {"token_accuracy": float(hits.mean())}

    keras.utils.set_random_seed(0)
    model = bk.BertForTokenClassification(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(
        dataset,
        epochs=2,
        callbacks=[KerasMetricCallback(token_accuracy, dataset)],
        verbose=0,
    )

    logits, labels = seen[-1]
    assert logits.shape == (6, 8, config.num_labels) and labels.shape == (6, 8)
    # Batch 1 (rows 0-1) is 5 long, batch 3 (row 5) 4 long: the rest is -100.
    assert np.all(logits[:2, 5:] == -100) and np.all(labels[:2, 5:] == -100)
    assert np.all(logits[5:, 4:] == -100) and np.all(labels[5:, 4:] == -100)
    hits = []
    for batch in batches:
        features = {k: v for k, v in batch.items() if k != "labels"}
        batch_logits = model.predict(features, verbose=0)["logits"]
        real = batch["labels"] != -100
        hits.append(np.argmax(batch_logits, -1)[real] == batch["labels"][real])
    expected = float(np.concatenate(hits).mean())
    assert history.history["token_accuracy"][-1] == pytest.approx(expected, abs=1e-9)


def test_gather_batches_pads_nested_structures():
    joined = gather_batches(
        [
            {"a": np.ones((2, 3), "float32"), "b": [np.zeros(2), np.ones((2, 1, 2))]},
            {"a": np.zeros((1, 5), "float32"), "b": [np.ones(1), np.ones((1, 2, 1))]},
        ]
    )
    assert joined["a"].shape == (3, 5) and joined["a"].dtype == np.float32
    np.testing.assert_array_equal(joined["a"][:2, 3:], -100)
    np.testing.assert_array_equal(joined["a"][2], 0)
    np.testing.assert_array_equal(joined["b"][0], [0, 0, 1])
    assert joined["b"][1].shape == (3, 2, 2)
    np.testing.assert_array_equal(joined["b"][1][:2, 1, :], -100)
    np.testing.assert_array_equal(joined["b"][1][2, :, 1], -100)
    with pytest.raises(InputError, match="different ranks"):
        gather_batches([np.ones((2, 3)), np.ones(2)])


def test_label_cols_output_cols_and_several_outputs():
    features, labels = classification_data(rows=6)
    data = {**features, "gold": labels}
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(4)
    model = bk.BertForSequenceClassification(tiny_config(output_hidden_states=True))
    seen = []

    def keep(eval_prediction):
        seen.append(eval_prediction)
        return {"seen": 1.0}

    run_once(KerasMetricCallback(keep, dataset, label_cols=["gold"]), model)
    predictions, gold = seen[-1]
    assert sorted(predictions) == ["hidden_states", "logits"]
    assert len(predictions["hidden_states"]) == 3
    assert predictions["hidden_states"][0].shape == (6, SEQ, 32)
    np.testing.assert_array_equal(gold, labels)

    callback = KerasMetricCallback(
        keep, dataset, label_cols=["gold"], output_cols="logits"
    )
    run_once(callback, model)
    assert seen[-1].predictions.shape == (6, 3)

    callback = KerasMetricCallback(keep, dataset, label_cols="gold", output_cols=["x"])
    with pytest.raises(InputError, match=r"output_cols \['x'\].*'logits'"):
        run_once(callback, model)


def test_question_answering_labels_are_found_in_the_features():
    features, _ = classification_data(rows=5)
    data = {**features, "start_positions": np.arange(5), "end_positions": np.ones(5)}
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(2)
    seen = []
    callback = KerasMetricCallback(
        lambda p: seen.append(p) or {"n": float(len(p.label_ids))}, dataset
    )
    model = bk.BertForQuestionAnswering(tiny_config("BertForQuestionAnswering"))
    logs = run_once(callback, model)
    assert logs == {"n": 2.0}
    predictions, labels = seen[-1]
    assert sorted(predictions) == ["end_logits", "start_logits"]
    np.testing.assert_array_equal(labels["start_positions"], np.arange(5))


def test_metrics_of_the_same_name_replace_the_logs_with_a_warning(caplog):
    features, labels = classification_data(rows=4)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(4)
    callback = KerasMetricCallback(lambda p: {"accuracy": np.float32(0.25)}, dataset)
    with caplog.at_level(logging.WARNING, logger="bert_keras"):
        logs = run_once(callback, classifier(), logs={"accuracy": 0.9})
    assert logs == {"accuracy": 0.25} and type(logs["accuracy"]) is float
    assert "['accuracy']" in caplog.text and "rename" in caplog.text


def test_metric_callback_refuses_bad_arguments():
    features, labels = classification_data(rows=4)
    pairs = tf.data.Dataset.from_tensor_slices((features, labels)).batch(2)
    with pytest.raises(ConfigError, match="metric_fn=.*accuracy"):
        KerasMetricCallback("accuracy", pairs)
    with pytest.raises(ConfigError, match="encoders.*predict_with_generate=True"):
        KerasMetricCallback(accuracy, pairs, predict_with_generate=True)
    with pytest.raises(ConfigError, match="batch_size=None"):
        KerasMetricCallback(accuracy, (features, labels))
    with pytest.raises(ConfigError, match="label_cols"):
        KerasMetricCallback(accuracy, pairs, label_cols=[])
    features_only = tf.data.Dataset.from_tensor_slices(features).batch(2)
    with pytest.raises(InputError, match="cannot find the labels.*attention_mask"):
        KerasMetricCallback(accuracy, features_only)
    with pytest.raises(InputError, match=r"label_cols \['gold'\]"):
        KerasMetricCallback(accuracy, features_only, label_cols=["gold"])
    # Declared labels of another model: found at fit time, by the model.
    with_positions = tf.data.Dataset.from_tensor_slices(
        {**features, "start_positions": labels, "end_positions": labels}
    ).batch(2)
    callback = KerasMetricCallback(accuracy, with_positions)
    with pytest.raises(InputError, match=r"label columns \['labels'\]"):
        callback.set_model(classifier())
    callback = KerasMetricCallback(lambda p: 0.5, pairs)
    with pytest.raises(ConfigError, match="must return a dict.*float: 0.5"):
        run_once(callback, classifier())


# --- PushToHubCallback ---------------------------------------------------------


class FakeHub:
    """Stands in for the Hub: records repos and keeps a copy of every upload."""

    def __init__(self, root):
        self.root = root
        self.repos = []
        self.uploads = []
        self.gate = None  # an Event every upload waits for, when set
        self.failures = 0  # how many uploads fail first

    def install(self, monkeypatch):
        hub = self

        def create_repo(api, repo_id, **kwargs):
            hub.repos.append((repo_id, kwargs, api.token))
            full = repo_id if "/" in repo_id else f"me/{repo_id}"
            return huggingface_hub.RepoUrl(f"https://huggingface.co/{full}")

        def upload_folder(api, *, repo_id, folder_path, commit_message, **kwargs):
            if hub.gate is not None:
                assert hub.gate.wait(60)
            if hub.failures:
                hub.failures -= 1
                raise OSError("the Hub is down")
            copy = hub.root / str(len(hub.uploads))
            shutil.copytree(folder_path, copy)
            files = sorted(
                os.path.relpath(os.path.join(root, name), copy)
                for root, _, names in os.walk(copy)
                for name in names
            )
            hub.uploads.append(
                {
                    "repo_id": repo_id,
                    "message": commit_message,
                    "files": files,
                    "copy": copy,
                    "main_thread": threading.current_thread()
                    is threading.main_thread(),
                    "kwargs": kwargs,
                }
            )
            return "commit-info"

        monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
        monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)

    def messages(self):
        return [upload["message"] for upload in self.uploads]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub")
    fake.install(monkeypatch)
    return fake


class EpochSpy(keras.callbacks.Callback):
    """Reads output_dir's weights after the callbacks before it ran."""

    def __init__(self, directory, action=None):
        super().__init__()
        self.directory, self.action, self.weights = directory, action, []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append((self.directory / "model.safetensors").read_bytes())
        if self.action:
            self.action(epoch)


def assert_no_local_path(directory, *paths):
    for root, _, names in os.walk(directory):
        for name in names:
            data = open(os.path.join(root, name), "rb").read()  # noqa: SIM115
            for path in paths:
                assert str(path).encode() not in data, (name, path)


@pytest.mark.slow
def test_push_saves_every_epoch_and_uploads_in_the_background(tmp_path, hub):
    model = classifier()
    out = tmp_path / "tiny-sst2"
    features, labels = classification_data(rows=8, seed=1)
    eval_data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(4)
    push = PushToHubCallback(out, tokenizer=small_tokenizer(), license="apache-2.0")
    spy = EpochSpy(out)
    history = model.fit(
        train_dataset(),
        epochs=2,
        callbacks=[KerasMetricCallback(accuracy, eval_data), push, spy],
        verbose=0,
    )

    assert hub.repos == [("tiny-sst2", {"exist_ok": True}, None)]
    assert push.hub_model_id == "me/tiny-sst2"
    messages = hub.messages()
    # The epoch-2 upload is skipped only if epoch 1's was still running then.
    assert messages[0] == "Training in progress epoch 1"
    assert messages[-1] == "End of training"
    assert set(messages[1:-1]) <= {"Training in progress epoch 2"}
    assert [upload["main_thread"] for upload in hub.uploads[:-1]] == [False] * (
        len(messages) - 1
    )
    assert hub.uploads[-1]["main_thread"]  # the last one is awaited
    assert {upload["repo_id"] for upload in hub.uploads} == {"me/tiny-sst2"}

    assert len(spy.weights) == 2 and spy.weights[0] != spy.weights[1]
    first = hub.uploads[0]["copy"] / "model.safetensors"
    assert first.read_bytes() == spy.weights[0]
    final = hub.uploads[-1]
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(
        final["files"]
    )
    assert not any(name.startswith(".") for name in os.listdir(out))  # no snapshot
    assert not any("/." in "/" + name for name in final["files"])
    assert_no_local_path(final["copy"], tmp_path, os.getcwd())

    card = ModelCard.load(final["copy"] / "README.md")
    assert card.data.license == "apache-2.0"
    assert card.data.pipeline_tag == "text-classification"
    accuracy_row = f"| dev_accuracy | {history.history['dev_accuracy'][-1]:.4g} |"
    assert accuracy_row in card.text
    assert "| optimizer | Adam |" in card.text and "| epochs | 2 |" in card.text
    assert 'from_pretrained("me/tiny-sst2")' in card.text

    expected = model.predict(features, verbose=0)["logits"]
    for directory in (out, final["copy"]):
        torch_model, info = transformers.BertForSequenceClassification.from_pretrained(
            directory, output_loading_info=True
        )
        assert not any(info.values())
        with torch.no_grad():
            logits = torch_model.eval()(
                **{k: torch.as_tensor(v) for k, v in features.items()}
            ).logits
        np.testing.assert_allclose(logits.numpy(), expected, atol=1e-5)
    reloaded = transformers.AutoTokenizer.from_pretrained(final["copy"])
    assert reloaded("hello world")["input_ids"] == [2, 5, 6, 3]


@pytest.mark.slow
def test_saves_go_on_while_an_upload_runs_and_the_last_one_is_pushed(tmp_path, hub):
    hub.gate = threading.Event()
    out = tmp_path / "run"
    push = PushToHubCallback(out, hub_model_id="team/run", hub_token="hf_secret")
    # After the epoch-2 save, the epoch-1 upload is still held at the gate.
    spy = EpochSpy(out, action=lambda epoch: epoch == 1 and hub.gate.set())
    model = classifier()
    model.fit(train_dataset(), epochs=2, callbacks=[push, spy], verbose=0)

    assert hub.repos == [("team/run", {"exist_ok": True}, "hf_secret")]
    assert hub.messages() == ["Training in progress epoch 1", "End of training"]
    # The held upload still sent epoch 1's files, saved over since.
    uploaded = [
        (upload["copy"] / "model.safetensors").read_bytes() for upload in hub.uploads
    ]
    assert uploaded == [spy.weights[0], spy.weights[1]]
    assert spy.weights[0] != spy.weights[1]


@pytest.mark.slow
def test_checkpoint_saves_a_resumable_training_state(tmp_path, hub, caplog):
    hub.failures = 1  # the epoch-1 upload fails: reported, and the end retries
    out = tmp_path / "out"
    model = classifier()
    push = PushToHubCallback(out, checkpoint=True)
    with caplog.at_level(logging.WARNING, logger="bert_keras"):
        model.fit(train_dataset(), epochs=2, callbacks=[push], verbose=0)

    assert "Uploading to me/out failed (OSError: the Hub is down)" in caplog.text
    assert hub.messages()[-1] == "End of training"
    assert not any(name.startswith(".") for name in os.listdir(out))

    assert os.listdir(out / "checkpoint") == ["epoch-000002"]
    final = hub.uploads[-1]
    assert "checkpoint/epoch-000002/model.weights.h5" in final["files"]
    assert final["kwargs"] == {"delete_patterns": ["checkpoint/*"]}

    resumed = classifier(seed=1)
    state = ResumableCheckpoint(final["copy"] / "checkpoint")
    history = resumed.fit(train_dataset(), epochs=2, callbacks=[state], verbose=0)
    assert state.restored_epoch == 2 and history.epoch == []
    assert int(resumed.optimizer.iterations.numpy()) == 8
    for ours, theirs in zip(resumed.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.slow
def test_steps_strategy_saves_every_save_steps_batches(tmp_path, hub):
    out = tmp_path / "out"
    saved = []

    class BatchSpy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            saved.append((out / "config.json").exists())

    push = PushToHubCallback(out, save_strategy="steps", save_steps=2)
    classifier().fit(
        train_dataset(rows=20), epochs=1, callbacks=[push, BatchSpy()], verbose=0
    )
    assert saved == [False, True, True, True, True]
    messages = hub.messages()
    assert messages[0] == "Training in progress steps 2"
    assert messages[-1] == "End of training"
    assert set(messages[1:-1]) <= {"Training in progress steps 4"}


@pytest.mark.slow
def test_no_strategy_pushes_once_with_v4_card_arguments(tmp_path, hub):
    from transformers.trainer_utils import IntervalStrategy

    push = PushToHubCallback(
        tmp_path / "out",
        save_strategy=IntervalStrategy.NO,
        finetuned_from="google-bert/bert-base-uncased",
        dataset_tags="nyu-mll/glue",
        dataset="GLUE SST-2",
        tasks="text-classification",
        language="en",
    )
    classifier().fit(train_dataset(), epochs=1, callbacks=[push], verbose=0)
    assert hub.messages() == ["End of training"]
    card = ModelCard.load(hub.uploads[0]["copy"] / "README.md")
    metadata = card.data.to_dict()
    assert metadata["base_model"] == "google-bert/bert-base-uncased"
    assert metadata["datasets"] == ["nyu-mll/glue"]
    assert metadata["language"] == "en"
    assert "text-classification" in metadata["tags"]
    assert "| dataset | GLUE SST-2 |" in card.text


def test_push_callback_refuses_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="save_strategy='sometimes'"):
        PushToHubCallback(tmp_path, save_strategy="sometimes")
    for steps in (None, 0, 2.5, True):
        with pytest.raises(ConfigError, match="positive integer save_steps"):
            PushToHubCallback(tmp_path, save_strategy="steps", save_steps=steps)
    with pytest.raises(ConfigError, match="checkpoint=True.*'steps'"):
        PushToHubCallback(
            tmp_path, save_strategy="steps", save_steps=2, checkpoint=True
        )
    with pytest.raises(
        ConfigError, match=r"unknown model-card arguments \['licence'\]"
    ):
        PushToHubCallback(tmp_path, licence="mit")
    with pytest.raises(ConfigError, match="hub_model_id='a/b/c'"):
        PushToHubCallback(tmp_path, hub_model_id="a/b/c")
    callback = PushToHubCallback(tmp_path / "out")
    callback.set_model(keras.Sequential([keras.layers.Dense(1)]))
    with pytest.raises(ConfigError, match="not one.*Sequential"):
        callback.on_train_begin()
