"""Two tf.distribute workers on 127.0.0.1 train as one process does.

MultiWorkerMirroredStrategy with Keras 3.15's `fit` needs the two workarounds
in bert_keras/keras_private.py (keras-team/keras#20585,
tensorflow/tensorflow#72388); these runs fail without them. Every run is a
pair of subprocesses with free ports, bounded in time (tests/multiworker.py).
"""

import json
import os
import re
import time

import numpy as np
import pytest
import transformers
from multiworker import ROOT
from multiworker import Workers
from multiworker import result_line

import bert_keras as bk

pytestmark = [pytest.mark.slow, pytest.mark.serial]

CORPUS = os.path.join(ROOT, "tasks", "data", "wikitext-2-raw", "wiki.valid.raw")
TINY = json.dumps(
    {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
)

EVERY_MODEL = """
import json, os, sys
import bert_keras as bk
strategy = bk.make_strategy(sys.argv[1])
import keras, numpy as np, tensorflow as tf
from conftest import TASK_CLASS_NAMES, inputs_for, labels_for, tiny_config
from bert_keras.training.distribute import is_chief
results = {}
for name in TASK_CLASS_NAMES:
    keras.utils.set_random_seed(3)
    config = tiny_config(name, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    # 13 examples in batches of 8: the last global batch splits 3 + 2.
    x = inputs_for(name, config, batch=13, seq=9, seed=0)
    y = labels_for(name, config, batch=13, seq=9, seed=1)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    # As in to_tf_dataset: deleting an autotuned iterator can wait out the
    # tuning period (docs/performance.md) while the other worker waits too.
    options = tf.data.Options()
    options.autotune.enabled = False
    data = data.with_options(options)
    with strategy.scope():
        model = getattr(bk, name)(config)
        # SGD: Adam's first steps move every weight by about the learning
        # rate whatever its gradient's size, so summation-order noise in a
        # near-zero gradient would become a visible difference.
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    losses = []
    log = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
    model.fit(data, epochs=2, verbose=0, callbacks=[log])
    # 9 examples: the last batch of 1 leaves one worker an empty share.
    nine = data.unbatch().take(9).batch(8)
    scores = model.evaluate(nine, verbose=0, return_dict=True)
    predicted = model.predict(nine.map(lambda x, y: x), verbose=0)
    chief = int(is_chief(strategy))
    where = os.path.join(sys.argv[2], f"{name}-{sys.argv[1]}-{chief}.npz")
    np.savez(where, *model.get_weights())
    results[name] = {
        "losses": losses, "evaluate": {k: float(v) for k, v in scores.items()},
        "predict": {k: np.asarray(v).astype("float64").tolist()
                    for k, v in predicted.items()},
        "weights": where,
    }
print("RESULT", json.dumps(results))
"""


def close(a, b, rtol=1e-4, atol=1e-6):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return a.shape == b.shape and np.all(np.abs(a - b) <= atol + rtol * np.abs(a))


def single_process(argv, tmp_path, timeout=300):
    with Workers(argv, count=1, log_dir=str(tmp_path), env={"TF_CONFIG": ""}) as one:
        assert one.wait(timeout) == [0], one.output(0)[-3000:]
        return one.output(0)


def two_workers(argv, tmp_path, timeout=300, env=None):
    os.makedirs(tmp_path, exist_ok=True)
    with Workers(argv, count=2, log_dir=str(tmp_path), env=env) as pair:
        codes = pair.wait(timeout)
        assert codes == [0, 0], pair.output(0)[-3000:] + pair.output(1)[-3000:]
        return pair.output(0), pair.output(1)


def test_every_model_trains_evaluates_and_predicts_on_two_workers_as_on_one(
    tmp_path,
):
    chief, other = two_workers(
        ["-c", EVERY_MODEL, "multiworker", str(tmp_path)], tmp_path / "two"
    )
    one = result_line(single_process(["-c", EVERY_MODEL, "default", str(tmp_path)],
                                     tmp_path))  # fmt: skip
    chief, other = result_line(chief), result_line(other)
    for name, single in one.items():
        a, b = chief[name], other[name]
        assert a["losses"] == b["losses"], name
        assert close(single["losses"], a["losses"]), (name, single, a)
        assert len(a["losses"]) == 4  # two epochs of two steps: nothing skipped
        for key, value in single["evaluate"].items():
            assert close(value, a["evaluate"][key]), (name, key)
            assert a["evaluate"][key] == b["evaluate"][key], (name, key)
        for key, value in single["predict"].items():
            assert close(value, a["predict"][key], atol=1e-5), (name, key)
        with np.load(a["weights"]) as wa, np.load(b["weights"]) as wb:
            with np.load(single["weights"]) as ws:
                for key in ws.files:
                    assert np.array_equal(wa[key], wb[key]), (name, key)
                    assert close(ws[key], wa[key], atol=1e-5), (name, key)


def pretrain_argv(out, max_steps, save_steps, *extra):
    return [
        "-m", "tasks.pretrain", "--corpus", CORPUS, "--output-dir", str(out),
        "--vocab-size", "1500", "--config", TINY, "--max-steps", str(max_steps),
        "--save-steps", str(save_steps), "--batch-size", "8", "--dupe-factor",
        "1", "--max-seq-length", "64", "--verbose", "2", *extra,
    ]  # fmt: skip


def files_under(directory):
    # A TensorBoard event file is named for its time, host and process.
    return sorted(
        re.sub(
            r"tfevents\..*",
            "tfevents",
            os.path.relpath(os.path.join(root, name), directory),
        )
        for root, _, names in os.walk(directory)
        for name in names
    )


def assert_loads_everywhere(out, auto_class, keras_class):
    keras_model = keras_class.from_pretrained(out)
    model, info = auto_class.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    for weight in keras_model.weights:
        assert np.all(np.isfinite(np.asarray(weight))), weight.path
    return model


def run_cli_both_ways(argv, tmp_path):
    """Runs the CLI `argv(out, *extra)` on two workers and in one process.

    Checks what every CLI promises across workers: the output directory
    holds exactly the files of the one-process run (the chief's, nothing
    else), and the other worker left no temporary directory behind.

    Returns:
        `(one, two)`: the results.json of each run.
    """
    scratch = tmp_path / "worker_tmp"
    scratch.mkdir()
    two_workers(
        argv(tmp_path / "two", "--strategy", "multiworker"),
        tmp_path / "logs",
        env={"TMPDIR": str(scratch)},
    )
    single_process(argv(tmp_path / "one"), tmp_path)
    assert files_under(tmp_path / "two") == files_under(tmp_path / "one")
    assert not [name for name in os.listdir(scratch) if "bert_keras" in name]
    return tuple(
        json.loads((tmp_path / run / "results.json").read_text())
        for run in ("one", "two")
    )


def test_pretrain_cli_on_two_workers_matches_one_process_and_only_chief_writes(
    tmp_path,
):
    # One step per epoch: each epoch's logged loss is that step's loss.
    one, two = run_cli_both_ways(
        lambda out, *extra: pretrain_argv(out, 4, 1, *extra), tmp_path
    )
    assert two["workers"] == 2 and one["workers"] == 1
    assert two["steps"] == one["steps"] == 4
    for a, b in zip(one["epochs"], two["epochs"], strict=True):
        for key in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy"):
            assert close(a[key], b[key]), (key, a, b)
    assert_loads_everywhere(
        tmp_path / "two", transformers.BertForPreTraining, bk.BertForPreTraining
    )


def glue_argv(model, data_dir, out, *extra):
    return [
        "-m", "tasks.glue", "--task", "sst2", "--model", model, "--data-dir",
        data_dir, "--output-dir", str(out), "--epochs", "2", "--batch-size", "4",
        "--max-seq-length", "32", "--verbose", "2", "--seed", "3", *extra,
    ]  # fmt: skip


@pytest.fixture
def dropout_free_checkpoint(tmp_path, tokenizer):
    config = bk.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=37, max_position_embeddings=128,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    path = tmp_path / "checkpoint"
    bk.BertModel(config).save_pretrained(path, tokenizer=tokenizer)
    return str(path)


def test_glue_cli_on_two_workers_matches_one_process_and_only_chief_writes(
    tmp_path, dropout_free_checkpoint
):
    from test_glue_cli import write_glue_dir

    (tmp_path / "glue").mkdir()
    data = write_glue_dir(tmp_path / "glue")
    one, two = run_cli_both_ways(
        lambda out, *extra: glue_argv(dropout_free_checkpoint, data, out, *extra),
        tmp_path,
    )
    assert two["replicas"] == 2 and one["replicas"] == 1
    assert two["steps"] == one["steps"] == two["planned_steps"]
    for a, b in zip(one["epochs"], two["epochs"], strict=True):
        for key in ("loss", "val_loss", "val_accuracy"):
            assert close(a[key], b[key]), (key, a, b)
    assert close(one["eval_accuracy"], two["eval_accuracy"])
    assert_loads_everywhere(
        tmp_path / "two",
        transformers.BertForSequenceClassification,
        bk.BertForSequenceClassification,
    )


def squad_argv(model, out, *extra):
    sample = os.path.join(ROOT, "tests", "data", "squad_v1_sample.json")
    return [
        "-m", "tasks.squad", "--model", model, "--output-dir", str(out),
        "--train-file", sample, "--eval-file", sample, "--max-train-samples",
        "40", "--max-eval-samples", "30", "--epochs", "2", "--batch-size", "8",
        "--max-seq-length", "96", "--doc-stride", "32", "--max-query-length",
        "32", "--verbose", "2", *extra,
    ]  # fmt: skip


def test_squad_cli_on_two_workers_matches_one_process_and_only_chief_writes(
    tmp_path, dropout_free_checkpoint
):
    one, two = run_cli_both_ways(
        lambda out, *extra: squad_argv(dropout_free_checkpoint, out, *extra),
        tmp_path,
    )
    assert two["replicas"] == 2 and one["replicas"] == 1
    assert close(one["train_loss_per_epoch"], two["train_loss_per_epoch"])
    assert close(one["f1"], two["f1"]) and close(one["exact_match"], two["exact_match"])
    assert_loads_everywhere(
        tmp_path / "two",
        transformers.BertForQuestionAnswering,
        bk.BertForQuestionAnswering,
    )


# Worker 1 dies by SIGKILL once the optimizer has made KILL_AT_STEP steps.
KILLED_WORKER = """
import json, os, signal, sys, time
from bert_keras.training import callbacks
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
def on_train_batch_end(self, batch, logs=None):
    step = int(self.model.optimizer.iterations.numpy())
    if os.environ.get("KILL_AT_STEP") == str(step) and index == 1:
        print("KILLED AT", time.time(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
callbacks.StopOnNonFiniteLoss.on_train_batch_end = on_train_batch_end
from tasks import pretrain
sys.exit(0 if pretrain.main(sys.argv[1:]) else 1)
"""

# The bound a surviving worker must fail within (docs/distributed.md):
# TensorFlow's heartbeat detection, about 10 s, well inside the collective
# timeout given below.
FAILS_WITHIN_SECONDS = 60


def test_a_killed_worker_stops_the_other_and_a_rerun_resumes_after_the_backup(
    tmp_path,
):
    out = tmp_path / "out"
    # 4 epochs of 3 steps; worker 1 dies in the middle of epoch 3.
    argv = [
        "-c", KILLED_WORKER,
        *pretrain_argv(out, 12, 3, "--strategy", "multiworker",
                       "--collective-timeout", "45")[2:],
    ]  # fmt: skip
    with Workers(
        argv, count=2, log_dir=str(tmp_path), env={"KILL_AT_STEP": "7"}
    ) as pair:
        codes = pair.wait(300)
        killed_at = float(re.search(r"KILLED AT (\S+)", pair.output(1)).group(1))
        survivor = pair.output(0)
    ended = os.path.getmtime(tmp_path / "worker-0.log")
    assert codes[1] == -9 and codes[0] not in (0, -9), codes
    assert "WorkerLostError" in survivor and "Rerun the same command" in survivor
    assert ended - killed_at <= FAILS_WITHIN_SECONDS, ended - killed_at
    assert not (out / "results.json").exists()
    backups = sorted(os.listdir(out / "work" / "backup"))
    assert backups == ["epoch-000001", "epoch-000002"], backups

    rerun = tmp_path / "rerun"
    rerun.mkdir()
    chief, _ = two_workers(
        pretrain_argv(out, 12, 3, "--strategy", "multiworker"), rerun
    )
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 12 == results["planned_steps"]
    assert results["steps_this_run"] == 6  # resumed after step 6
    assert [row["epoch"] for row in results["epochs"]] == [1, 2, 3, 4]
    assert "Epoch 3/4" in chief and "Epoch 1/4" not in chief
    assert_loads_everywhere(out, transformers.BertForPreTraining, bk.BertForPreTraining)


def test_workers_refuse_to_resume_when_one_cannot_read_the_chiefs_backup(tmp_path):
    """Backups not all workers can see would desynchronize their weights."""
    script = """
import os, sys
import bert_keras as bk
strategy = bk.make_strategy("multiworker")
import keras, numpy as np, tensorflow as tf
from conftest import tiny_config
from bert_keras.training.callbacks import ResumableCheckpoint
from bert_keras.training.distribute import is_chief
with strategy.scope():
    model = bk.BertForSequenceClassification(tiny_config())
    model.compile()
data = tf.data.Dataset.from_tensor_slices(
    ({"input_ids": np.ones((8, 5), "int32")}, np.zeros(8, "int32"))).batch(4)
# Each worker is given its own directory; only the chief's gets a backup.
backup = os.path.join(sys.argv[1], "chief" if is_chief(strategy) else "other")
model.fit(data, epochs=1, verbose=0, callbacks=[ResumableCheckpoint(backup)])
print("FIRST FIT DONE", flush=True)
model.fit(data, epochs=2, verbose=0, callbacks=[ResumableCheckpoint(backup)])
"""
    with Workers(["-c", script, str(tmp_path)], count=2, log_dir=str(tmp_path)) as pair:
        codes = pair.wait(240)
        chief, other = pair.output(0), pair.output(1)
    assert codes == [1, 1], codes
    for text in (chief, other):
        assert "FIRST FIT DONE" in text
        assert "The chief resumes after epoch 1" in text
        assert "worker(s) [1] (in replica order) cannot read that backup" in text
    assert "FileNotFoundError" in other


def test_multiworker_without_tf_config_says_how_to_set_it(tmp_path):
    started = time.monotonic()
    with Workers(pretrain_argv(tmp_path, 2, 1, "--strategy", "multiworker"), count=1,
                 log_dir=str(tmp_path), env={"TF_CONFIG": ""}) as one:  # fmt: skip
        assert one.wait(120) == [1]
        text = one.output(0)
    assert "needs the TF_CONFIG environment variable" in text
    assert time.monotonic() - started < 120


PLAIN_KERAS = """
import bert_keras as bk
strategy = bk.make_strategy("multiworker")
import keras, numpy as np

class FirstBugAvoided(keras.Sequential):
    # What keras_private.ModelHooks does when no data is needed to build.
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        with self.distribute_strategy.scope():
            self.optimizer.build(self.trainable_variables)

for kind in (keras.Sequential, FirstBugAvoided):
    with strategy.scope():
        model = kind([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    try:
        model.fit(np.ones((8, 3)), np.ones((8, 1)), batch_size=4, verbose=0)
        print(kind.__name__, "WORKED", flush=True)
    except Exception as error:
        print(kind.__name__, "FAILED", str(error).splitlines()[0][:300], flush=True)
"""


def test_upstream_keras_still_needs_both_workarounds(tmp_path):
    """When this fails, Keras fixed multi-worker fit: drop the ModelHooks overrides."""
    import keras

    from bert_keras import keras_private

    with Workers(["-c", PLAIN_KERAS], count=2, log_dir=str(tmp_path)) as pair:
        pair.wait(180)
        text = pair.output(0)
    assert keras_private.KERAS_VERSION == ".".join(keras.__version__.split(".")[:2])
    fixed = f"Keras {keras.__version__} fixed it: remove the workaround in ModelHooks."
    # keras-team/keras#20585: building from a batch of per-replica values.
    assert "Sequential FAILED" in text and "PerReplica" in text, fixed
    # tensorflow/tensorflow#72388: averaging scalar logs along axis 0.
    assert "FirstBugAvoided FAILED Invalid reduction dimension 0" in text, fixed
