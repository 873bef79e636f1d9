"""What every bert_keras model shares: config, inputs, checkpoints, training.

Each model is a functional `keras.Model` built inside its class from a
`transformers.BertConfig`. This base class adds the Hugging Face surface
(`from_pretrained`, `save_pretrained`, `push_to_hub`, HF input names) and the
training defaults (`compile()` with the task's loss and metrics).
"""

import keras
import tensorflow as tf

from bert_keras.checkpoints import keys
from bert_keras.config import as_config
from bert_keras.config import bert_config_class
from bert_keras.config import validate_config
from bert_keras.errors import InputError
from bert_keras.kernels import DEFAULT_KERNELS
from bert_keras.kernels import check_kernels
from bert_keras.modeling.call import encoder_extras
from bert_keras.modeling.call import hf_call_arguments
from bert_keras.modeling.call import signed_call
from bert_keras.modeling.call import split_call
from bert_keras.modeling.outputs import STACKED_OUTPUTS
from bert_keras.modeling.outputs import model_output
from bert_keras.training.inputs import INPUT_NAMES
from bert_keras.training.inputs import prepare_inputs
from bert_keras.training.labels import check_labels
from bert_keras.training.trainer import TaskTrainer


def _column_names(dataset):
    names = getattr(dataset, "column_names", None)
    return list(names) if names is not None else list(dataset)


def layer_options(kwargs):
    """Pops what every layer of a model takes from its kwargs: dtype, kernels."""
    return {
        "dtype": kwargs.pop("dtype", None),
        "kernels": kwargs.pop("kernels", DEFAULT_KERNELS),
    }


def bert_inputs(rank=2):
    """The functional model's inputs: int32, any batch and sequence length."""
    shape = (None,) * (rank - 1)
    return {
        name: keras.Input(shape=shape, dtype="int32", name=name) for name in INPUT_NAMES
    }


