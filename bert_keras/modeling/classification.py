"""Classification heads: sequence, token and multiple choice."""

import keras
from keras import ops

from bert_keras import kernels as kernel_policy
from bert_keras.errors import ConfigError
from bert_keras.modeling.base import BertPreTrainedModel
from bert_keras.modeling.base import bert_inputs
from bert_keras.modeling.base import layer_options
from bert_keras.modeling.bert import BertModel
from bert_keras.modeling.heads import FlattenChoices
from bert_keras.modeling.heads import UnflattenChoices
from bert_keras.modeling.task_common import accuracy
from bert_keras.modeling.task_common import classifier_dropout
from bert_keras.modeling.task_common import dense
from bert_keras.modeling.task_common import extra_outputs
from bert_keras.modeling.task_common import get_label
from bert_keras.modeling.task_common import logits_task
from bert_keras.training.losses import binary_cross_entropy
from bert_keras.training.losses import mean_squared_error
from bert_keras.training.losses import sparse_cross_entropy
from bert_keras.training.metrics import GlobalMean
from bert_keras.training.trainer import Task

PROBLEM_TYPES = (
    "regression",
    "single_label_classification",
    "multi_label_classification",
)


def _regression_metrics():
    metric = GlobalMean(name="mean_absolute_error", direction="down")

    def view(y, y_pred, sample_weight):
        logits = ops.cast(y_pred["logits"], "float32")
        labels = ops.reshape(
            ops.cast(get_label(y, "labels"), "float32"), ops.shape(logits)
        )
        return ops.mean(ops.abs(logits - labels), axis=-1), sample_weight

    return [(metric, view)]


def _multi_label_metrics():
    metric = GlobalMean(name="binary_accuracy", direction="up")

    def view(y, y_pred, sample_weight):
        logits = y_pred["logits"]
        labels = ops.cast(get_label(y, "labels"), "float32")
        # logit > 0 is probability > 0.5.
        predicted = ops.cast(ops.greater(logits, 0), "float32")
        correct = ops.cast(ops.equal(predicted, labels), "float32")
        return ops.mean(correct, axis=-1), sample_weight

    return [(metric, view)]


_SEQUENCE_METRICS = {
    "regression": _regression_metrics,
    "single_label_classification": lambda: [accuracy("accuracy", "logits")],
    "multi_label_classification": _multi_label_metrics,
}


@keras.saving.register_keras_serializable(package="bert_keras")
class BertForSequenceClassification(BertPreTrainedModel):
    """BERT + dropout + linear classifier on the pooled [CLS] output.

    `config.num_labels` sets the number of outputs; one label means
    regression. `config.problem_type` picks the loss as transformers does:
    `"regression"` (MSE), `"single_label_classification"` (cross-entropy) or
    `"multi_label_classification"` (sigmoid + binary cross-entropy, labels
    multi-hot). Unset, it is regression for one label, else single-label.

    Outputs: `logits` (batch, num_labels).

    Example:

    >>> model = BertForSequenceClassification.from_pretrained(path, num_labels=2)
    >>> model.compile()
    >>> batch = tokenizer(["A great film.", "A dull film."], padding=True,
    ...                   return_tensors="np")
    >>> train_ds = tf.data.Dataset.from_tensor_slices((dict(batch), [1, 0])).batch(2)
    >>> history = model.fit(train_ds, validation_data=train_ds, epochs=3, verbose=0)
    """

    hf_architecture = "BertForSequenceClassification"

    def __init__(self, config=None, **kwargs):
        config = self._prepare_config(config)
        if config.problem_type not in (None,) + PROBLEM_TYPES:
            raise ConfigError(
                f"Unknown `problem_type`. Expected one of {PROBLEM_TYPES} or None. "
                f"Received: problem_type={config.problem_type!r}"
            )
        options = layer_options(kwargs)  # dtype and kernels, for every layer

        # === Layers ===
        self.bert = BertModel(config, name="bert", **options)
        self.dropout = kernel_policy.dropout(classifier_dropout(config), **options)
        self.classifier = dense(config.num_labels, config, "classifier", **options)

        # === Functional Model ===
        inputs = bert_inputs()
        encoded = self.bert.selected_outputs(inputs)
        logits = self.classifier(self.dropout(encoded["pooler_output"]))
        outputs = {"logits": ops.cast(logits, "float32"), **extra_outputs(encoded)}
        super().__init__(
            inputs=inputs, outputs=outputs, config=config, **options, **kwargs
        )

    @property
    def problem_type(self):
        if self.config.problem_type is not None:
            return self.config.problem_type
        if self.config.num_labels == 1:
            return "regression"
        return "single_label_classification"

    def task(self):
        loss_fn = {
            "regression": mean_squared_error,
            "single_label_classification": sparse_cross_entropy,
            "multi_label_classification": binary_cross_entropy,
        }[self.problem_type]

        def loss(y, y_pred, sample_weight=None):
            return loss_fn(get_label(y, "labels"), y_pred["logits"], sample_weight)

        def label_ranges(y, x):
            if self.problem_type != "single_label_classification":
                return []
            labels = get_label(y, "labels")
            return [("labels", labels, self.config.num_labels, "num_labels", False)]

        metrics = _SEQUENCE_METRICS[self.problem_type]()
        return Task(loss=loss, label_ranges=label_ranges, metrics=metrics)


