"""Observable runs (issue 24, item 4): step logs, evaluations, checkpoints, --help.

The CLI runs that show these end to end are in test_glue_cli.py and
test_squad.py (TensorBoard events, trainer_state.json, early stopping,
checkpoint-STEP directories); here: the pieces on a tiny model, the flag
checks and every flag's help.
"""

import argparse
import json
import os

import keras
import numpy as np
import pytest

import bert_keras as bk
from bert_keras.training.optimization import WarmupLinearDecay
from bert_keras.training.optimization import create_optimizer
from tasks import observe
from tasks.cli import HelpFormatter


def tensorboard_scalars(log_dir):
    """`{tag: [(step, value), ...]}` of every scalar in `log_dir`'s event files,
    read with TensorBoard's own event reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    # 0: keep every event (the default samples 10 tensors per tag).
    reader = EventAccumulator(str(log_dir), size_guidance={"tensors": 0, "scalars": 0})
    reader.Reload()
    found = {}
    # tf.summary (TF 2) stores scalars as tensor summaries of the scalars plugin.
    for tag in reader.Tags()["tensors"]:
        found[tag] = [
            (event.step, float(tensor_util.make_ndarray(event.tensor_proto)))
            for event in reader.Tensors(tag)
        ]
    for tag in reader.Tags()["scalars"]:
        found[tag] = [(event.step, event.value) for event in reader.Scalars(tag)]
    return found


def parser_of(module, argv, monkeypatch):
    """The `argparse` parser `module.parse_args` builds (caught at parse time)."""

    class Built(Exception):
        pass

    def catch(self, args=None, namespace=None):
        raise Built(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(Built) as caught:
        module.parse_args(argv)
    return caught.value.args[0]


@pytest.mark.parametrize("name", ["glue", "squad", "export", "pretrain"])
def test_every_flag_has_help_and_shows_its_default(name, monkeypatch):
    import importlib

    module = importlib.import_module(f"tasks.{name}")
    parser = parser_of(module, [], monkeypatch)
    formatter = HelpFormatter(prog="x")
    missing, no_default = [], []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flag = action.option_strings[0]
        if not action.help:
            missing.append(flag)
            continue
        shown = formatter._get_help_string(action) % {
            "default": action.default,
            "prog": "x",
        }
        off = action.default is None or action.default is False
        if not off and "default" not in shown:
            no_default.append(flag)
    assert not missing, f"flags without help: {missing}"
    assert not no_default, f"flags whose default --help does not show: {no_default}"
    assert parser.formatter_class is HelpFormatter or name == "export"


def test_demo_help_shows_its_defaults_and_the_glue_flags(capsys):
    from tasks import demo

    with pytest.raises(SystemExit) as exited:
        demo.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--learning-rate 5e-5" in out and "--logging-steps" in out
    assert "--mixed-precision --group-by-length --overwrite-output-dir" in out


def glue_args(tiny_checkpoint, *extra):
    from tasks import glue

    return glue.parse_args(
        ["--task", "sst2", "--model", tiny_checkpoint, "--output-dir", "x", *extra]
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metric-for-best-model", "bleu"], "Expected one of: accuracy, loss"),
        (["--logging-steps", "0"], "--logging-steps must be a whole number"),
        (["--eval-steps", "2.5"], "Received: --eval-steps 2.5"),
        (["--save-total-limit", "0"], "--save-total-limit must be at least 1"),
        (["--early-stopping-patience", "0"], "--early-stopping-patience must be"),
        (["--early-stopping-threshold", "nan"], "--early-stopping-threshold must"),
    ],
)
def test_bad_observe_flags_are_refused(
    extra, message, tiny_checkpoint, capsys
):  # fmt: skip
    with pytest.raises(SystemExit):
        glue_args(tiny_checkpoint, *extra)
    assert message in capsys.readouterr().err


def test_metric_for_best_model_defaults_and_direction(tiny_checkpoint, tmp_path):
    from tasks import glue
    from tasks import squad

    args = glue_args(tiny_checkpoint)
    assert (args.metric_for_best_model, args.greater_is_better) == (
        "eval_accuracy",
        True,
    )
    args = glue_args(tiny_checkpoint, "--metric-for-best-model", "eval_loss")
    assert (args.metric_for_best_model, args.greater_is_better) == ("eval_loss", False)
    args = glue.parse_args(
        ["--task", "stsb", "--model", tiny_checkpoint, "--output-dir", "x"]
    )
    assert args.metric_for_best_model == "eval_pearson"
    squad_flags = ["--model", tiny_checkpoint, "--output-dir", "x", "--max-seq-length",
                   "96", "--doc-stride", "32", "--max-query-length", "32"]  # fmt: skip
    args = squad.parse_args([*squad_flags, "--train-file", "t", "--eval-file", "e"])
    assert args.metric_for_best_model == "eval_f1"
    # Early stopping needs evaluations during training: training data alone
    # has none.
    with pytest.raises(SystemExit):
        squad.parse_args([*squad_flags, "--train-file", "t",
                          "--early-stopping-patience", "2"])  # fmt: skip


def test_resolve_steps_takes_counts_and_fractions():
    assert observe.resolve_steps(None, 100, default=7) == 7
    assert observe.resolve_steps(25.0, 100) == 25
    assert observe.resolve_steps(0.1, 95) == 10  # rounded up, as transformers
    assert observe.default_logging_steps(625) == 63
    assert observe.default_logging_steps(3) == 1


def tiny_classifier():
    config = bk.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=4, intermediate_size=37,
                           num_labels=2)  # fmt: skip
    return bk.BertForSequenceClassification(config)


class BatchLosses(keras.callbacks.Callback):
    """Each batch's own loss, from Keras' running mean (equal batch sizes)."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_epoch_begin(self, epoch, logs=None):
        self.previous = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        self.losses.append(mean * (batch + 1) - self.previous * batch)
        self.previous = mean


