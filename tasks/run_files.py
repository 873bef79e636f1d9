"""What an observable run leaves on disk, in transformers' layout.

`StepCheckpoints` saves OUT/checkpoint-STEP every --save-steps updates (at
most --save-total-limit of them, never deleting the newest nor the best);
`trainer_state` is transformers' `TrainerState` as a dict; and
`write_trainer_files` writes all_results.json, train_results.json,
eval_results.json and trainer_state.json. No file holds an absolute path.

Example:

>>> saver = StepCheckpoints(out, 500, save, state, step_logger, save_total_limit=2)
>>> model.fit(train_ds, callbacks=[step_logger, evaluator, saver])
>>> write_trainer_files(out, train=train_results(step_logger, n), state=state())
"""

import os
import re
import shutil

import keras

from . import reporting

CHECKPOINT_PREFIX = "checkpoint"  # OUT/checkpoint-STEP, as transformers names them


def best_model_results(evaluator):
    """results.json's account of the best evaluation and of early stopping."""
    return {
        "metric_for_best_model": evaluator.metric,
        "best_metric": evaluator.best_metric,
        "best_step": evaluator.best_step,
        # Whether OUT (and its scores) hold the best evaluation's weights.
        "loaded_best_model": evaluator.loaded_best,
        "stopped_early_at_step": evaluator.stopped_step,
    }


class StepCheckpoints(keras.callbacks.Callback):
    """Saves `output_dir/checkpoint-STEP` every `save_steps` optimizer updates.

    Each holds what `save(directory)` writes (the model and tokenizer, via
    `save_pretrained`) and the run's `trainer_state.json` so far; beyond
    `save_total_limit` the oldest are deleted, never the newest nor the best
    one (transformers' rotation). Only the chief saves.

    Args:
        output_dir: str, the run's --output-dir.
        save_steps: int.
        save: callable `(directory) -> None`.
        state: callable `() -> dict`, the trainer_state.json to write.
        save_total_limit: int or None.
        evaluator: the run's `StepEvaluator` or None (its best is kept).
        step_logger: the run's `StepLogger` (the step count).
        chief: bool.
    """

    def __init__(
        self,
        output_dir,
        save_steps,
        save,
        state,
        step_logger,
        save_total_limit=None,
        evaluator=None,
        chief=True,
    ):
        super().__init__()
        self.output_dir = output_dir
        self.save_steps = save_steps
        self.save = save
        self.state = state
        self.step_logger = step_logger
        self.save_total_limit = save_total_limit
        self.evaluator = evaluator
        self.chief = chief

    def on_train_batch_end(self, batch, logs=None):
        step = self.step_logger.step
        if not (self.chief and step and step % self.save_steps == 0):
            return
        directory = os.path.join(self.output_dir, f"{CHECKPOINT_PREFIX}-{step}")
        if os.path.isdir(directory):
            return  # this step is saved (a resumed run passing it again)
        self.save(directory)
        state_file = os.path.join(directory, "trainer_state.json")
        reporting.write_json(state_file, self.state())
        self.rotate()

    def rotate(self):
        if self.save_total_limit is None:
            return
        found = checkpoints(self.output_dir)
        keep = {found[-1]} if found else set()
        best = best_checkpoint(self.output_dir, self.evaluator)
        if best is not None:
            keep.add(best)
        extra = len(found) - max(self.save_total_limit, len(keep))
        for name in found:
            if extra <= 0:
                break
            if name not in keep:
                shutil.rmtree(os.path.join(self.output_dir, name), ignore_errors=True)
                extra -= 1


def checkpoints(output_dir):
    """The checkpoint-STEP directory names in `output_dir`, oldest step first."""
    pattern = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")
    found = []
    for name in os.listdir(output_dir) if os.path.isdir(output_dir) else ():
        match = pattern.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            found.append((int(match.group(1)), name))
    return [name for _, name in sorted(found)]


def best_checkpoint(output_dir, evaluator):
    """The relative checkpoint-STEP of the best evaluation, if it was saved."""
    if evaluator is None or evaluator.best_step is None:
        return None
    name = f"{CHECKPOINT_PREFIX}-{evaluator.best_step}"
    return name if os.path.isdir(os.path.join(output_dir, name)) else None


def trainer_state(
    step_logger,
    evaluator=None,
    *,
    output_dir,
    max_steps,
    num_train_epochs,
    train_batch_size,
    eval_steps=None,
    save_steps=None,
):
    """transformers' `TrainerState` as a dict (trainer_state.json).

    `best_model_checkpoint` is relative to the output directory (a shared
    file carries no local path); None when the best step was not saved.
    """
    return {
        "best_global_step": evaluator.best_step if evaluator else None,
        "best_metric": evaluator.best_metric if evaluator else None,
        "best_model_checkpoint": best_checkpoint(output_dir, evaluator),
        "metric_for_best_model": evaluator.metric if evaluator else None,
        "epoch": step_logger.epoch_of(step_logger.step),
        "eval_steps": eval_steps,
        "global_step": step_logger.step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": step_logger.log_history,
        "logging_steps": step_logger.logging_steps,
        "max_steps": max_steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": num_train_epochs,
        "save_steps": save_steps,
        "stateful_callbacks": {},
        "total_flos": 0,
        "train_batch_size": train_batch_size,
        "trial_name": None,
        "trial_params": None,
    }


def write_trainer_files(out, train=None, evaluation=None, state=None):
    """Writes transformers' result files beside results.json.

    train_results.json (train_*), eval_results.json (eval_*), all_results.json
    (both) and trainer_state.json, each only when it has something. Every
    value passes `reporting.shareable`: no absolute local path.

    Args:
        out: str, the output directory.
        train: dict or None, e.g. {"epoch": 3.0, "train_loss": ...}.
        evaluation: dict or None, e.g. {"epoch": 3.0, "eval_accuracy": ...}.
        state: dict or None, `trainer_state(...)`.
    """
    combined = {}
    parts = (("train_results.json", train), ("eval_results.json", evaluation))
    for name, part in parts:
        if part:
            reporting.write_json(os.path.join(out, name), reporting.shareable(part))
            combined.update(part)
    if combined:
        reporting.write_json(
            os.path.join(out, "all_results.json"), reporting.shareable(combined)
        )
    if state is not None:
        reporting.write_json(
            os.path.join(out, "trainer_state.json"), reporting.shareable(state)
        )


def train_results(step_logger, train_samples):
    """train_results.json: the last row of `log_history` (fit's summary)."""
    summary = dict(step_logger.log_history[-1]) if step_logger.log_history else {}
    summary.pop("step", None)
    summary["train_samples"] = train_samples
    return summary


def eval_results(scores, epoch, samples, runtime):
    """eval_results.json: the final scores under eval_ names, with timings."""
    row = {
        (key if key.startswith("eval_") else f"eval_{key}"): float(value)
        for key, value in scores.items()
    }
    row.update(
        {
            "epoch": epoch,
            "eval_samples": samples,
            "eval_runtime": runtime,
            "eval_samples_per_second": samples / max(runtime, 1e-9),
        }
    )
    return row