@keras.saving.register_keras_serializable(package="bert_keras")
class BertForTokenClassification(BertPreTrainedModel):
    """BERT + dropout + linear classifier on every token (no pooler).

    Outputs: `logits` (batch, seq, num_labels). Labels: (batch, seq), -100 on
    positions that do not count (padding, special tokens, sub-word pieces).

    Example:

    >>> model = BertForTokenClassification(BertConfig(num_labels=9))
    >>> model.compile()
    """

    hf_architecture = "BertForTokenClassification"

    def __init__(self, config=None, **kwargs):
        config = self._prepare_config(config)
        options = layer_options(kwargs)  # dtype and kernels, for every layer

        # === Layers ===
        self.bert = BertModel(config, add_pooling_layer=False, name="bert", **options)
        self.dropout = kernel_policy.dropout(classifier_dropout(config), **options)
        self.classifier = dense(config.num_labels, config, "classifier", **options)

        # === Functional Model ===
        inputs = bert_inputs()
        encoded = self.bert(inputs)
        logits = self.classifier(self.dropout(encoded["last_hidden_state"]))
        outputs = {"logits": ops.cast(logits, "float32"), **extra_outputs(encoded)}
        super().__init__(
            inputs=inputs, outputs=outputs, config=config, **options, **kwargs
        )

    def task(self):
        return logits_task(self.config.num_labels, "num_labels", ignore=True)


@keras.saving.register_keras_serializable(package="bert_keras")
class BertForMultipleChoice(BertPreTrainedModel):
    """Scores each (context, choice) pair with one linear unit on the pooler.

    Inputs are (batch, choices, seq); each choice is encoded separately.
    Outputs: `logits` (batch, choices). Labels: (batch,) index of the answer.

    Example:

    >>> model = BertForMultipleChoice.from_pretrained(path)
    >>> ctx = "She opened the umbrella because"
    >>> choices = ["it rained.", "it was dry.", "she was hungry.", "the sun set."]
    >>> pairs = tokenizer([ctx] * 4, choices, padding=True, return_tensors="np")
    >>> tuple(model({k: v[None] for k, v in pairs.items()})["logits"].shape)
    (1, 4)
    """

    hf_architecture = "BertForMultipleChoice"
    input_rank = 3

    def __init__(self, config=None, **kwargs):
        config = self._prepare_config(config)
        options = layer_options(kwargs)  # dtype and kernels, for every layer

        # === Layers ===
        self.flatten_choices = FlattenChoices(
            dtype=options["dtype"], name="flatten_choices"
        )
        self.bert = BertModel(config, name="bert", **options)
        self.dropout = kernel_policy.dropout(classifier_dropout(config), **options)
        self.classifier = dense(1, config, "classifier", **options)
        self.unflatten_choices = UnflattenChoices(
            dtype=options["dtype"], name="unflatten_choices"
        )

        # === Functional Model ===
        inputs = bert_inputs(rank=3)
        # (batch * choices, seq)
        flat = {name: self.flatten_choices(value) for name, value in inputs.items()}
        encoded = self.bert.selected_outputs(flat)
        scores = self.classifier(self.dropout(encoded["pooler_output"]))
        logits = self.unflatten_choices(scores, inputs["input_ids"])
        outputs = {"logits": ops.cast(logits, "float32"), **extra_outputs(encoded)}
        super().__init__(
            inputs=inputs, outputs=outputs, config=config, **options, **kwargs
        )

    def task(self):
        def choices(x):
            return ops.shape(x["input_ids"])[1]

        return logits_task(choices, "number of choices")
