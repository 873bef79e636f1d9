"""transformers v4's Keras callbacks: `KerasMetricCallback`, `PushToHubCallback`.

transformers v5 removed `transformers.keras_callbacks`. These two take v4's
arguments and do what v4's did, for bert_keras models: compute metrics that
need numpy (or strings) at every epoch end and hand them to the callbacks
after them; save the model in the Hugging Face format while it trains and
upload each save to the Hub without stopping training. bert_keras models are
encoders: nothing here generates text.
"""

import collections
import collections.abc
import inspect
import logging
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from huggingface_hub import HfApi
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from bert_keras.checkpoints import writing
from bert_keras.checkpoints.model_card import model_card
from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.keras_private import distribute_strategy
from bert_keras.training.callbacks import ResumableCheckpoint
from bert_keras.training.distribute import is_chief

logger = logging.getLogger(__name__)

# Batches padded to different lengths are joined with transformers' ignored
# label, so a metric that skips -100 labels skips the padding too (as in v4).
PADDING_VALUE = -100

# What `metric_fn` receives: a tuple, as in v4, whose fields also read like
# transformers' `EvalPrediction` (`.predictions`, `.label_ids`).
EvalPrediction = collections.namedtuple("EvalPrediction", ["predictions", "label_ids"])

# Label columns v4 found by itself when the model declares none.
_DEFAULT_LABEL_COLUMNS = (("labels",), ("start_positions", "end_positions"))
_KNOWN_LABEL_NAMES = (
    "labels",
    "next_sentence_label",
    "start_positions",
    "end_positions",
)


