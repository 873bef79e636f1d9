"""What every bert_keras model shares: config, inputs, checkpoints, training.

Each model is a functional `keras.Model` built inside its class from a
`transformers.BertConfig`. This base class adds the Hugging Face surface
(`from_pretrained`, `save_pretrained`, `push_to_hub`, HF input names) and the
training defaults (`compile()` with the task's loss and metrics).
"""

import collections.abc
import contextlib

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bert_keras.config import BertConfig
from bert_keras.config import as_config
from bert_keras.config import validate_config
from bert_keras.errors import InputError
from bert_keras.checkpoints.keys import nest

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# HF model arguments we know but do not take: refuse rather than ignore them.
_UNSUPPORTED_INPUTS = ("position_ids", "inputs_embeds", "head_mask")


def bert_inputs(rank=2):
    """The functional model's inputs: int32, any batch and sequence length."""
    shape = (None,) * (rank - 1)
    return {
        name: keras.Input(shape=shape, dtype="int32", name=name) for name in INPUT_NAMES
    }


class BertPreTrainedModel(keras.Model):
    """Base class of every bert_keras model.

    Subclasses build their layers and functional graph in `__init__(config)`
    and set the class attributes below. Users never instantiate this class.
    """

    base_model_prefix = "bert"
    # The transformers class whose checkpoints this class reads and writes.
    hf_architecture = None
    # Inputs are (batch, seq); BertForMultipleChoice takes (batch, choices, seq).
    input_rank = 2
    # Inputs beyond the three HF ones that this model requires (int32).
    extra_input_names = ()

    def __init__(self, *args, config, **kwargs):
        dtype = kwargs.get("dtype")
        super().__init__(*args, **kwargs)
        if dtype is not None:
            # Functional models do not keep the policy they are given; the
            # layers got it, and get_config() must report it.
            self.dtype_policy = keras.dtype_policies.get(dtype)
        self.config = config
        self._task_loss = None
        # Held outside Keras' state tracker (which is locked once the model is
        # built); reported through the `metrics` property below.
        object.__setattr__(self, "_task_metrics", [])

    @staticmethod
    def _prepare_config(config):
        config = as_config(config)
        validate_config(config)
        return config

    @property
    def hf_tied_weights(self):
        """`{tied_key: source_key}`: HF keys not written because shared."""
        return {}

    def hf_variables(self):
        """Returns `{hf_state_dict_key: (variable, transpose)}` for every weight.

        Keys are exactly those of the matching transformers class, e.g.
        `bert.encoder.layer.0.attention.self.query.weight`. Tied weights
        appear once, under their source key.
        """
        return nest(self._hf_children())

    def _hf_children(self):
        raise NotImplementedError

    # --- Inputs -------------------------------------------------------------

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(self._prepare_inputs(inputs), *args, **kwargs)

    def _prepare_inputs(self, inputs):
        """Fills default masks, casts to int32 and checks values fit the config."""
        if not isinstance(inputs, collections.abc.Mapping):
            inputs = {"input_ids": inputs}
        for name in _UNSUPPORTED_INPUTS:
            if inputs.get(name) is not None:
                raise InputError(
                    f"bert_keras models do not take `{name}`; pass input_ids, "
                    "attention_mask and token_type_ids (right padding). "
                    f"Received: {name} of shape {ops.shape(inputs[name])}"
                )
        if inputs.get("input_ids") is None:
            raise InputError(
                "Model inputs must contain `input_ids`. Expected a dict with keys "
                f"{list(INPUT_NAMES)} (as returned by a HF tokenizer). "
                f"Received: keys={sorted(inputs)}"
            )
        input_ids = inputs["input_ids"]
        for name in self.extra_input_names:
            if inputs.get(name) is None:
                raise InputError(
                    f"{type(self).__name__} was built to take `{name}` as well. "
                    f"Received: keys={sorted(inputs)}"
                )
        if isinstance(input_ids, keras.KerasTensor):
            names = INPUT_NAMES + tuple(self.extra_input_names)
            return {name: inputs[name] for name in names if name in inputs}
        input_ids = _to_tensor(input_ids, "input_ids")
        prepared = {"input_ids": input_ids}
        for name, default in (("attention_mask", 1), ("token_type_ids", 0)):
            value = inputs.get(name)
            if value is None:
                value = tf.fill(tf.shape(input_ids), default)
            else:
                value = _to_tensor(value, name)
            prepared[name] = value
        for name in self.extra_input_names:
            prepared[name] = _to_tensor(inputs[name], name)
        checks = self._check_inputs(prepared)
        # In a graph the lookups must wait for the checks, or an out-of-range
        # gather fails first with an opaque message.
        with tf.control_dependencies(checks):
            # Checked first, cast second: an int64 id of 2**32 + 5 must not
            # wrap to 5.
            return {
                name: tf.identity(tf.cast(value, tf.int32))
                for name, value in prepared.items()
            }

    def _check_inputs(self, inputs):
        config = self.config
        input_ids = inputs["input_ids"]
        rank = input_ids.shape.rank
        if rank != self.input_rank:
            layout = "(batch, choices, seq)" if self.input_rank == 3 else "(batch, seq)"
            raise InputError(
                f"{type(self).__name__} expects `input_ids` of shape {layout}. "
                f"Received: input_ids of shape {tuple(input_ids.shape)}"
            )
        for name in ("attention_mask", "token_type_ids"):
            if inputs[name].shape.rank != rank or (
                inputs[name].shape.is_fully_defined()
                and input_ids.shape.is_fully_defined()
                and inputs[name].shape != input_ids.shape
            ):
                raise InputError(
                    f"`{name}` must have the same shape as `input_ids`. Received: "
                    f"{name} of shape {tuple(inputs[name].shape)}, input_ids of "
                    f"shape {tuple(input_ids.shape)}"
                )
        seq_len = input_ids.shape[-1]
        limit = config.max_position_embeddings
        if seq_len is not None and seq_len > limit:
            raise InputError(
                f"Sequences are {seq_len} tokens long but the model has position "
                f"embeddings for {limit} (max_position_embeddings). Truncate the "
                f"inputs, e.g. tokenizer(..., truncation=True, max_length={limit}). "
                f"Received: input_ids of shape {tuple(input_ids.shape)}"
            )
        ranges = [
            ("input_ids", config.vocab_size, "vocab_size"),
            ("token_type_ids", config.type_vocab_size, "type_vocab_size"),
        ]
        if "masked_lm_positions" in inputs:
            sequence = input_ids.shape[-1]
            if sequence is None:
                sequence = tf.shape(input_ids)[-1]
            ranges.append(("masked_lm_positions", sequence, "sequence length"))
        if tf.executing_eagerly():
            for name, high, field in ranges:
                values = inputs[name].numpy()
                if values.size and (values.min() < 0 or values.max() >= high):
                    bad = values[(values < 0) | (values >= high)]
                    raise InputError(
                        f"`{name}` must be in [0, {high}) ({field} of the config). "
                        f"Was the text tokenized with this model's tokenizer? "
                        f"Received: {name} containing {bad[:5].tolist()}"
                    )
            mask = inputs["attention_mask"].numpy()
            left = (mask[..., 0] == 0) & mask.any(axis=-1)
            if left.any():
                raise InputError(_left_padding_message(np.argwhere(left)[0].tolist()))
            return []
        # Inside tf.function (fit / predict): the checks become graph asserts,
        # turned back into InputError by `_graph_errors_as_input_errors`.
        checks = []
        for name, high, field in ranges:
            values = inputs[name]
            bad = tf.logical_or(values < 0, values >= tf.cast(high, values.dtype))
            check = tf.debugging.Assert(
                tf.logical_not(tf.reduce_any(bad)),
                [
                    f"{_GRAPH_ERROR_MARK}`{name}` must be in [0, {high}) ({field} of "
                    "the config; -100 is a label value, not an input id). Was the "
                    f"text tokenized with this model's tokenizer? Received: {name} "
                    "containing",
                    tf.boolean_mask(values, bad),
                ],
                summarize=5,
            )
            checks.append(check)
        check = tf.debugging.Assert(
            tf.shape(input_ids)[-1] <= limit,
            [
                f"{_GRAPH_ERROR_MARK}Sequences must be at most "
                f"max_position_embeddings={limit} tokens long; truncate the inputs "
                "(tokenizer(..., truncation=True)). Received: input_ids of shape",
                tf.shape(input_ids),
            ],
        )
        mask = inputs["attention_mask"]
        left = tf.logical_and(
            tf.equal(mask[..., 0], 0), tf.reduce_any(tf.not_equal(mask, 0), axis=-1)
        )
        padding_check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(left)),
            [
                _GRAPH_ERROR_MARK + _left_padding_message() + " Received: row",
                tf.argmax(tf.reshape(tf.cast(left, tf.int32), [-1])),
            ],
        )
        return checks + [check, padding_check]

    # --- Keras entry points that run graphs -----------------------------------

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        # Labels given as arrays are checked whole before the first step;
        # those in a dataset, batch by batch before the step that uses them.
        self._check_array_labels(x, y)
        if isinstance(validation_data, (tuple, list)) and len(validation_data) > 1:
            self._check_array_labels(*validation_data[:2])
        x = self._guard_data(x)
        if isinstance(validation_data, tf.data.Dataset):
            validation_data = self._guard_data(validation_data)
        with _graph_errors_as_input_errors():
            return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_array_labels(x, y)
        with _graph_errors_as_input_errors():
            return super().evaluate(self._guard_data(x), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        with _graph_errors_as_input_errors():
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
            or self._distribute_strategy is not None
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
        self._check_labels(tf.nest.map_structure(tf.convert_to_tensor, y), features)

    def _guard_data(self, data):
        """Checks inputs before they enter an XLA-compiled step.

        XLA drops in-graph asserts and clamps out-of-range gathers, so with
        `jit_compile=True` the checks run on the data on its way in: eagerly
        for arrays, inside the `tf.data` pipeline for datasets.
        """
        if not self.compiled or not self.jit_compile or data is None:
            return data
        if isinstance(data, tf.data.Dataset):
            # Not converted by autograph, so a static-shape InputError raised
            # while tracing reaches the caller as itself.
            @tf.autograph.experimental.do_not_convert
            def check(*element):
                features = element[0]
                checked = dict(features) if isinstance(features, dict) else {}
                checked.update(self._prepare_inputs(features))
                if len(element) == 1:
                    return checked
                labels = self._checked_labels(element[1], checked)
                return (checked, labels, *element[2:])

            return data.map(check)
        if isinstance(data, (collections.abc.Mapping, np.ndarray)):
            self._prepare_inputs(data)
        return data

    def train_on_batch(self, *args, **kwargs):
        with _graph_errors_as_input_errors():
            return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        with _graph_errors_as_input_errors():
            return super().test_on_batch(*args, **kwargs)

    def predict_on_batch(self, *args, **kwargs):
        with _graph_errors_as_input_errors():
            return super().predict_on_batch(*args, **kwargs)

    # --- Checkpoints --------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs):
        """Loads a Hugging Face checkpoint (Hub id or local directory).

        Args:
            name_or_path: str, a Hub id such as `"google-bert/bert-base-uncased"`
                or a directory holding config.json and model.safetensors.
            **kwargs: loading options (`ignore_mismatched_sizes`,
                `output_loading_info`, `cache_dir`, `revision`, `token`,
                `local_files_only`, `allow_pickle`) and config overrides
                (`num_labels=3`, `hidden_dropout_prob=0.0`, ...).

        Returns:
            The model, with every weight the checkpoint holds.

        Example:

        >>> model = BertForSequenceClassification.from_pretrained(
        ...     "google-bert/bert-base-uncased", num_labels=2)
        """
        from bert_keras.checkpoints import hub

        return hub.load_pretrained(cls, name_or_path, **kwargs)

    def save_pretrained(self, save_directory, tokenizer=None, **kwargs):
        """Writes config.json and model.safetensors that transformers opens.

        Args:
            save_directory: str or path; created if missing.
            tokenizer: optional transformers tokenizer saved alongside.
            **kwargs: e.g. `max_shard_size`.

        Returns:
            list of the files written.

        Example:

        >>> model.save_pretrained("out/", tokenizer=tokenizer)
        """
        from bert_keras.checkpoints import hub

        return hub.save_pretrained(self, save_directory, tokenizer=tokenizer, **kwargs)

    def push_to_hub(self, repo_id, **kwargs):
        """Uploads the checkpoint and a model card to the Hub in one commit.

        Example:

        >>> model.push_to_hub("me/my-bert", tokenizer=tokenizer)
        """
        from bert_keras.checkpoints import hub

        return hub.push_to_hub(self, repo_id, **kwargs)

    # --- Keras serialization ------------------------------------------------

    def get_config(self):
        return {
            "config": self.config.to_dict(),
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        bert_config = BertConfig.from_dict(config.pop("config"))
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(bert_config, **config)

    # --- Training -----------------------------------------------------------

    def default_loss(self):
        """Returns `loss(y, y_pred, sample_weight)` for this task, or None."""
        return None

    def default_metrics(self):
        """Returns `[(keras.metrics.Metric, view)]`; `view(y, y_pred)` gives
        `(y_true, y_pred, sample_weight)` for that metric."""
        return []

    def label_ranges(self, y, x):
        """Returns `[(name, labels, high, what, ignore)]` for the task's loss.

        Each label must lie in `[0, high)` (`what` says where `high` comes
        from) or, when `ignore` is true, be -100. Checked before a training
        or evaluation step uses the labels.
        """
        return []

    def _check_labels(self, y, x):
        """Raises InputError eagerly, or returns graph asserts, for bad labels."""
        checks = []
        for name, labels, high, what, ignore in self.label_ranges(y, x):
            labels = tf.convert_to_tensor(labels)
            if labels.dtype.is_floating:
                # Integral floats are fine; 0.5 is not a class.
                fraction = tf.not_equal(labels, tf.floor(labels))
                labels = tf.where(fraction, tf.cast(-1, labels.dtype), labels)
            labels = tf.cast(labels, tf.int64)
            high = tf.cast(high, tf.int64)
            bad = (labels < 0) | (labels >= high)
            if ignore:
                bad &= tf.not_equal(labels, -100)
            allowed = (
                "[0, {}) (" + what + ")" + (" or -100 (ignored)" if ignore else "")
            )
            hint = (
                "Map the labels to 0..N-1 and give the model N labels "
                "(from_pretrained(..., num_labels=N))"
                if what == "num_labels"
                else "Check how the labels were made"
            )
            if not ignore:
                hint += (
                    "; -100 marks ignored positions only in token "
                    "classification and masked LM labels"
                )
            if tf.executing_eagerly():
                if bool(tf.reduce_any(bad)):
                    values = tf.boolean_mask(labels, bad).numpy()
                    raise InputError(
                        f"Labels `{name}` must be in {allowed.format(int(high))}. "
                        f"{hint}. Received: {name} containing {values[:5].tolist()}"
                    )
                continue
            static_high = tf.get_static_value(high)
            if static_high is None:
                head = [f"{_GRAPH_ERROR_MARK}Labels `{name}` must be in [0,", high]
                head.append(allowed[len("[0, {}") :] + ".")
            else:
                head = [
                    f"{_GRAPH_ERROR_MARK}Labels `{name}` must be in "
                    f"{allowed.format(int(static_high))}."
                ]
            checks.append(
                tf.debugging.Assert(
                    tf.logical_not(tf.reduce_any(bad)),
                    head
                    + [
                        f"{hint}. Received: {name} containing",
                        tf.boolean_mask(labels, bad),
                    ],
                    summarize=5,
                )
            )
        return checks

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

        >>> model.compile()
        >>> model.fit(dataset_of_features_and_labels, epochs=3)
        """
        from bert_keras.training.optimization import create_optimizer

        default_optimizer = isinstance(optimizer, str) and optimizer == "auto"
        if default_optimizer:
            optimizer = create_optimizer()
        task_loss = isinstance(loss, str) and loss == "auto"
        task_metrics = isinstance(metrics, str) and metrics == "auto"
        self._task_loss = self.default_loss() if task_loss else None
        self._task_compile = {"loss": task_loss, "metrics": task_metrics}
        self._default_optimizer = default_optimizer
        object.__setattr__(
            self, "_task_metrics", self.default_metrics() if task_metrics else []
        )
        super().compile(
            optimizer=optimizer,
            loss=None if task_loss else loss,
            metrics=None if task_metrics else metrics,
            **kwargs,
        )

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
        from bert_keras.training.optimization import NO_DECAY_NAMES

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

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a tf.distribute strategy, Keras' TF trainer takes one batch
        # from fit's iterator to build the model, even when nothing needs
        # data to build. With a repeated dataset and `steps_per_epoch` that
        # batch is never trained on, so a mirrored run would see other
        # batches than a single-device one. Our models are built at
        # construction and compile no Keras loss or metric objects: when that
        # holds, build the optimizer without touching the data.
        needs_data = (
            not all(layer.built for layer in self._flatten_layers())
            or getattr(self, "_compile_metrics", None) is not None
            or getattr(self, "_compile_loss", None) is not None
        )
        if iterator is None or needs_data or self._distribute_strategy is None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        with self.distribute_strategy.scope():
            if self.optimizer is not None and not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        # Every op of the step, the optimizer's weight decay and step count
        # included, waits for the input and label checks: a bad batch
        # changes nothing.
        with tf.control_dependencies(self._step_checks(data)):
            return super().train_step(data)

    def test_step(self, data):
        with tf.control_dependencies(self._step_checks(data)):
            return super().test_step(data)

    def _step_checks(self, data):
        if self.jit_compile:
            # XLA drops asserts; `_guard_data` checked the data on the way in.
            return []
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        checks = list(self._prepare_inputs(x).values())
        if y is not None and getattr(self, "_task_loss", None) is not None:
            checks += self._check_labels(y, x)
        return checks

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if self._task_loss is None:
            return super().compute_loss(
                x, y, y_pred, sample_weight=sample_weight, training=training
            )
        if y is None:
            raise InputError(
                f"{type(self).__name__} needs labels to compute its loss: give fit "
                "a dataset of (features, labels). Received: labels=None"
            )
        # Task losses are already this replica's share of the global-batch
        # mean (bert_keras.training.losses); extra losses are split like Keras splits
        # its own under tf.distribute.
        loss = self._task_loss(y, y_pred, _per_example(sample_weight))
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), loss.dtype) / replicas
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for metric, view in self._task_metrics:
            metric.update_state(*view(y, y_pred, _per_example(sample_weight)))
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    @property
    def metrics(self):
        return super().metrics + [metric for metric, _ in self._task_metrics]


_GRAPH_ERROR_MARK = "bert_keras input check: "


def _per_example(sample_weight):
    """One (batch,) weight tensor: Keras copies `sample_weight` into the shape
    of dict or tuple labels (QA, pretraining); every copy is the same."""
    while isinstance(sample_weight, (collections.abc.Mapping, list, tuple)):
        values = list(
            sample_weight.values()
            if isinstance(sample_weight, collections.abc.Mapping)
            else sample_weight
        )
        sample_weight = values[0] if values else None
    return sample_weight


@contextlib.contextmanager
def _graph_errors_as_input_errors():
    """Re-raises a failed in-graph input check as the InputError it stands for."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = error.message
        if _GRAPH_ERROR_MARK not in message:
            raise
        message = message[message.index(_GRAPH_ERROR_MARK) + len(_GRAPH_ERROR_MARK) :]
        message = message.split("\n")[0].replace("] [", " ").rstrip("]")
        message = message.replace("\\'", "'")
        raise InputError(message) from None


def _left_padding_message(row=None):
    where = "An attention_mask row" if row is None else f"attention_mask row {row}"
    return (
        f"{where} starts with padding and has real tokens after it (left "
        "padding). BERT's positions are absolute (0, 1, 2, ... from the first "
        "slot, as in transformers), so left padding would give other outputs "
        "than the unpadded text: pad on the right (tokenizer.padding_side = "
        "'right', the default of BERT tokenizers)."
    )


def _to_tensor(value, name):
    if hasattr(value, "numpy") and not isinstance(value, (tf.Tensor, np.ndarray)):
        value = value.numpy()  # torch tensors and the like
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    dtype = value.dtype if isinstance(value, np.ndarray) else None
    if isinstance(value, tf.Tensor):
        dtype = value.dtype.as_numpy_dtype
    if dtype is not None and not (
        np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_)
    ):
        if name != "attention_mask" or not np.issubdtype(dtype, np.floating):
            raise InputError(
                f"`{name}` must hold integers. Received: {name} of dtype "
                f"{np.dtype(dtype).name}"
            )
    tensor = tf.convert_to_tensor(value)
    if name == "attention_mask" and tensor.dtype != tf.int32:
        tensor = tf.cast(tf.not_equal(tensor, tf.zeros([], tensor.dtype)), tf.int32)
    if tensor.dtype == tf.bool:
        tensor = tf.cast(tensor, tf.int32)
    return tensor
