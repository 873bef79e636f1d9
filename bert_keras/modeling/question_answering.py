"""Extractive question answering: start and end logits over the tokens."""

import keras
from keras import ops

from bert_keras.errors import ConfigError
from bert_keras.modeling.base import BertPreTrainedModel
from bert_keras.modeling.base import bert_inputs
from bert_keras.modeling.base import layer_options
from bert_keras.modeling.bert import BertModel
from bert_keras.modeling.task_common import accuracy
from bert_keras.modeling.task_common import dense
from bert_keras.modeling.task_common import extra_outputs
from bert_keras.modeling.task_common import get_label
from bert_keras.training.losses import span_cross_entropy
from bert_keras.training.trainer import Task


@keras.saving.register_keras_serializable(package="bert_keras")
class BertForQuestionAnswering(BertPreTrainedModel):
    """BERT + one linear layer giving span start and end logits (no pooler).

    Outputs: `start_logits` and `end_logits`, each (batch, seq).
    Labels: a dict with `start_positions` and `end_positions` (batch,) token
    indices (or a `(start, end)` tuple). Loss = mean of the two
    cross-entropies; positions beyond the sequence are ignored.

    Example:

    >>> model = BertForQuestionAnswering.from_pretrained(path)
    >>> question, context = "Where is it?", "It is in Paris."
    >>> out = model(dict(tokenizer([question], [context], return_tensors="np")))
    >>> start = np.argmax(out["start_logits"], -1)
    >>> end = np.argmax(out["end_logits"], -1)
    """

    hf_architecture = "BertForQuestionAnswering"
    label_names = ("start_positions", "end_positions")
    # Which output each label scores (a metric list given to compile() is
    # applied to each).
    label_outputs = {"start_positions": "start_logits", "end_positions": "end_logits"}

    def __init__(self, config=None, **kwargs):
        config = self._prepare_config(config)
        if config.num_labels != 2:
            raise ConfigError(
                "BertForQuestionAnswering predicts a start and an end logit per "
                "token, so it needs num_labels=2 (transformers' default). "
                f"Received: num_labels={config.num_labels}"
            )
        options = layer_options(kwargs)  # dtype and kernels, for every layer

        # === Layers ===
        self.bert = BertModel(config, add_pooling_layer=False, name="bert", **options)
        self.qa_outputs = dense(config.num_labels, config, "qa_outputs", **options)

        # === Functional Model ===
        inputs = bert_inputs()
        encoded = self.bert(inputs)
        # (batch, seq, 2)
        logits = ops.cast(self.qa_outputs(encoded["last_hidden_state"]), "float32")
        outputs = {
            "start_logits": logits[..., 0],
            "end_logits": logits[..., 1],
            **extra_outputs(encoded),
        }
        super().__init__(
            inputs=inputs, outputs=outputs, config=config, **options, **kwargs
        )

    def task(self):
        def loss(y, y_pred, sample_weight=None):
            return span_cross_entropy(
                get_label(y, "start_positions", 0),
                get_label(y, "end_positions", 1),
                y_pred["start_logits"],
                y_pred["end_logits"],
                sample_weight,
            )

        metrics = [
            accuracy("start_accuracy", "start_logits", "start_positions", 0),
            accuracy("end_accuracy", "end_logits", "end_positions", 1),
        ]

        return Task(loss=loss, metrics=metrics)
