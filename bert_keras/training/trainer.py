"""Training with the task's defaults: compile, fit, and checks on every step.

A task model declares what it trains with once, in `task()`: its loss, its
metrics and the ranges its labels must lie in (see `Task`). `TaskTrainer`
turns that into `compile()` defaults, per-step input and label checks (a bad
batch changes no weight), and Keras' `compute_loss` / `compute_metrics`.
"""

import collections.abc
import dataclasses
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bert_keras.errors import InputError
from bert_keras.keras_private import ModelHooks
from bert_keras.keras_private import all_layers
from bert_keras.keras_private import distribute_strategy
from bert_keras.keras_private import has_compiled_keras_loss_or_metrics
from bert_keras.keras_private import metrics_group
from bert_keras.keras_private import set_loss_tracker
from bert_keras.training.distribute import peer_errors_as_worker_lost
from bert_keras.training.inputs import graph_errors_as_input_errors
from bert_keras.training.inputs import prepare_inputs
from bert_keras.training.labels import check_labels
from bert_keras.training.labels import per_example
from bert_keras.training.metrics import GlobalBatchLoss
from bert_keras.training.optimization import NO_DECAY_NAMES
from bert_keras.training.optimization import create_optimizer


def _no_labels(y, x):
    return []


@dataclasses.dataclass
class Task:
    """What a task model trains with, declared in one place.

    Attributes:
        loss: `loss(y, y_pred, sample_weight)`, a scalar: this replica's share
            of the global-batch mean (see `bert_keras.training.losses`).
        metrics: list of `(keras.metrics.Metric, view)`; `view(y, y_pred,
            sample_weight)` gives the metric's `(y_true, y_pred, sample_weight)`.
        label_ranges: `label_ranges(y, x)` returns `[(name, labels, high,
            what, ignore)]`: each label in `[0, high)` (`what` says where
            `high` comes from) or, when `ignore`, -100. Checked before a
            training or evaluation step uses the labels.

    Example:

    >>> task = Task(loss=lambda y, y_pred, sample_weight: 0.0)
    >>> task.metrics, task.label_ranges(None, None)
    ([], [])
    """

    loss: Callable
    metrics: list = dataclasses.field(default_factory=list)
    label_ranges: Callable = _no_labels