class KerasMetricCallback(keras.callbacks.Callback):
    """Computes metrics with numpy at the end of every epoch, as v4's did.

    At each epoch end the model predicts `eval_dataset` batch by batch; the
    predictions and labels of all batches are joined into numpy arrays
    (batches padded to different lengths, such as token classification's
    `(batch, seq)`, are padded with -100 to the longest) and passed to
    `metric_fn((predictions, labels))`. The dict it returns joins the epoch's
    logs, where the callbacks after this one (`EarlyStopping`,
    `ModelCheckpoint`, `History`, `PushToHubCallback`) read it: put this
    callback first in the list. Keras cannot tell which way a metric of
    yours improves: give `EarlyStopping` / `ModelCheckpoint` `mode="max"` (or
    `"min"`).

    Predictions are the model's outputs without `loss`; `output_cols` keeps
    only the named ones; a single output is passed as its array (the logits,
    say), several as a dict. Labels are the second element of a
    `(features, labels)` dataset, or the `label_cols` of the features dict;
    without `label_cols` they are the columns named like the model's labels
    (`labels`; `start_positions` and `end_positions` for question answering),
    taken out of the features before predicting. One label column is passed
    as its array, several as a dict.

    Args:
        metric_fn: callable taking `(predictions, labels)` (a tuple, whose
            fields are also `.predictions` and `.label_ids`) and returning a
            dict `{metric_name: value}`.
        eval_dataset: a batched `tf.data.Dataset` of `(features, labels)`,
            `(features, labels, sample_weight)` (weights are not passed to
            `metric_fn`) or feature dicts holding the labels; or arrays, a
            dict of arrays or a `(features, labels)` tuple of them, batched
            here by `batch_size`.
        output_cols: optional list of output names kept as predictions.
        label_cols: optional list of feature names used as labels.
        batch_size: int; needed when `eval_dataset` is not a
            `tf.data.Dataset`, unused otherwise (as in v4).
        predict_with_generate: must be False: bert_keras models are encoders
            and do not generate.
        use_xla_generation, generate_kwargs: accepted as in v4, where they
            have no effect without `predict_with_generate`.

    Example:

    >>> def accuracy(eval_prediction):
    ...     logits, labels = eval_prediction
    ...     return {"dev_accuracy": float(np.mean(logits.argmax(-1) == labels))}
    >>> classifier = BertForSequenceClassification(config)
    >>> classifier.compile()
    >>> callbacks = [KerasMetricCallback(accuracy, dataset),
    ...              keras.callbacks.EarlyStopping("dev_accuracy", mode="max")]
    >>> history = classifier.fit(dataset, epochs=2, callbacks=callbacks, verbose=0)
    >>> len(history.history["dev_accuracy"])
    2
    """

    def __init__(
        self,
        metric_fn,
        eval_dataset,
        output_cols=None,
        label_cols=None,
        batch_size=None,
        predict_with_generate=False,
        use_xla_generation=False,
        generate_kwargs=None,
    ):
        super().__init__()
        if not callable(metric_fn):
            raise ConfigError(
                "KerasMetricCallback needs a function computing the metrics: "
                "metric_fn((predictions, labels)) returning a dict of values. "
                f"Received: metric_fn={metric_fn!r}"
            )
        if predict_with_generate:
            raise ConfigError(
                "predict_with_generate=True asks for model.generate(), but "
                "bert_keras models are encoders and do not generate text. Use "
                "predict_with_generate=False: metric_fn then receives the "
                "model's outputs (logits). Received: predict_with_generate="
                f"{predict_with_generate!r}"
            )
        if not isinstance(eval_dataset, tf.data.Dataset):
            if batch_size is None:
                raise ConfigError(
                    "eval_dataset is not a tf.data.Dataset, so it must be "
                    "batched here: pass batch_size (as in v4). Received: "
                    f"eval_dataset of type {type(eval_dataset).__name__}, "
                    "batch_size=None"
                )
            if isinstance(eval_dataset, collections.abc.Mapping):
                eval_dataset = dict(eval_dataset)  # e.g. a BatchEncoding
            eval_dataset = tf.data.Dataset.from_tensor_slices(eval_dataset).batch(
                batch_size
            )
        self.metric_fn = metric_fn
        self.eval_dataset = eval_dataset
        self.output_cols = _names("output_cols", output_cols)
        self.label_cols = _names("label_cols", label_cols)
        self.batch_size = batch_size
        self.predict_with_generate = predict_with_generate
        self.use_xla_generation = use_xla_generation
        self.generate_kwargs = {} if generate_kwargs is None else generate_kwargs

        spec = eval_dataset.element_spec
        self._labels_beside = (
            isinstance(spec, tuple) and len(spec) in (2, 3) and label_cols is None
        )
        features = spec[0] if isinstance(spec, tuple) and len(spec) in (2, 3) else spec
        self._feature_names = (
            list(features) if isinstance(features, collections.abc.Mapping) else None
        )
        if self.label_cols is not None:
            available = self._feature_names or ()
            missing = [name for name in self.label_cols if name not in available]
            if missing:
                raise InputError(
                    f"label_cols {missing} are not columns of eval_dataset's "
                    "features. Expected names of its feature dict. Received: "
                    f"features {self._feature_names or _spec_text(features)}"
                )
        elif not self._labels_beside and not any(
            name in (self._feature_names or ()) for name in _KNOWN_LABEL_NAMES
        ):
            raise InputError(
                "KerasMetricCallback cannot find the labels in eval_dataset. "
                "Expected a dataset of (features, labels), or feature dicts "
                f"holding one of {list(_KNOWN_LABEL_NAMES)}; or name the "
                "label columns with label_cols=[...]. Received: features "
                f"{self._feature_names or _spec_text(features)}"
            )
        self._label_columns = self.label_cols
        self._warned_overwrite = False

    def set_model(self, model):
        super().set_model(model)
        if self._labels_beside or self.label_cols is not None:
            return
        declared = getattr(model, "label_names", None)
        if declared:
            candidates = [tuple(declared) + tuple(getattr(model, "label_aliases", {}))]
        else:
            candidates = _DEFAULT_LABEL_COLUMNS
        for names in candidates:
            found = [name for name in names if name in self._feature_names]
            if found:
                self._label_columns = found
                return
        raise InputError(
            f"eval_dataset holds none of {type(model).__name__}'s label columns "
            f"{list(candidates[0])}. Name the label columns with label_cols=[...]"
            " or give a dataset of (features, labels). Received: features "
            f"{self._feature_names}"
        )

    def on_epoch_end(self, epoch, logs=None):
        predictions, labels = [], []
        for element in self.eval_dataset:
            features, batch_labels = self._split(element)
            outputs = self.model.predict_on_batch(features)
            predictions.append(self._select_outputs(outputs))
            labels.append(batch_labels)
        if not predictions:
            raise InputError(
                "eval_dataset yielded no batch, so there is nothing to compute "
                "metrics on. Expected at least one batch. Received: an empty "
                "dataset"
            )
        evaluation = EvalPrediction(
            _single(gather_batches(predictions)), _single(gather_batches(labels))
        )
        metrics = self.metric_fn(evaluation)
        if not isinstance(metrics, collections.abc.Mapping):
            raise ConfigError(
                "metric_fn must return a dict {metric_name: value}, which "
                "joins the epoch's logs. Return e.g. {'accuracy': 0.91}. "
                f"Received: {type(metrics).__name__}: {metrics!r}"
            )
        if logs is None:
            return
        overwritten = sorted(set(metrics) & set(logs))
        if overwritten and not self._warned_overwrite:
            self._warned_overwrite = True
            logger.warning(
                "metric_fn's %s replace the logs of the same names (the model's "
                "training metrics); rename them (e.g. 'eval_accuracy') to keep "
                "both.",
                overwritten,
            )
        logs.update({name: _log_value(value) for name, value in metrics.items()})

    def _split(self, element):
        """One batch as `(features for the model, numpy labels)`."""
        if self._labels_beside:
            return element[0], tf.nest.map_structure(np.asarray, element[1])
        features = element[0] if isinstance(element, tuple) else element
        features = dict(features)
        labels = {name: np.asarray(features.pop(name)) for name in self._label_columns}
        return features, labels

    def _select_outputs(self, outputs):
        if not isinstance(outputs, collections.abc.Mapping):
            return outputs
        outputs = dict(outputs)
        if self.output_cols is not None:
            missing = [name for name in self.output_cols if name not in outputs]
            if missing:
                raise InputError(
                    f"output_cols {missing} are not outputs of "
                    f"{type(self.model).__name__}. Expected some of "
                    f"{sorted(outputs)}. Received: output_cols={self.output_cols}"
                )
            return {name: outputs[name] for name in self.output_cols}
        config = getattr(self.model, "config", None)
        ignored = set(getattr(config, "keys_to_ignore_at_inference", None) or ())
        ignored.add("loss")
        return {name: value for name, value in outputs.items() if name not in ignored}