class BertPreTrainedModel(TaskTrainer, keras.Model):
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
    # transformers' label arguments of this class, and older names for them.
    label_names = ("labels",)
    label_aliases = {}
    # The label arguments of v4 TF's `call`, in its order (None: label_names).
    call_labels = None
    # transformers' call arguments, in order: what `inspect.signature(model.call)`
    # lists and what positional arguments (or one list of them) stand for.
    call_arguments = hf_call_arguments(label_names)
    main_input_name = "input_ids"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "call_arguments" not in own and (
            "label_names" in own or "call_labels" in own
        ):
            labels = cls.label_names if cls.call_labels is None else cls.call_labels
            cls.call_arguments = hf_call_arguments(labels)
        cls.call = signed_call(BertPreTrainedModel._keras_call, cls.call_arguments)

    def _keras_call(self, *args, **kwargs):
        """Keras' functional `call(inputs, training=None)`; the public entry
        point is `__call__`, which takes transformers' arguments."""
        return super().call(*args, **kwargs)

    def __init__(self, *args, config, kernels=DEFAULT_KERNELS, **kwargs):
        dtype = kwargs.get("dtype")
        super().__init__(*args, **kwargs)
        if dtype is not None:
            # Functional models do not keep the policy they are given; the
            # layers got it, and get_config() must report it.
            self.dtype_policy = keras.dtype_policies.get(dtype)
        self.config = config
        self.kernels = check_kernels(kernels)
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
        return keys.tied_keys(self)

    def hf_variables(self):
        """Returns `{hf_state_dict_key: (variable, transpose)}` for every weight.

        Keys are exactly those of the matching transformers class, e.g.
        `bert.encoder.layer.0.attention.self.query.weight`. Tied weights
        appear once, under their source key.
        """
        return keys.hf_variables(self)

    def __call__(self, inputs=None, *args, **kwargs):
        """Runs the model with transformers' call conventions.

        Inputs come as a dict (`model(batch)`), as keywords
        (`model(**encoding)`), or as `input_ids` followed by `attention_mask`,
        `token_type_ids` and `position_ids` (as arguments or one list).
        `inputs_embeds` replaces the word-embedding lookup of `input_ids`.
        `labels` (or the class's `label_names`) add the task's `loss`;
        `output_hidden_states` / `output_attentions` override the config for
        this call; `return_dict=False` returns a tuple. Arguments bert_keras
        cannot honour raise `InputError`.

        Returns:
            A `ModelOutput` (a dict with attribute and position access), or
            its `to_tuple()` with `return_dict=False`.

        Example:

        >>> ids, mask = inputs["input_ids"], inputs["attention_mask"]
        >>> outputs = model(ids, attention_mask=mask)
        >>> outputs.last_hidden_state.shape == outputs[0].shape
        True
        """
        inputs, options, keras_kwargs = split_call(self, inputs, args, kwargs)
        prepared = prepare_inputs(self, inputs)
        embeddings = getattr(self, "bert", self).embeddings
        with embeddings.overrides(options.inputs_embeds, options.position_ids):
            outputs = self._call_outputs(prepared, options, keras_kwargs)
        if options.labels is not None:
            outputs["loss"] = self._call_loss(options.labels, outputs, prepared)
        outputs = model_output(outputs)
        return outputs.to_tuple() if options.return_dict is False else outputs

    def _call_outputs(self, prepared, options, keras_kwargs):
        outputs = dict(super().__call__(prepared, **keras_kwargs))
        training = keras_kwargs.get("training")
        missing = []
        for name, flag in (
            ("hidden_states", options.output_hidden_states),
            ("attentions", options.output_attentions),
        ):
            if flag is False:
                outputs.pop(name, None)
            elif flag and name not in outputs:
                missing.append(name)
        if missing:
            if training is True:
                # A second pass would draw other dropout masks than the outputs'.
                raise InputError(
                    f"{missing} were asked for in a training call, but the "
                    "config does not compute them. Set "
                    "`config.output_hidden_states` / `config.output_attentions` "
                    "when building or loading the model (from_pretrained(..., "
                    f"output_hidden_states=True)). Received: {missing}"
                )
            outputs.update(encoder_extras(self, prepared, missing, training))
        return outputs

    def _call_loss(self, labels, outputs, inputs):
        """The task's loss on one batch, as transformers' `labels=` gives it."""
        task = self.task()
        if task is None:
            raise InputError(
                f"{type(self).__name__} has no training loss, so it takes no "
                "labels. Use a task class (BertForSequenceClassification, ...). "
                f"Received: {sorted(labels)}"
            )
        missing = [name for name in self.label_names if name not in labels]
        if missing:
            raise InputError(
                f"{type(self).__name__}'s loss needs {list(self.label_names)}. "
                f"Received: {sorted(labels)}"
            )
        checks = check_labels(task.label_ranges(labels, inputs))
        with tf.control_dependencies(checks):
            return task.loss(labels, outputs, None)

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

        >>> model = BertForSequenceClassification.from_pretrained(path, num_labels=2)
        """
        from bert_keras.checkpoints import hub

        # transformers v4 TF code passes from_pt=True to read PyTorch-format
        # weights, which is what bert_keras always reads.
        kwargs.pop("from_pt", None)
        return hub.load_pretrained(cls, name_or_path, **kwargs)

    def prepare_tf_dataset(
        self,
        dataset,
        batch_size=8,
        shuffle=True,
        tokenizer=None,
        collate_fn=None,
        collate_fn_args=None,
        drop_remainder=None,
        prefetch=True,
    ):
        """transformers v4's `prepare_tf_dataset`: a tokenized dataset for `fit`.

        Args:
            dataset: a tokenized `datasets.Dataset` (or a dict of columns).
            batch_size: int.
            shuffle: bool, reshuffled every epoch.
            tokenizer: optional; its `pad_token_id` pads `input_ids`.
            collate_fn, collate_fn_args: must be None: every batch is padded
                to its longest example here (what v4's default collator did).
            drop_remainder: bool or None (False).
            prefetch: accepted; batches are always prefetched.

        Returns:
            `tf.data.Dataset` of `(features, labels)`; the labels are the
            columns named like this class's labels (`label` counts as
            `labels`), or absent when the dataset has none.

        Example:

        >>> import datasets
        >>> raw = datasets.Dataset.from_dict({"text": ["a b", "c"], "label": [1, 0]})
        >>> encoded = raw.map(lambda b: tokenizer(b["text"]), batched=True)
        >>> model = BertForSequenceClassification.from_pretrained(path)
        >>> dataset = model.prepare_tf_dataset(encoded, batch_size=2)
        """
        from bert_keras.training.data import to_tf_dataset

        columns = _column_names(dataset)
        names = list(self.label_names) + list(self.label_aliases)
        if "labels" in names:
            names.append("label")  # datasets' usual name; v4's collator renamed it
        labels = [name for name in names if name in columns]
        if "labels" in labels and "label" in labels:
            labels.remove("label")
        label_column = labels[0] if len(labels) == 1 else (labels or None)
        # to_tf_dataset refuses a collate_fn and pads with the tokenizer's id.
        return to_tf_dataset(
            dataset,
            batch_size,
            shuffle=shuffle,
            tokenizer=tokenizer,
            collate_fn=collate_fn,
            collate_fn_args=collate_fn_args,
            drop_remainder=drop_remainder,
            label_column=label_column,
            # v4's batches: `batch_size` examples each, not grouped by length.
            bucket=False,
        )

    def get_input_embeddings(self):
        """The word-embedding layer (a `keras.layers.Embedding`), as in transformers."""
        return getattr(self, "bert", self).embeddings.word_embeddings

    def resize_token_embeddings(self, new_num_tokens=None):
        """Resizes the vocabulary in place, as transformers' method does.

        The first `min(old, new)` rows of the word embeddings (and of the MLM
        head's bias and untied decoder) are kept; new rows are initialised as
        in a freshly built model (transformers v4 TF's choice), see
        `bert_keras.modeling.resize`. `config.vocab_size` follows. Resize
        before the first `fit` (or compile again with a new optimizer).

        Args:
            new_num_tokens: int > 0 (e.g. `len(tokenizer)`), or None.

        Returns:
            The word-embedding layer (`keras.layers.Embedding`).

        Example:

        >>> masked_lm = BertForMaskedLM(config.to_dict())  # a config of its own
        >>> masked_lm.resize_token_embeddings(config.vocab_size + 2).input_dim
        101
        >>> tuple(masked_lm(inputs)["logits"].shape)
        (3, 7, 101)
        """
        from bert_keras.modeling import resize

        return resize.resize_token_embeddings(self, new_num_tokens)

    def get_output_embeddings(self):
        """The layer whose weight scores the vocabulary, or None (no LM head).

        For BertForMaskedLM / BertForPreTraining with tied weights (the
        default) that is `get_input_embeddings()` itself, as in transformers;
        untied, the MLM head `predictions`, which holds the `decoder` matrix.

        Returns:
            A `keras.layers.Embedding`, a `BertLMPredictionHead`, or None.

        Example:

        >>> masked_lm = BertForMaskedLM(config)
        >>> masked_lm.get_output_embeddings() is masked_lm.get_input_embeddings()
        True
        >>> BertModel(config).get_output_embeddings() is None
        True
        """
        from bert_keras.modeling import resize

        return resize.output_embeddings(self)

    def get_bias(self):
        """The MLM head's (vocab,) bias, as transformers v4's TF classes gave it.

        Returns:
            `{"bias": keras.Variable}`, or None for a class without an LM head.

        Example:

        >>> tuple(BertForMaskedLM(config).get_bias()["bias"].shape)
        (99,)
        """
        from bert_keras.modeling import resize

        return resize.lm_bias(self)

    def set_bias(self, value):
        """Assigns the MLM head's bias from a dict shaped like `get_bias()`.

        Args:
            value: `{"bias": (vocab,) array}`; to change the vocabulary size,
                use `resize_token_embeddings`.

        Example:

        >>> masked_lm = BertForMaskedLM(config)
        >>> masked_lm.set_bias({"bias": np.zeros(config.vocab_size)})
        """
        from bert_keras.modeling import resize

        resize.set_lm_bias(self, value)

    def save_pretrained(
        self, save_directory, tokenizer=None, saved_model=False, version=1, **kwargs
    ):
        """Writes config.json and model.safetensors that transformers opens.

        Args:
            save_directory: str or path; created if missing.
            tokenizer: optional transformers tokenizer saved alongside.
            saved_model: bool; as in transformers v4, also write a TensorFlow
                SavedModel (`serve_ids`, also `serving_default`: token ids in,
                outputs by HF name) to `save_directory/saved_model/<version>`.
            version: int, the SavedModel's version folder (TF Serving's).
            **kwargs: e.g. `max_shard_size`.

        Returns:
            list of the files written (the SavedModel as its directory).

        Example:

        >>> model.save_pretrained("out/", tokenizer=tokenizer)
        ['out/config.json', 'out/model.safetensors', 'out/tokenizer.json',
         'out/tokenizer_config.json']
        """
        from bert_keras.checkpoints import hub

        written = hub.save_pretrained(
            self, save_directory, tokenizer=tokenizer, **kwargs
        )
        if saved_model:
            import os

            from bert_keras.serving.savedmodel import export_saved_model

            path = os.path.join(os.fspath(save_directory), "saved_model", str(version))
            written = list(written) + [export_saved_model(self, path)]
        return written

    def push_to_hub(self, repo_id, **kwargs):
        """Uploads the checkpoint and a model card to the Hub in one commit.

        Example:

        >>> model.push_to_hub("me/my-bert", tokenizer=tokenizer)  # doctest: +SKIP
        """
        from bert_keras.checkpoints import hub

        return hub.push_to_hub(self, repo_id, **kwargs)

    # --- transformers v4 TF's model surface ---------------------------------

    @classmethod
    def can_generate(cls):
        """False, as in transformers for encoders: there is no `generate`."""
        return False

    def build_in_name_scope(self):
        """v4 TF's: builds the model. bert_keras models are built when made."""

    def build(self, input_shape=None):
        """Builds the model; it is built at construction, so this does nothing
        then (v4 TF code calls `model.build()` with no shape)."""
        if not self.built:
            super().build(input_shape)

    @property
    def input_signature(self):
        """`{name: tf.TensorSpec}` of the inputs, as v4 TF had it: int32, any
        batch and length ((batch, choices, seq) for multiple choice)."""
        shape = (None,) * self.input_rank
        specs = {
            name: tf.TensorSpec(shape, tf.int32, name=name) for name in INPUT_NAMES
        }
        for name in self.extra_input_names:
            spec = self.input[name]
            specs[name] = tf.TensorSpec(spec.shape, tf.int32, name=name)
        return specs

    @property
    def dummy_inputs(self):
        """Small int32 inputs of `input_signature`'s shapes (v4 TF's): ones,
        zero token types, a batch of one, other unknown sizes 2."""
        dummies = {}
        for name, spec in self.input_signature.items():
            shape = [1] + [2 if size is None else size for size in spec.shape[1:]]
            fill = 0 if name in ("token_type_ids", "masked_lm_positions") else 1
            dummies[name] = tf.fill(shape, tf.constant(fill, tf.int32))
        return dummies

    def serving_output(self, output):
        """v4 TF's: `output` as a SavedModel serves it, `hidden_states` and
        `attentions` each stacked into one tensor (layers first).

        Example:

        >>> served = model.serving_output(model(inputs, output_hidden_states=True))
        >>> served.hidden_states.shape[0] == model.config.num_hidden_layers + 1
        True
        """
        stacked = {
            name: tf.stack(list(value)) if name in STACKED_OUTPUTS else value
            for name, value in output.items()
        }
        return model_output(stacked)

    # --- Keras serialization ------------------------------------------------

    def get_config(self):
        return {
            "config": self.config.to_dict(),
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "kernels": self.kernels,
        }

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict) or "config" not in config:
            # transformers' meaning: a fresh model of a `BertConfig` (or of a
            # dict of its fields); Keras' own dicts hold the config under "config".
            return cls(config)
        config = dict(config)
        bert_config = bert_config_class().from_dict(config.pop("config"))
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(bert_config, **config)

    # --- Keras export -------------------------------------------------------

    def export(
        self,
        filepath,
        format="tf_saved_model",
        verbose=None,
        input_signature=None,
        **kwargs,
    ):
        """Keras' `Model.export`, whose SavedModel serves hidden states too.

        With `format="tf_saved_model"`, `hidden_states` and `attentions`
        (on when the config sets `output_hidden_states` /
        `output_attentions`) are each served stacked into one tensor,
        (layers, batch, ...), under their HF names; see
        `bert_keras.serving.savedmodel.export_keras_saved_model`. Other
        formats are Keras' own.

        Args:
            filepath: str or path of the artifact.
            format: str, `"tf_saved_model"` or another of Keras' formats.
            verbose: bool or None, as in Keras.
            input_signature: None (the model's inputs) or Keras' specs.
            **kwargs: the format's options, as in Keras.

        Returns:
            The SavedModel's path (str) for `"tf_saved_model"`; else Keras'.

        Example:

        >>> path = model.export("exported/", verbose=False)
        >>> sorted(tf.saved_model.load(path).signatures)
        ['serve', 'serving_default']
        """
        if format != "tf_saved_model":
            return super().export(
                filepath,
                format=format,
                verbose=verbose,
                input_signature=input_signature,
                **kwargs,
            )
        from bert_keras.serving.savedmodel import export_keras_saved_model

        return export_keras_saved_model(
            self, filepath, verbose=verbose, input_signature=input_signature, **kwargs
        )