def test_step_logger_logs_the_mean_loss_since_the_last_log_and_the_rate(tmp_path):
    """6 batches per epoch, 2 per update: 3 updates per epoch, logs every 2.

    The log at step 4 spans the epoch end (batches 5-6 and 1-2 of the next);
    the rate is the schedule's at the logged update count.
    """
    keras.utils.set_random_seed(0)
    model = tiny_classifier()
    schedule = WarmupLinearDecay(1e-3, total_steps=6, warmup_steps=1)
    model.compile(
        optimizer=create_optimizer(schedule, gradient_accumulation_steps=2),
        run_eagerly=True,  # 12 tiny steps: faster than tracing them
    )
    rng = np.random.default_rng(0)
    x = {"input_ids": rng.integers(2, 99, (12, 7))}
    y = rng.integers(0, 2, 12)
    step_logger = observe.StepLogger(tmp_path / "runs", logging_steps=2)
    batches = BatchLosses()
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, shuffle=False,
              callbacks=[step_logger, batches])  # fmt: skip

    rows = [row for row in step_logger.log_history if "loss" in row]
    assert [row["step"] for row in rows] == [2, 4, 6]
    assert [row["epoch"] for row in rows] == [0.6667, 1.3333, 2.0]
    losses = batches.losses
    for row, window in zip(rows, (losses[0:4], losses[4:8], losses[8:12])):
        assert row["loss"] == pytest.approx(np.mean(window), rel=1e-5)
        assert row["learning_rate"] == pytest.approx(float(schedule(row["step"])))
    summary = step_logger.log_history[-1]
    assert summary["train_loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    assert summary["step"] == 6

    scalars = tensorboard_scalars(tmp_path / "runs")
    assert [step for step, _ in scalars["train/loss"]] == [2, 4, 6]
    np.testing.assert_allclose(
        [value for _, value in scalars["train/learning_rate"]],
        [row["learning_rate"] for row in rows],
        rtol=1e-6,
    )


def test_a_resumed_run_keeps_the_rows_of_its_finished_epochs():
    step_logger = observe.StepLogger(None, 2, updates_per_epoch=3)
    rows = [{"loss": 1.0, "epoch": step / 3, "step": step} for step in (2, 3, 4)]
    step_logger.restore(rows, epochs=1)  # step 4 was logged in the killed epoch
    assert [row["step"] for row in step_logger.log_history] == [2, 3]


class FakeEvaluator:
    metric = "eval_f1"

    def __init__(self, best_step):
        self.best_step = best_step


def test_checkpoint_rotation_keeps_the_newest_and_the_best(tmp_path):
    """transformers' rotation: oldest first, never the newest nor the best."""
    for step in (2, 4, 6, 8, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()  # not a step: left alone
    saver = observe.StepCheckpoints(
        str(tmp_path), 2, None, None, None, save_total_limit=2,
        evaluator=FakeEvaluator(best_step=4),
    )  # fmt: skip
    saver.rotate()
    assert observe.checkpoints(str(tmp_path)) == ["checkpoint-4", "checkpoint-10"]
    saver.save_total_limit, saver.evaluator = 1, FakeEvaluator(best_step=10)
    saver.rotate()
    assert observe.checkpoints(str(tmp_path)) == ["checkpoint-10"]
    assert (tmp_path / "checkpoint-x").is_dir()


def test_trainer_files_hold_no_absolute_path(tmp_path):
    step_logger = observe.StepLogger(None, 1, updates_per_epoch=2)
    step_logger.log({"loss": 1.0, "learning_rate": 0.1}, step=1)
    state = observe.trainer_state(
        step_logger, None, output_dir=str(tmp_path), max_steps=2,
        num_train_epochs=1, train_batch_size=4,
    )  # fmt: skip
    observe.write_trainer_files(
        str(tmp_path),
        train={"epoch": 1.0, "train_loss": 1.0, "model": str(tmp_path / "m")},
        evaluation={"epoch": 1.0, "eval_f1": 50.0},
        state=state,
    )
    combined = json.loads((tmp_path / "all_results.json").read_text())
    assert combined == {"epoch": 1.0, "train_loss": 1.0, "model": "m",
                        "eval_f1": 50.0}  # fmt: skip
    saved = json.loads((tmp_path / "trainer_state.json").read_text())
    assert saved["log_history"] == [
        {"loss": 1.0, "learning_rate": 0.1, "epoch": 0.5, "step": 1}
    ]
    assert saved["best_model_checkpoint"] is None
    assert os.path.isfile(tmp_path / "train_results.json")