def gather_batches(batches, padding_value=PADDING_VALUE):
    """Joins per-batch results (arrays, or dicts / lists of them) along axis 0.

    Arrays whose non-batch dimensions differ between batches (sequences
    padded per batch) are padded with `padding_value` to the largest size.

    Args:
        batches: list of arrays, or of dicts / lists / tuples of arrays with
            the same structure in every batch.
        padding_value: the value filling the added positions.

    Returns:
        one array, or a dict / list of them.

    Example:

    >>> gather_batches([np.ones((2, 3)), np.zeros((1, 5))]).shape
    (3, 5)
    """
    first = batches[0]
    if isinstance(first, collections.abc.Mapping):
        return {
            key: gather_batches([batch[key] for batch in batches], padding_value)
            for key in first
        }
    if isinstance(first, (list, tuple)):
        return [gather_batches(list(items), padding_value) for items in zip(*batches)]
    arrays = [np.asarray(batch) for batch in batches]
    if arrays[0].ndim == 0:
        return np.stack(arrays)
    if len({array.ndim for array in arrays}) > 1:
        raise InputError(
            "Batches of one prediction or label have different ranks, so they "
            "cannot be joined. Expected the same rank in every batch. "
            f"Received: shapes {[array.shape for array in arrays]}"
        )
    if len({array.shape[1:] for array in arrays}) == 1:
        return np.concatenate(arrays)
    trailing = tuple(np.max([array.shape[1:] for array in arrays], axis=0))
    rows = sum(len(array) for array in arrays)
    joined = np.full((rows, *trailing), padding_value, np.result_type(*arrays))
    start = 0
    for array in arrays:
        region = (slice(start, start + len(array)),)
        joined[region + tuple(slice(0, size) for size in array.shape[1:])] = array
        start += len(array)
    return joined


def _single(structure):
    """A dict or list of one entry as that entry (v4 passed lone arrays so)."""
    if isinstance(structure, dict) and len(structure) == 1:
        return next(iter(structure.values()))
    if isinstance(structure, list) and len(structure) == 1:
        return structure[0]
    return structure


def _log_value(value):
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        return value.item()
    return value


def _names(argument, names):
    if names is None:
        return None
    names = [names] if isinstance(names, str) else list(names)
    if not names or not all(isinstance(name, str) for name in names):
        raise ConfigError(
            f"{argument} must be a non-empty list of column names. Received: "
            f"{argument}={names!r}"
        )
    return names


