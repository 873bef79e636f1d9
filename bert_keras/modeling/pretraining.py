"""Pretraining models: MLM + NSP, MLM alone, NSP alone."""

import keras
from keras import ops

from bert_keras.modeling.base import BertPreTrainedModel
from bert_keras.modeling.base import bert_inputs
from bert_keras.modeling.base import layer_options
from bert_keras.modeling.bert import BertModel
from bert_keras.modeling.heads import BertLMPredictionHead
from bert_keras.modeling.task_common import accuracy
from bert_keras.modeling.task_common import dense
from bert_keras.modeling.task_common import extra_outputs
from bert_keras.modeling.task_common import get_label
from bert_keras.modeling.task_common import logits_task
from bert_keras.modeling.task_common import mean_cross_entropy
from bert_keras.training.losses import masked_cross_entropy
from bert_keras.training.losses import sparse_cross_entropy
from bert_keras.training.trainer import Task


def _mlm_head(config, bert, **options):
    return BertLMPredictionHead(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        hidden_act=config.hidden_act,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        word_embeddings=(
            bert.embeddings.word_embeddings if config.tie_word_embeddings else None
        ),
        name="predictions",
        **options,
    )


@keras.saving.register_keras_serializable(package="bert_keras")
class BertForPreTraining(BertPreTrainedModel):
    """BERT with both pretraining heads: masked LM and next-sentence prediction.

    Outputs: `prediction_logits` (batch, seq, vocab) and
    `seq_relationship_logits` (batch, 2; index 0 = "B follows A").

    Labels for `fit`: a dict with `labels` (batch, seq; -100 where not masked)
    and `next_sentence_label` (batch,). Loss = MLM + NSP cross-entropy.

    With `max_predictions_per_seq=P`, the model also takes
    `masked_lm_positions` (batch, P) and computes the vocabulary projection
    only there, as google-research/bert does: `prediction_logits` is then
    (batch, P, vocab) and `labels` (batch, P), -100 on unused slots. Most of a
    pretraining step's vocabulary projection is skipped; the weights, and so
    the Hugging Face checkpoint, are the same.

    Example:

    >>> model = BertForPreTraining(config)
    >>> model.compile()
    >>> mlm_labels = np.full_like(inputs["input_ids"], -100)  # -100: not masked
    >>> mlm_labels[:, 1] = inputs["input_ids"][:, 1]
    >>> nsp_labels = np.array([0, 1, 0])
    >>> labels = {"labels": mlm_labels, "next_sentence_label": nsp_labels}
    >>> history = model.fit(inputs, labels, verbose=0)
    """

    hf_architecture = "BertForPreTraining"
    label_names = ("labels", "next_sentence_label")
    # Which output each label scores (a metric list given to compile() is
    # applied to each).
    label_outputs = {
        "labels": "prediction_logits",
        "next_sentence_label": "seq_relationship_logits",
    }

    def __init__(self, config=None, max_predictions_per_seq=None, **kwargs):
        config = self._prepare_config(config)
        options = layer_options(kwargs)  # dtype and kernels, for every layer
        if max_predictions_per_seq is not None:
            self.extra_input_names = ("masked_lm_positions",)

        # === Layers ===
        self.bert = BertModel(config, name="bert", **options)
        self.predictions = _mlm_head(config, self.bert, **options)
        self.seq_relationship = dense(2, config, "seq_relationship", **options)

        # === Functional Model ===
        inputs = bert_inputs()
        if max_predictions_per_seq is None:
            encoded = self.bert(inputs)
        else:
            positions = keras.Input(
                shape=(max_predictions_per_seq,),
                dtype="int32",
                name="masked_lm_positions",
            )
            inputs["masked_lm_positions"] = positions
            # (batch, P, hidden): only the masked positions reach the head,
            # and the last layer computes only them and [CLS].
            encoded = self.bert.selected_outputs(inputs, positions)
        hidden = encoded["last_hidden_state"]
        outputs = {
            "prediction_logits": ops.cast(self.predictions(hidden), "float32"),
            "seq_relationship_logits": ops.cast(
                self.seq_relationship(encoded["pooler_output"]), "float32"
            ),
            **extra_outputs(encoded),
        }
        super().__init__(
            inputs=inputs, outputs=outputs, config=config, **options, **kwargs
        )

        # === Config ===
        self.max_predictions_per_seq = max_predictions_per_seq

    def get_config(self):
        config = super().get_config()
        config["max_predictions_per_seq"] = self.max_predictions_per_seq
        return config

    def task(self):
        def loss(y, y_pred, sample_weight=None):
            mlm = masked_cross_entropy(
                get_label(y, "labels", 0), y_pred["prediction_logits"], sample_weight
            )
            nsp = sparse_cross_entropy(
                get_label(y, "next_sentence_label", 1),
                y_pred["seq_relationship_logits"],
                sample_weight,
            )
            return mlm + nsp

        def label_ranges(y, x):
            vocab = self.config.vocab_size
            return [
                ("labels", get_label(y, "labels", 0), vocab, "vocab_size", True),
                ("next_sentence_label", get_label(y, "next_sentence_label", 1), 2,
                 "is-next 0 or random 1", False),
            ]  # fmt: skip

        metrics = [
            accuracy("mlm_accuracy", "prediction_logits", "labels", 0, ignore=True),
            accuracy(
                "nsp_accuracy", "seq_relationship_logits", "next_sentence_label", 1
            ),
            mean_cross_entropy(
                "mlm_loss", "prediction_logits", "labels", 0, ignore=True
            ),
            mean_cross_entropy(
                "nsp_loss", "seq_relationship_logits", "next_sentence_label", 1
            ),
        ]

        return Task(loss=loss, label_ranges=label_ranges, metrics=metrics)


