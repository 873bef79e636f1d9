"""Observable training runs, as a transformers `Trainer` user expects them.

`StepLogger` writes the train loss (mean since the last log) and the
learning rate every --logging-steps optimizer updates to TensorBoard event
files in OUT/runs/ and keeps the rows (`log_history`) that
`training_curves.png` and `trainer_state.json` are drawn from.
`StepEvaluator` scores the dev set every --eval-steps updates (or at each
epoch end), tracks the best --metric-for-best-model, stops early after
--early-stopping-patience evaluations without improvement and, with
--load-best-model-at-end, leaves the best evaluation's weights in the model.
`StepCheckpoints` saves OUT/checkpoint-STEP every --save-steps updates and
`write_trainer_files` writes transformers' all_results.json,
train_results.json, eval_results.json and trainer_state.json
(`tasks.run_files`); the flags are in `tasks.observe_flags`.

Steps are optimizer updates (`optimizer.iterations`): with gradient
accumulation, N batches make one step, as in transformers.

Example:

>>> step_logger = StepLogger("OUT/runs", logging_steps=50)
>>> evaluator = StepEvaluator(step_logger, lambda model: {"eval_accuracy": 0.9},
...                           metric="eval_accuracy")
>>> model.fit(train_ds, epochs=3, callbacks=[step_logger, evaluator])
>>> step_logger.log_history[0]  # {"loss": ..., "learning_rate": ..., "step": 50}
"""

import logging
import math
import os
import time

import keras
import numpy as np

# The pieces live in two modules of their own; callers use them from here.
from .observe_flags import add_observe_arguments  # noqa: F401
from .observe_flags import check_observe_arguments  # noqa: F401
from .observe_flags import default_logging_steps
from .observe_flags import resolve_steps
from .run_files import CHECKPOINT_PREFIX  # noqa: F401
from .run_files import StepCheckpoints
from .run_files import best_model_results  # noqa: F401
from .run_files import checkpoints  # noqa: F401
from .run_files import eval_results  # noqa: F401
from .run_files import train_results  # noqa: F401
from .run_files import trainer_state
from .run_files import write_trainer_files  # noqa: F401

logger = logging.getLogger("tasks.observe")

LOG_DIR = "runs"  # OUT/runs/: transformers' default TensorBoard logging_dir
# The keys of an evaluation row that are timings, not scores (never plotted
# as metrics nor accepted as --metric-for-best-model).
TIMING_KEYS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


def loss_tracker(model):
    """The metric `fit` logs as "loss" (a `keras.metrics.Mean`: total, count)."""
    for metric in model.metrics:
        if metric.name == "loss":
            return metric
    raise ValueError(
        "StepLogger needs the model's loss tracker (the metric named 'loss'). "
        "Expected a compiled model. Received metrics: "
        f"{[metric.name for metric in model.metrics]}"
    )