def _spec_text(spec):
    return type(spec).__name__ if not hasattr(spec, "shape") else f"a tensor {spec}"


# --- PushToHubCallback -------------------------------------------------------

_SAVE_STRATEGIES = ("no", "epoch", "steps")
# transformers v4's model-card arguments, and the bert_keras ones they become.
_V4_CARD_ARGUMENTS = {
    "finetuned_from",
    "tasks",
    "dataset_tags",
    "dataset",
    "dataset_args",
}
# Upload snapshots live hidden in output_dir: hard links need one file system.
_SNAPSHOT_PREFIX = ".bert_keras-upload-"
_CHECKPOINT_DIR = "checkpoint"


class PushToHubCallback(keras.callbacks.Callback):
    """Saves the model while it trains and uploads each save to the Hub.

    At each epoch end (or every `save_steps` training batches, counted across
    epochs, with `save_strategy="steps"`) the model is saved to `output_dir`
    with `save_pretrained` (config.json, model.safetensors, the tokenizer's
    files) and a model card (README.md: the last epoch's logs, the
    optimizer); the folder is then uploaded to the Hub repo `hub_model_id`
    in the background, so training goes on meanwhile. While an upload runs,
    later saves are written locally but not uploaded; when training ends the
    running upload is awaited and the final model is saved and uploaded
    (v4's "End of training" commit), so the Hub always ends with the last
    weights. Hidden files are never uploaded, and no uploaded file holds a
    local path. Only the chief writes and uploads in multi-worker training.

    `checkpoint=True` also keeps the training state (weights and optimizer,
    the epoch) in `output_dir/checkpoint`, uploaded with the model, in the
    format of `bert_keras.training.callbacks.ResumableCheckpoint`: to resume,
    add `ResumableCheckpoint(os.path.join(output_dir, "checkpoint"))` to the
    callbacks of a new `fit` (after `huggingface_hub.snapshot_download` of the
    repo when starting on another machine). As in v4, this callback never
    resumes by itself.

    Args:
        output_dir: str or path; the local folder saved and uploaded.
        save_strategy: `"epoch"` (default), `"steps"` (every `save_steps`
            batches) or `"no"` (once, when training ends); also v4's
            `IntervalStrategy` values.
        save_steps: int > 0; required with `save_strategy="steps"`.
        tokenizer: optional transformers tokenizer saved with the model.
        hub_model_id: str, the Hub repo (`"name"` in your namespace, or
            `"owner/name"`); created if missing. Default: `output_dir`'s name.
        hub_token: str or None; a token with write access (default: the
            logged-in user's).
        checkpoint: bool; also save and upload the resumable training state.
            Only with `save_strategy="epoch"`.
        **model_card_args: for the model card: those of
            `bert_keras.checkpoints.model_card.model_card` (`license`,
            `language`, `tags`, `datasets`, `base_model`, ...) and v4's
            `finetuned_from` (the base model), `dataset_tags` (datasets),
            `tasks` (added as tags), `dataset` and `dataset_args` (shown with
            the training hyperparameters).

    Example:

    >>> push = PushToHubCallback("out/bert-sst2", tokenizer=tokenizer,
    ...                          hub_model_id="me/bert-sst2", license="apache-2.0")
    >>> classifier = BertForSequenceClassification(config)
    >>> classifier.compile()
    >>> history = classifier.fit(dataset, callbacks=[push])  # doctest: +SKIP
    """

    def __init__(
        self,
        output_dir,
        save_strategy="epoch",
        save_steps=None,
        tokenizer=None,
        hub_model_id=None,
        hub_token=None,
        checkpoint=False,
        **model_card_args,
    ):
        super().__init__()
        strategy = getattr(save_strategy, "value", save_strategy)  # IntervalStrategy
        if not isinstance(strategy, str) or strategy.lower() not in _SAVE_STRATEGIES:
            raise ConfigError(
                f"save_strategy must be one of {list(_SAVE_STRATEGIES)}: save "
                "at each epoch end, every save_steps batches, or only when "
                f"training ends. Received: save_strategy={save_strategy!r}"
            )
        strategy = strategy.lower()
        if strategy == "steps" and (
            not isinstance(save_steps, int)
            or isinstance(save_steps, bool)
            or save_steps <= 0
        ):
            raise ConfigError(
                "save_strategy='steps' saves every save_steps training batches: "
                "pass a positive integer save_steps. Received: "
                f"save_steps={save_steps!r}"
            )
        if checkpoint and strategy != "epoch":
            raise ConfigError(
                "checkpoint=True saves the training state at epoch ends, so it "
                "needs save_strategy='epoch' (as in v4). Use save_strategy="
                "'epoch' or checkpoint=False. Received: save_strategy="
                f"{strategy!r}"
            )
        self.output_dir = os.fspath(output_dir)
        if hub_model_id is None:
            hub_model_id = os.path.basename(os.path.abspath(self.output_dir))
        try:
            validate_repo_id(hub_model_id)
        except HFValidationError as error:
            raise ConfigError(
                "hub_model_id must be a Hub repo id such as 'name' or "
                f"'owner/name' ({error}). Pass hub_model_id=... (it defaults "
                f"to output_dir's name). Received: hub_model_id={hub_model_id!r}"
            ) from error
        self.save_strategy = strategy
        self.save_steps = save_steps
        self.tokenizer = tokenizer
        self.hub_model_id = hub_model_id
        self.hub_token = hub_token
        self.checkpoint = checkpoint
        self.model_card_args = model_card_args
        self._card_args, self._card_rows = _card_arguments(model_card_args)
        self._api = None
        self._upload = None  # the running background upload (a Future)
        self._training_state = None
        self._chief = True
        self._steps = 0
        self._last_logs = {}

    def on_train_begin(self, logs=None):
        model = self.model
        if not hasattr(model, "hf_variables") or not hasattr(model, "save_pretrained"):
            raise ConfigError(
                "PushToHubCallback saves bert_keras models in the Hugging Face "
                "format; this model is not one. Build the model with a bert_keras "
                f"class (or bert_keras.compat). Received: {type(model).__name__}"
            )
        self._chief = is_chief(distribute_strategy(model))
        self._steps = 0
        self._last_logs = {}
        if self.checkpoint:
            # Every worker takes part: reading the optimizer may be collective.
            self._training_state = _TrainingState(
                os.path.join(self.output_dir, _CHECKPOINT_DIR), keep=1
            )
            self._training_state.set_model(model)
            self._training_state.set_params(self.params)
            self._training_state.on_train_begin(logs)
        if not self._chief:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        for name in os.listdir(self.output_dir):
            if name.startswith(_SNAPSHOT_PREFIX):  # left by a killed run
                shutil.rmtree(os.path.join(self.output_dir, name), ignore_errors=True)
        self._api = HfApi(token=self.hub_token)
        self.hub_model_id = self._api.create_repo(
            self.hub_model_id, exist_ok=True
        ).repo_id

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        if self.save_strategy == "steps" and self._steps % self.save_steps == 0:
            self._save_and_upload(f"Training in progress steps {self._steps}")

    def on_epoch_end(self, epoch, logs=None):
        self._last_logs = dict(logs or {})
        if self.save_strategy != "epoch":
            return
        if self._training_state is not None:
            self._training_state.on_epoch_end(epoch, logs)
        self._save_and_upload(f"Training in progress epoch {epoch + 1}")

    def on_train_end(self, logs=None):
        if not self._chief:
            return
        if self._upload is not None:
            logger.info("Waiting for the upload to %s to finish.", self.hub_model_id)
            self._upload.exception()  # waits
            self._finish_upload()
        self._save()
        self._upload_snapshot(self._snapshot(), "End of training")

    def _save_and_upload(self, commit_message):
        if not self._chief:
            return
        self._save()
        if self._upload is not None and not self._upload.done():
            logger.info(
                "The previous upload to %s is still running; this save stays "
                "local until the next one.",
                self.hub_model_id,
            )
            return
        self._finish_upload()
        self._upload = self._api.run_as_future(
            self._upload_snapshot, self._snapshot(), commit_message
        )

    def _finish_upload(self):
        """Reports a background upload that failed; the next one retries."""
        upload, self._upload = self._upload, None
        if upload is not None and upload.exception() is not None:
            logger.warning(
                "Uploading to %s failed (%s: %s); the next save is uploaded again.",
                self.hub_model_id,
                type(upload.exception()).__name__,
                upload.exception(),
            )

    def _save(self):
        self.model.save_pretrained(self.output_dir, tokenizer=self.tokenizer)
        card_args = dict(self._card_args)
        card = model_card(
            self.model,
            model_name=card_args.pop("model_name", None) or self.hub_model_id,
            results=card_args.pop("results", None) or self._results(),
            training_hyperparameters={
                **self._hyperparameters(),
                **(card_args.pop("training_hyperparameters", None) or {}),
            },
            **card_args,
        )
        # Atomic: an upload may still read the README.md of the last save.
        writing.write_atomically(
            self.output_dir, {"README.md": writing.text_writer(card.content)}
        )

    def _snapshot(self):
        """Hard links to the saved files, which later saves replace, never edit."""
        snapshot = tempfile.mkdtemp(prefix=_SNAPSHOT_PREFIX, dir=self.output_dir)
        for root, directories, names in os.walk(self.output_dir):
            # Hidden: temporary files of a save, other snapshots, journals.
            directories[:] = [name for name in directories if not name.startswith(".")]
            relative = os.path.relpath(root, self.output_dir)
            for name in names:
                if name.startswith("."):
                    continue
                target = os.path.normpath(os.path.join(snapshot, relative, name))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    os.link(os.path.join(root, name), target)
                except OSError:  # a file system without hard links
                    shutil.copy2(os.path.join(root, name), target)
        return snapshot

    def _upload_snapshot(self, snapshot, commit_message):
        options = {}
        if self.checkpoint:
            # Earlier epochs' training states leave the repo as they leave disk.
            options["delete_patterns"] = [f"{_CHECKPOINT_DIR}/*"]
        try:
            return self._api.upload_folder(
                repo_id=self.hub_model_id,
                folder_path=snapshot,
                commit_message=commit_message,
                **options,
            )
        finally:
            shutil.rmtree(snapshot, ignore_errors=True)

    def _results(self):
        return {
            name: float(value)
            for name, value in self._last_logs.items()
            if isinstance(value, (int, float, np.number)) and np.ndim(value) == 0
        }

    def _hyperparameters(self):
        values = {}
        optimizer = self.model.optimizer
        if optimizer is not None:
            config = optimizer.get_config()
            values["optimizer"] = type(optimizer).__name__
            learning_rate = config.get("learning_rate")
            if isinstance(learning_rate, dict):  # a schedule, serialized
                learning_rate = learning_rate.get("class_name", "schedule")
            values["learning_rate"] = learning_rate
            for name in ("weight_decay", "beta_1", "beta_2", "epsilon"):
                if config.get(name) is not None:
                    values[name] = config[name]
            for name in ("clipnorm", "global_clipnorm"):
                if config.get(name) is not None:
                    values[name] = config[name]
        if (self.params or {}).get("epochs") is not None:
            values["epochs"] = self.params["epochs"]
        values["training_precision"] = self.model.dtype_policy.name
        values.update(self._card_rows)
        return values