class TaskTrainer(ModelHooks):
    """Keras' training entry points with the task's defaults and checks.

    Mixed into `BertPreTrainedModel` before `keras.Model`. Subclasses define
    `task()` (None for the bare encoder).
    """

    def task(self):
        """Returns this model's `Task`, or None when it has no training task."""
        return None

    def needs_data_to_build(self):
        # Built at construction, with no compiled Keras loss or metric objects:
        # nothing needs a batch (see keras_private.ModelHooks).
        return not all(
            layer.built for layer in all_layers(self)
        ) or has_compiled_keras_loss_or_metrics(self)

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        # Labels given as arrays are checked whole before the first step;
        # those in a dataset, batch by batch before the step that uses them.
        self._check_array_labels(x, y)
        if isinstance(validation_data, (tuple, list)) and len(validation_data) > 1:
            self._check_array_labels(*validation_data[:2])
        x = self._guard_data(x)
        if isinstance(validation_data, tf.data.Dataset):
            validation_data = self._guard_data(validation_data)
        backups = [
            callback.backup_dir
            for callback in kwargs.get("callbacks") or ()
            if hasattr(callback, "backup_dir")
        ]
        with (
            peer_errors_as_worker_lost(self.distribute_strategy, *backups[:1]),
            graph_errors_as_input_errors(),
        ):
            return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_array_labels(x, y)
        with (
            peer_errors_as_worker_lost(self.distribute_strategy),
            graph_errors_as_input_errors(),
        ):
            return super().evaluate(self._guard_data(x), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        with (
            peer_errors_as_worker_lost(self.distribute_strategy),
            graph_errors_as_input_errors(),
        ):
            x = self._guard_data(x)
            self._trace_predict_for_the_dataset(x)
            return super().predict(x, *args, **kwargs)

    def _trace_predict_for_the_dataset(self, data):
        """Traces the predict function once for every batch of `data`.

        Keras traces it for the first batch's shape, then again, relaxed,
        for the first batch of another shape: with batches padded to their
        longest example (`to_tf_dataset`), every `predict` call paid two or
        three traces. Traced up front for the dataset's own spec (None where
        batches differ), it serves every batch.
        """
        if (
            not isinstance(data, tf.data.Dataset)
            or self.run_eagerly
            or distribute_strategy(self) is not None
            or tf.distribute.has_strategy()
        ):
            return
        self.make_predict_function()
        spec = [data.element_spec] * self.steps_per_execution
        self.predict_function.get_concrete_function(spec)  # cached per spec

    def _check_array_labels(self, x, y):
        """Checks labels held in memory (arrays, dicts of arrays) up front."""
        if y is None or getattr(self, "_task_loss", None) is None:
            return
        if isinstance(x, (tf.data.Dataset, keras.utils.PyDataset)):
            return
        input_ids = x.get("input_ids") if isinstance(x, collections.abc.Mapping) else x
        if input_ids is None:
            return  # refused with its own InputError when the step prepares inputs
        # Only the shape of input_ids matters (multiple choice counts choices).
        features = {"input_ids": tf.convert_to_tensor(input_ids)}
        if isinstance(y, list) and not any(hasattr(v, "shape") for v in y):
            y = np.asarray(y)  # a plain list of labels, not a list of arrays
        y = self._aliased(y)
        self._check_labels(tf.nest.map_structure(tf.convert_to_tensor, y), features)

    def _xla_compiled(self):
        """Whether steps run as XLA programs: `jit_compile`, or on a TPU.

        Under TPUStrategy Keras sets `jit_compile` to False, yet the TPU
        compiles the whole step with XLA all the same.
        """
        return bool(self.jit_compile) or isinstance(
            distribute_strategy(self), tf.distribute.TPUStrategy
        )

    def _guard_data(self, data):
        """Checks inputs before they enter an XLA-compiled step.

        XLA drops in-graph asserts and clamps out-of-range gathers, so with
        `jit_compile=True` the checks run on the data on its way in: eagerly
        for arrays, inside the `tf.data` pipeline for datasets.
        """
        if not self.compiled or not self._xla_compiled() or data is None:
            return data
        if isinstance(data, tf.data.Dataset):
            # Not converted by autograph, so a static-shape InputError raised
            # while tracing reaches the caller as itself.
            @tf.autograph.experimental.do_not_convert
            def check(*element):
                features = element[0]
                checked = dict(features) if isinstance(features, dict) else {}
                checked.update(prepare_inputs(self, features))
                if len(element) == 1:
                    return checked
                labels = self._checked_labels(element[1], checked)
                return (checked, labels, *element[2:])

            return data.map(check)
        if isinstance(data, (collections.abc.Mapping, np.ndarray)):
            prepare_inputs(self, data)
        return data

    def train_on_batch(self, *args, **kwargs):
        with graph_errors_as_input_errors():
            return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        with graph_errors_as_input_errors():
            return super().test_on_batch(*args, **kwargs)

    def predict_on_batch(self, *args, **kwargs):
        with graph_errors_as_input_errors():
            return super().predict_on_batch(*args, **kwargs)

    def _check_labels(self, y, x):
        return check_labels(self._label_ranges(y, x))

    def _checked_labels(self, y, x):
        """`y`, made to depend on the label checks (graph) or checked (eager)."""
        if y is None or self._task_loss is None:
            return y
        checks = self._check_labels(y, x)
        if not checks:
            return y
        with tf.control_dependencies(checks):
            return tf.nest.map_structure(tf.identity, y)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Configures training with the task's defaults.

        Args:
            optimizer: `"auto"` for AdamW (lr 5e-5, weight decay 0.01 on
                everything but biases and LayerNorm, global clipnorm 1.0),
                or any Keras optimizer.
            loss: `"auto"` for the task's loss (HF's: cross-entropy with
                label -100 ignored, MSE for regression, ...), or a Keras loss
                applied to the output dict.
            metrics: `"auto"` for the task's metrics, or Keras metrics.
            **kwargs: passed to `keras.Model.compile`.

        Example:

        >>> model = BertForSequenceClassification(config)
        >>> model.compile()
        >>> history = model.fit(dataset, epochs=3, verbose=0)
        """
        default_optimizer = isinstance(optimizer, str) and optimizer == "auto"
        if default_optimizer:
            optimizer = create_optimizer()
        task_loss = isinstance(loss, str) and loss == "auto"
        task_metrics = isinstance(metrics, str) and metrics == "auto"
        task = self.task() if task_loss or task_metrics else None
        self._task_loss = task.loss if task and task_loss else None
        self._label_ranges = task.label_ranges if task and task_loss else _no_labels
        self._task_compile = {"loss": task_loss, "metrics": task_metrics}
        self._default_optimizer = default_optimizer
        object.__setattr__(
            self, "_task_metrics", list(task.metrics) if task and task_metrics else []
        )
        per_output = [] if task_metrics else self._metrics_per_output(metrics)
        if per_output:
            self._task_metrics.extend(per_output)
            metrics = None
        group = [metric for metric, _ in self._task_metrics]
        # One group, so Keras' callbacks see each metric's direction.
        object.__setattr__(
            self,
            "_task_metrics_group",
            [metrics_group(group, "task_metrics")] if group else [],
        )
        super().compile(
            optimizer=optimizer,
            loss=None if task_loss else loss,
            metrics=None if task_metrics else metrics,
            **kwargs,
        )
        # The logged loss of a step is the global batch's, on any replica count.
        set_loss_tracker(self, GlobalBatchLoss(name="loss"))

    def _metrics_per_output(self, metrics):
        """A flat metric list for a model of several outputs, applied to each
        output against its label, as Keras 2 did and transformers v4 relied on
        (QA: start and end; pretraining: MLM and NSP)."""
        outputs = getattr(self, "label_outputs", None)
        if not outputs or not isinstance(metrics, (list, tuple)):
            return []
        if not metrics or any(isinstance(m, (list, tuple, dict)) for m in metrics):
            return []
        pairs = []
        for position, (label, output) in enumerate(outputs.items()):
            for metric in metrics:
                pairs.append(_output_metric(metric, label, output, position))
        return pairs

    def get_compile_config(self):
        config = super().get_compile_config()
        task = getattr(self, "_task_compile", None)
        if config is not None and task is not None:
            config = dict(config)
            for key, is_auto in task.items():
                if is_auto:
                    config[key] = "auto"
            # AdamW's config does not hold its weight-decay exclusions.
            config["bert_keras_no_decay"] = self._default_optimizer
        return config

    def compile_from_config(self, config):
        config = dict(config)
        no_decay = config.pop("bert_keras_no_decay", False)
        config = keras.saving.deserialize_keras_object(config)
        if no_decay:
            config["optimizer"].exclude_from_weight_decay(
                var_names=list(NO_DECAY_NAMES)
            )
        self.compile(**config)
        if self.built and hasattr(self.optimizer, "build"):
            self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        data = self._labels_from_features(data)
        # Every op of the step, the optimizer's weight decay and step count
        # included, waits for the input and label checks: a bad batch
        # changes nothing.
        with tf.control_dependencies(self._step_checks(data)):
            return super().train_step(data)

    def test_step(self, data):
        data = self._labels_from_features(data)
        with tf.control_dependencies(self._step_checks(data)):
            return super().test_step(data)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, collections.abc.Mapping):
            x = {k: v for k, v in x.items() if k not in self._label_keys()}
        return super().predict_step(x)

    def _label_keys(self):
        return tuple(self.label_names) + tuple(self.label_aliases)

    def _aliased(self, y):
        """A labels dict under the class's label names (v4 TF's older names,
        e.g. next_sentence_label, renamed)."""
        if not isinstance(y, collections.abc.Mapping):
            return y
        return {self.label_aliases.get(k, k): v for k, v in y.items()}

    def _labels_from_features(self, data):
        """Labels given inside the features dict (transformers v4's "internal
        loss" idiom: `fit(dataset_of_dicts)` after `compile(optimizer)`),
        moved to where Keras passes labels."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(y, collections.abc.Mapping):
            return keras.utils.pack_x_y_sample_weight(
                x, self._aliased(y), sample_weight
            )
        if y is not None or not isinstance(x, collections.abc.Mapping):
            return data
        names = self._label_keys()
        if not any(name in x for name in names):
            return data
        labels = {self.label_aliases.get(k, k): v for k, v in x.items() if k in names}
        features = {k: v for k, v in x.items() if k not in names}
        return keras.utils.pack_x_y_sample_weight(features, labels, sample_weight)

    def _step_checks(self, data):
        if self._xla_compiled():
            # XLA drops asserts; `_guard_data` checked the data on the way in.
            return []
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        checks = list(prepare_inputs(self, x).values())
        if y is not None and getattr(self, "_task_loss", None) is not None:
            checks += self._check_labels(y, x)
        return checks

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if self._task_loss is None:
            return super().compute_loss(
                x, y, _plain(y_pred), sample_weight=sample_weight, training=training
            )
        if y is None:
            raise InputError(
                f"{type(self).__name__} needs labels to compute its loss: give fit "
                "a dataset of (features, labels). Received: labels=None"
            )
        # Task losses are already this replica's share of the global-batch
        # mean (bert_keras.training.losses); extra losses are split like Keras splits
        # its own under tf.distribute.
        loss = self._task_loss(y, y_pred, per_example(sample_weight))
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), loss.dtype) / replicas
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for metric, view in self._task_metrics:
            metric.update_state(*view(y, y_pred, per_example(sample_weight)))
        return super().compute_metrics(
            x, y, _plain(y_pred), sample_weight=sample_weight
        )

    @property
    def metrics(self):
        return super().metrics + getattr(self, "_task_metrics_group", [])


def _plain(y_pred):
    # Keras matches a loss/metric dict to outputs only when the types agree,
    # and a `ModelOutput` is a dict subclass.
    if isinstance(y_pred, collections.abc.Mapping):
        return dict(y_pred)
    return y_pred


def _output_metric(metric, label, output, position):
    """A `(metric, view)` pair: a copy of `metric` on `y_pred[output]` and
    its label, named `{output}_{metric name}` as Keras 2 named them."""
    if isinstance(metric, str):
        if metric in ("accuracy", "acc"):
            metric = keras.metrics.SparseCategoricalAccuracy(name=metric)
        else:
            metric = keras.metrics.get(metric)
    config = dict(metric.get_config(), name=f"{output}_{metric.name}")
    copy = type(metric).from_config(config)

    def view(y, y_pred, sample_weight):
        labels = y[label] if isinstance(y, collections.abc.Mapping) else y[position]
        return labels, y_pred[output], sample_weight

    return copy, view
