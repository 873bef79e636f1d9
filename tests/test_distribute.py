"""Strategy plumbing that runs in one process: names, chief, outputs, errors.

The multi-worker runs themselves are in tests/test_multiworker.py.
"""

import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import bert_keras as bk
from bert_keras.training import distribute
from bert_keras.training.inputs import graph_errors_as_input_errors
from bert_keras.training.metrics import GlobalBatchLoss
from bert_keras.training.metrics import GlobalMean


def fake_strategy(jobs, task_type, task_id):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(jobs), task_type=task_type, task_id=task_id
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


TWO_WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
WITH_CHIEF = {"chief": ["127.0.0.1:0"], "worker": ["127.0.0.1:1"]}


@pytest.mark.parametrize(
    "jobs, task_type, task_id, chief",
    [
        (TWO_WORKERS, "worker", 0, True),
        (TWO_WORKERS, "worker", 1, False),
        (WITH_CHIEF, "chief", 0, True),
        (WITH_CHIEF, "worker", 0, False),
        ({**WITH_CHIEF, "evaluator": ["127.0.0.1:9"]}, "evaluator", 0, False),
    ],
)
def test_the_chief_is_the_chief_task_or_else_worker_0(jobs, task_type, task_id, chief):
    strategy = fake_strategy(jobs, task_type, task_id)
    assert distribute.is_chief(strategy) is chief
    assert distribute.worker_count(strategy) == 2


def test_one_process_is_its_own_chief():
    for name in ("default", "mirrored"):
        strategy = bk.make_strategy(name)
        assert distribute.is_chief(strategy)
        assert distribute.worker_count(strategy) == 1


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match="default, mirrored, multiworker, tpu"):
        bk.make_strategy("horovod")


@pytest.mark.parametrize("value", ["", "{not json"])
def test_multiworker_needs_a_valid_tf_config(monkeypatch, value):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        bk.make_strategy("multiworker")


def test_tpu_strategy_connects_initializes_then_builds(monkeypatch):
    calls = []

    class Resolver:
        def __init__(self, tpu=None):
            calls.append(("resolve", tpu))

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Resolver)
    monkeypatch.setattr(
        tf.config, "experimental_connect_to_cluster", lambda r: calls.append("connect")
    )
    monkeypatch.setattr(
        tf.tpu.experimental, "initialize_tpu_system", lambda r: calls.append("init")
    )
    monkeypatch.setattr(
        tf.distribute, "TPUStrategy", lambda r: calls.append("strategy") or "tpu"
    )
    assert bk.make_strategy("tpu", tpu="grpc://10.0.0.2:8470") == "tpu"
    assert calls == [("resolve", "grpc://10.0.0.2:8470"), "connect", "init", "strategy"]


def test_tpu_strategy_without_a_tpu_says_what_to_do():
    with pytest.raises(ValueError, match="found no TPU.*--tpu NAME"):
        bk.make_strategy("tpu")


def test_glue_cli_refuses_a_missing_tpu_before_any_work(tmp_path):
    from tasks import glue

    argv = ["--task", "sst2", "--model", "none", "--output-dir", str(tmp_path / "o")]
    with pytest.raises(ValueError, match="found no TPU"):
        glue.main([*argv, "--strategy", "tpu"])
    assert not (tmp_path / "o").exists()


def test_other_workers_write_to_a_directory_that_is_removed(tmp_path):
    other = fake_strategy(TWO_WORKERS, "worker", 1)
    with pytest.raises(RuntimeError):
        with distribute.output_directory(str(tmp_path / "out"), other) as out:
            assert out != str(tmp_path / "out") and os.path.isdir(out)
            open(os.path.join(out, "file"), "w").close()
            raise RuntimeError("the run fails")
    assert not os.path.exists(out)
    assert not (tmp_path / "out").exists()
    chief = fake_strategy(TWO_WORKERS, "worker", 0)
    with distribute.output_directory(str(tmp_path / "out"), chief) as out:
        assert out == str(tmp_path / "out")


def test_a_failed_collective_becomes_worker_lost_with_the_way_to_resume():
    strategy = fake_strategy(TWO_WORKERS, "worker", 0)
    message = (
        "Collective ops is aborted by: Error reported from /job:worker/task:1: "
        "The following tasks are unhealthy (stopped sending heartbeats):\n"
        "/job:worker/replica:0/task:1\nThe tasks have crashed."
    )
    with pytest.raises(bk.WorkerLostError) as caught:
        with distribute.peer_errors_as_worker_lost(strategy, "out/backup"):
            raise tf.errors.UnavailableError(None, None, message)
    text = str(caught.value)
    assert "/job:worker/replica:0/task:1" in text
    assert "Rerun the same command on every worker" in text and "out/backup" in text
    # One process: the error is not about a peer, and is left as it is.
    with pytest.raises(tf.errors.UnavailableError):
        with distribute.peer_errors_as_worker_lost(bk.make_strategy("default")):
            raise tf.errors.UnavailableError(None, None, message)


def test_global_means_equal_keras_means_in_one_process():
    rng = np.random.default_rng(0)
    values, weights = rng.random((3, 4)), rng.random((3, 4)) > 0.3
    ours, theirs = GlobalMean("mean", direction="up"), keras.metrics.Mean()
    for metric in (ours, theirs):
        metric.update_state(values, sample_weight=weights)
        metric.update_state(values[:1] * 3)
    np.testing.assert_allclose(ours.result(), theirs.result(), rtol=1e-6)
    ours, theirs = GlobalBatchLoss(), keras.metrics.Mean()
    for metric in (ours, theirs):
        metric.update_state(2.5, sample_weight=8)
        metric.update_state(1.0, sample_weight=5)
    np.testing.assert_allclose(ours.result(), theirs.result(), rtol=1e-6)


def test_compile_logs_the_global_batch_loss():
    model = bk.BertForSequenceClassification(
        bk.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=8)
    )  # fmt: skip
    model.compile()
    assert isinstance(model._loss_tracker, GlobalBatchLoss)


def test_on_a_tpu_inputs_are_checked_on_their_way_in(monkeypatch):
    """A TPU compiles the step with XLA (which drops asserts) though Keras
    leaves `jit_compile` False under TPUStrategy: the data is checked first."""

    class NoTPU(tf.distribute.TPUStrategy):
        def __init__(self):  # stands for a TPUStrategy; none can be built here
            pass

    model = bk.BertForSequenceClassification(
        bk.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=8)
    )  # fmt: skip
    model.compile()
    data = tf.data.Dataset.from_tensor_slices(
        ({"input_ids": np.full((2, 4), 99, "int32")}, np.zeros(2, "int32"))
    ).batch(2)
    assert model._guard_data(data) is data  # one device: checked in the step
    monkeypatch.setattr(model, "_distribute_strategy", NoTPU())
    assert not model.jit_compile
    with pytest.raises(bk.InputError, match="must be in \\[0, 30\\)"):
        with graph_errors_as_input_errors():  # what fit() wraps the run in
            next(iter(model._guard_data(data)))