class StepLogger(keras.callbacks.Callback):
    """Logs train loss and learning rate every `logging_steps` optimizer updates.

    The loss of a log is the mean of every example's loss since the previous
    log (across epoch ends), as transformers logs it; the learning rate is the
    one the next update uses. Rows go to `log_history` (transformers'
    `TrainerState.log_history`) and, on the chief, to TensorBoard under
    transformers' names: train/loss, train/learning_rate, eval/<metric>.

    Args:
        log_dir: str or None, where the TensorBoard event files go (None: none).
        logging_steps: updates between logs: an int, a fraction (< 1) of all
            updates, or None for a tenth of an epoch (`default_logging_steps`).
        samples_per_epoch: int or None, training examples per epoch (for the
            final row's samples per second); may be set until `fit` starts.
        chief: bool, whether this worker writes (only the chief does).
        updates_per_epoch: number or None, optimizer updates in one epoch
            (None: `fit`'s batches per epoch / gradient accumulation steps),
            for the rows' fractional `epoch`.
        total_steps: int or None, the run's planned updates, for a fractional
            `logging_steps` (None: updates per epoch times `fit`'s epochs).

    Example:

    >>> step_logger = StepLogger("OUT/runs", logging_steps=50)
    >>> model.fit(train_ds, epochs=3, callbacks=[step_logger])
    """

    def __init__(
        self,
        log_dir,
        logging_steps=None,
        samples_per_epoch=None,
        chief=True,
        updates_per_epoch=None,
        total_steps=None,
    ):
        super().__init__()
        self.log_dir = log_dir
        self.total_steps = total_steps
        self.requested_logging_steps = logging_steps
        self.logging_steps = None
        self.updates_per_epoch = updates_per_epoch
        self.samples_per_epoch = samples_per_epoch
        self.chief = chief
        self.log_history = []
        self.writer = None
        self.step = 0
        self.train_runtime = 0.0

    def epoch_of(self, step):
        if not self.updates_per_epoch:
            return None
        return round(step / self.updates_per_epoch, 4)

    def _plan(self):
        """Updates per epoch and logging steps, from `fit`'s own counts."""
        params = self.params or {}
        if self.updates_per_epoch is None and params.get("steps"):
            accumulation = self.model.optimizer.gradient_accumulation_steps or 1
            # A float with accumulation: updates run across epoch ends.
            self.updates_per_epoch = params["steps"] / accumulation
        per_epoch = self.updates_per_epoch
        total = self.total_steps or (per_epoch or 0) * params.get("epochs", 1)
        # Without a known epoch length: transformers' default of 500.
        default = default_logging_steps(per_epoch) if per_epoch else 500
        self.logging_steps = resolve_steps(
            self.requested_logging_steps, max(total, 1), default
        )

    def log(self, values, step=None):
        """Appends one row (`values` plus epoch and step) and writes its scalars."""
        step = self.step if step is None else int(step)
        row = {k: float(v) for k, v in values.items()}
        row.update({"epoch": self.epoch_of(step), "step": step})
        self.log_history.append(row)
        if self.writer is not None:
            import tensorflow as tf

            with self.writer.as_default(step=step):
                for key, value in values.items():
                    tf.summary.scalar(tensorboard_tag(key), float(value))
            self.writer.flush()
        return row

    def restore(self, rows, epochs):
        """Takes the rows of a resumed run's first `epochs` epochs (`tasks.resume`).

        Rows past the backup's step (logged in the killed epoch) are dropped.
        """
        last = epochs * (self.updates_per_epoch or math.inf)
        self.log_history = [row for row in rows if row["step"] <= last + 1e-6]

    def on_train_begin(self, logs=None):
        self._plan()
        if self.chief and self.log_dir is not None and self.writer is None:
            import tensorflow as tf

            self.writer = tf.summary.create_file_writer(os.fspath(self.log_dir))
        self.tracker = loss_tracker(self.model)
        self.step = self._optimizer_step()
        self.logged_step = self.step
        # Loss sums of the window since the last log: earlier epochs' part
        # (`carry`), and the tracker's running total at the last log.
        self.carry = np.zeros(2)
        self.mark = np.zeros(2)
        self.run_sums = np.zeros(2)
        self.start_step = self.step
        self.started = time.perf_counter()
        self.counting = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self.counting:
            # Read again at the first batch: a backup restored after this
            # callback's on_train_begin moved the step count.
            self.counting = True
            self.step = self.logged_step = self.start_step = self._optimizer_step()
            self.started = time.perf_counter()

    def _optimizer_step(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _tracker_sums(self):
        return np.array(
            [
                float(keras.ops.convert_to_numpy(self.tracker.total)),
                float(keras.ops.convert_to_numpy(self.tracker.count)),
            ]
        )

    def on_epoch_begin(self, epoch, logs=None):
        self.mark = np.zeros(2)  # fit resets the tracker before each epoch

    def on_train_batch_end(self, batch, logs=None):
        step = self._optimizer_step()
        if step == self.step:
            return  # a micro-batch of an accumulated update
        self.step = step
        if step % self.logging_steps == 0:
            self._log_loss()

    def on_epoch_end(self, epoch, logs=None):
        sums = self._tracker_sums()
        self.carry += sums - self.mark
        self.run_sums += sums
        self.mark = sums

    def _log_loss(self):
        now = self._tracker_sums()
        sums = self.carry + now - self.mark
        self.mark = now
        self.carry = np.zeros(2)
        self.logged_step = self.step
        if sums[1] <= 0:
            return
        learning_rate = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
        self.log({"loss": sums[0] / sums[1], "learning_rate": learning_rate})

    def on_train_end(self, logs=None):
        self.step = self._optimizer_step()
        # The last, shorter window (when the run does not end on a log step).
        if self.step != self.logged_step:
            self._log_loss()
        self.train_runtime = time.perf_counter() - self.started
        steps = self.step - self.start_step
        summary = {"train_runtime": self.train_runtime}
        if self.run_sums[1] > 0:
            summary["train_loss"] = self.run_sums[0] / self.run_sums[1]
        if self.samples_per_epoch:
            summary["train_samples_per_second"] = (
                self.samples_per_epoch
                * steps
                / self.updates_per_epoch
                / max(self.train_runtime, 1e-9)
            )
        summary["train_steps_per_second"] = steps / max(self.train_runtime, 1e-9)
        self.log(summary, self.step)  # train/train_loss, ... as transformers
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def tensorboard_tag(key):
    """transformers' TensorBoard names: eval_f1 -> eval/f1, loss -> train/loss."""
    if key.startswith("eval_"):
        return "eval/" + key[len("eval_") :]
    return "train/" + key


class StepEvaluator(keras.callbacks.Callback):
    """Evaluates every `eval_steps` updates (None: each epoch end), keeps the best.

    `evaluate(model)` returns the evaluation's log row ({"eval_f1": ...,
    "eval_runtime": ...}); it must not call `model.evaluate` (which resets
    the training loss being logged): `model.predict` is fine. At an epoch
    end the scores also go into the epoch's logs as val_<metric> (Keras'
    habit, for callbacks that monitor them).

    Args:
        step_logger: the run's `StepLogger` (rows, step count, TensorBoard).
        evaluate: callable `(model) -> dict` of eval_* values.
        eval_steps: int or None.
        metric: str, the log key of the metric for the best model ("eval_f1").
        greater_is_better: bool.
        patience: int or None, evaluations without improvement before
            training stops (None: never).
        threshold: float, the least change that counts as an improvement
            for `patience`.
        load_best_at_end: bool, whether the model ends with the best
            evaluation's weights (copied in memory at each new best).
        verbose: int, `fit`'s verbosity; at 1 the evaluation's progress bar
            starts on a line of its own, below the training bar.
    """

    def __init__(
        self,
        step_logger,
        evaluate,
        eval_steps=None,
        metric=None,
        greater_is_better=True,
        patience=None,
        threshold=0.0,
        load_best_at_end=False,
        verbose=0,
    ):
        super().__init__()
        self.verbose = verbose
        self.step_logger = step_logger
        self.evaluate = evaluate
        self.eval_steps = eval_steps
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.patience = patience
        self.threshold = threshold
        self.load_best_at_end = load_best_at_end
        self.best_metric = None
        self.best_step = None
        self.best_weights = None
        self.bad_evaluations = 0
        self.stopped_step = None
        self.evaluated_step = None

    def on_train_begin(self, logs=None):
        self.synced = False

    def _sync(self):
        """Best metric and patience from the rows of a resumed run's epochs."""
        if self.synced:
            return
        self.synced = True
        for row in self.step_logger.log_history:
            if self.metric in row:
                self._judge(row[self.metric], row["step"], keep_weights=False)

    def _better(self, value, than, threshold=0.0):
        if than is None:
            return True
        if self.greater_is_better:
            return value > than + threshold
        return value < than - threshold

    def _judge(self, value, step, keep_weights=True):
        # Patience counts evaluations that do not beat the best by the
        # threshold (transformers' EarlyStoppingCallback).
        if self._better(value, self.best_metric, self.threshold):
            self.bad_evaluations = 0
        else:
            self.bad_evaluations += 1
        if self._better(value, self.best_metric):
            self.best_metric, self.best_step = value, step
            if keep_weights and self.load_best_at_end:
                self.best_weights = [np.array(w) for w in self.model.get_weights()]

    def run(self, logs=None):
        self._sync()
        step = self.step_logger.step
        if self.evaluated_step == step:
            return
        self.evaluated_step = step
        if self.verbose == 1:
            print(flush=True)
        row = self.evaluate(self.model)
        self.step_logger.log(row, step)
        if logs is not None:
            for key, value in row.items():
                if key.startswith("eval_") and key not in TIMING_KEYS:
                    logs["val_" + key[len("eval_") :]] = value
        if self.metric is None:
            return
        if self.metric not in row:
            raise ValueError(
                f"The evaluation gave no {self.metric} to choose the best model "
                f"by. Expected one of: {sorted(row)}. Pass one of these as "
                "--metric-for-best-model."
            )
        self._judge(float(row[self.metric]), step)
        if self.patience is not None and self.bad_evaluations >= self.patience:
            self.model.stop_training = True
            self.stopped_step = step
            logger.info(
                "early stopping at step %d: %s has not improved on %.4f (step %d) "
                "for %d evaluation(s)",
                step,
                self.metric,
                self.best_metric,
                self.best_step,
                self.bad_evaluations,
            )

    def on_train_batch_end(self, batch, logs=None):
        step = self.step_logger.step
        if self.eval_steps and step and step % self.eval_steps == 0:
            self.run()

    def on_epoch_end(self, epoch, logs=None):
        if self.eval_steps is None:
            self.run(logs)

    def on_train_end(self, logs=None):
        if self.load_best_at_end and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            logger.info(
                "loaded the best model: step %d, %s = %.4f",
                self.best_step,
                self.metric,
                self.best_metric,
            )
        elif self.load_best_at_end and self.best_step is not None:
            logger.warning(
                "the best evaluation (step %d) came before the resumed epoch; the "
                "per-epoch backup does not keep its weights, so the model is the "
                "last one (save --save-steps checkpoints to keep it on disk)",
                self.best_step,
            )

    @property
    def loaded_best(self):
        return self.load_best_at_end and self.best_weights is not None


def evaluator_from_flags(step_logger, evaluate, args, total_steps):
    """The `StepEvaluator` the observe flags (`add_observe_arguments`) describe.

    Args:
        step_logger: the run's `StepLogger`.
        evaluate: callable `(model) -> dict` of eval_* values.
        args: the checked flags (`check_observe_arguments`).
        total_steps: int, the run's planned optimizer updates (for fractions).
    """
    return StepEvaluator(
        step_logger,
        evaluate,
        eval_steps=resolve_steps(args.eval_steps, total_steps),
        metric=args.metric_for_best_model,
        greater_is_better=args.greater_is_better,
        patience=args.early_stopping_patience,
        threshold=args.early_stopping_threshold,
        load_best_at_end=args.load_best_model_at_end,
        verbose=args.verbose,
    )


def step_callbacks(
    step_logger, evaluator, args, *, out, total_steps, updates_per_epoch, save
):
    """The step logger, evaluator and --save-steps checkpoints of a run.

    Args:
        step_logger: the run's `StepLogger`.
        evaluator: its `StepEvaluator`, or None (a run without evaluation).
        args: the checked flags (--save-steps, --save-total-limit, --epochs,
            --batch-size).
        out: str, the output directory (checkpoint-STEP goes there).
        total_steps: int, the run's planned optimizer updates.
        updates_per_epoch: number, for trainer_state.json's eval_steps when
            evaluating at each epoch end.
        save: callable `(directory)` writing a checkpoint.

    Returns:
        `(callbacks, state)`: the callbacks for `fit`, and a callable giving
        the run's `trainer_state` dict.
    """
    save_steps = resolve_steps(args.save_steps, total_steps)

    def state():
        return trainer_state(
            step_logger,
            evaluator,
            output_dir=out,
            max_steps=total_steps,
            num_train_epochs=args.epochs,
            train_batch_size=args.batch_size,
            # transformers' field is a number: an epoch's updates by default.
            eval_steps=evaluator and (evaluator.eval_steps or updates_per_epoch),
            save_steps=save_steps,
        )

    callbacks = [step_logger] + ([evaluator] if evaluator is not None else [])
    if save_steps:
        # Every worker saves, as at the end: the others into their temporary
        # `out`, which is removed.
        callbacks.append(
            StepCheckpoints(
                out,
                save_steps,
                save,
                state,
                step_logger,
                save_total_limit=args.save_total_limit,
                evaluator=evaluator,
            )
        )
    return callbacks, state


class EvalProgress:
    """A Keras progress bar over evaluation batches, shown when verbose is 1."""

    def __init__(self, total, verbose):
        self.bar = keras.utils.Progbar(total, verbose=1) if verbose == 1 else None
        self.done = 0

    def update(self):
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.done)