class _TrainingState(ResumableCheckpoint):
    """`ResumableCheckpoint`'s writing without its restore (v4 never resumed)."""

    def on_train_begin(self, logs=None):
        self._strategy = distribute_strategy(self.model)
        self._chief = is_chief(self._strategy)
        if self._chief:
            self._remove_partial_writes()


def _card_arguments(arguments):
    """Splits model-card arguments into `model_card` keywords and extra table rows.

    v4's names are translated; any other unknown name raises.
    """
    accepted = set(inspect.signature(model_card).parameters) - {"model"}
    unknown = sorted(set(arguments) - accepted - _V4_CARD_ARGUMENTS)
    if unknown:
        raise ConfigError(
            f"PushToHubCallback got unknown model-card arguments {unknown}. "
            f"Expected those of bert_keras' model_card ({sorted(accepted)}) or "
            f"v4's ({sorted(_V4_CARD_ARGUMENTS)}). Received: {unknown}"
        )
    card = {name: value for name, value in arguments.items() if name in accepted}
    if arguments.get("finetuned_from") is not None:
        card.setdefault("base_model", arguments["finetuned_from"])
    datasets = arguments.get("dataset_tags")
    if datasets is not None:
        card.setdefault(
            "datasets", [datasets] if isinstance(datasets, str) else datasets
        )
    tasks = arguments.get("tasks")
    if tasks is not None:
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        card["tags"] = list(card.get("tags") or []) + tasks
    rows = {
        name: arguments[name]
        for name in ("dataset", "dataset_args")
        if arguments.get(name) is not None
    }
    return card, rows