@keras.saving.register_keras_serializable(package="bert_keras")
class BertForMaskedLM(BertPreTrainedModel):
    """BERT with the masked-LM head (no pooler, as in transformers).

    Outputs: `logits` (batch, seq, vocab). Labels: (batch, seq) token ids,
    -100 at positions that were not masked.

    With `max_predictions_per_seq=P`, as in `BertForPreTraining`, the model
    also takes `masked_lm_positions` (batch, P): `logits` is (batch, P, vocab)
    and labels (batch, P), -100 on unused slots; the checkpoint is the same.

    Example:

    >>> model = BertForMaskedLM.from_pretrained(path)
    >>> logits = model(dict(tokenizer(["Paris is the [MASK] of France."],
    ...                               return_tensors="np")))["logits"]
    >>> tuple(logits.shape)
    (1, 9, 30522)
    """

    hf_architecture = "BertForMaskedLM"

    def __init__(self, config=None, max_predictions_per_seq=None, **kwargs):
        config = self._prepare_config(config)
        options = layer_options(kwargs)  # dtype and kernels, for every layer
        if max_predictions_per_seq is not None:
            self.extra_input_names = ("masked_lm_positions",)

        # === Layers ===
        self.bert = BertModel(config, add_pooling_layer=False, name="bert", **options)
        self.predictions = _mlm_head(config, self.bert, **options)

        # === Functional Model ===
        inputs = bert_inputs()
        if max_predictions_per_seq is None:
            encoded = self.bert(inputs)
        else:
            inputs["masked_lm_positions"] = keras.Input(
                shape=(max_predictions_per_seq,),
                dtype="int32",
                name="masked_lm_positions",
            )
            # (batch, P, hidden): the last layer and the head run only there.
            encoded = self.bert.selected_outputs(inputs, inputs["masked_lm_positions"])
        outputs = {
            "logits": ops.cast(
                self.predictions(encoded["last_hidden_state"]), "float32"
            ),
            **extra_outputs(encoded),
        }
        super().__init__(
            inputs=inputs, outputs=outputs, config=config, **options, **kwargs
        )

        # === Config ===
        self.max_predictions_per_seq = max_predictions_per_seq

    def get_config(self):
        config = super().get_config()
        config["max_predictions_per_seq"] = self.max_predictions_per_seq
        return config

    def task(self):
        return logits_task(self.config.vocab_size, "vocab_size", ignore=True)


@keras.saving.register_keras_serializable(package="bert_keras")
class BertForNextSentencePrediction(BertPreTrainedModel):
    """BERT with the next-sentence head.

    Outputs: `logits` (batch, 2); index 0 means sentence B follows A.
    Labels: (batch,) ints.

    Example:

    >>> model = BertForNextSentencePrediction.from_pretrained(path)
    >>> batch = tokenizer(["A sentence."], ["Its sequel."], return_tensors="np")
    >>> tuple(model(dict(batch))["logits"].shape)
    (1, 2)
    """

    hf_architecture = "BertForNextSentencePrediction"
    # transformers v4's TF class called its label `next_sentence_label`.
    label_aliases = {"next_sentence_label": "labels"}
    call_labels = ("next_sentence_label",)  # v4 TF's name; transformers' is labels

    def __init__(self, config=None, **kwargs):
        config = self._prepare_config(config)
        options = layer_options(kwargs)  # dtype and kernels, for every layer

        # === Layers ===
        self.bert = BertModel(config, name="bert", **options)
        self.seq_relationship = dense(2, config, "seq_relationship", **options)

        # === Functional Model ===
        inputs = bert_inputs()
        encoded = self.bert.selected_outputs(inputs)
        outputs = {
            "logits": ops.cast(
                self.seq_relationship(encoded["pooler_output"]), "float32"
            ),
            **extra_outputs(encoded),
        }
        super().__init__(
            inputs=inputs, outputs=outputs, config=config, **options, **kwargs
        )

    def task(self):
        return logits_task(2, "is-next 0 or random 1")
