"""`BertModel`: the bare encoder, as transformers' `BertModel`."""

import keras
from keras import ops

from bert_keras import kernels as kernel_policy
from bert_keras.modeling.base import BertPreTrainedModel
from bert_keras.modeling.base import bert_inputs
from bert_keras.modeling.base import layer_options
from bert_keras.modeling.call import hf_call_arguments
from bert_keras.modeling.embeddings import BertEmbeddings
from bert_keras.modeling.encoder import BertEncoder
from bert_keras.modeling.heads import BertPooler
from bert_keras.training.inputs import INPUT_NAMES


@keras.saving.register_keras_serializable(package="bert_keras")
class BertModel(BertPreTrainedModel):
    """The BERT encoder: embeddings, `num_hidden_layers` post-LN layers, pooler.

    Args:
        config: `transformers.BertConfig` (or a dict of its fields). Its
            `output_hidden_states` / `output_attentions` add those outputs.
        add_pooling_layer: bool, whether to build the pooler (task models that
            only use token states leave it out, as transformers does).

    Inputs (HF names): `input_ids`, `attention_mask` (optional, 1 = real token),
    `token_type_ids` (optional), each (batch, seq).

    Outputs (a dict): `last_hidden_state` (batch, seq, hidden),
    `pooler_output` (batch, hidden), and when asked for, `hidden_states` (the
    embeddings and each layer's output) and `attentions` (per layer, (batch,
    heads, seq, seq) probabilities).

    Example:

    >>> model = BertModel.from_pretrained(path)  # all-MiniLM-L6-v2
    >>> batch = tokenizer(["Hello world"], return_tensors="np")
    >>> tuple(model(dict(batch))["last_hidden_state"].shape)
    (1, 4, 384)
    """

    hf_architecture = "BertModel"
    call_arguments = hf_call_arguments((), decoder=True)

    def __init__(self, config=None, add_pooling_layer=True, **kwargs):
        config = self._prepare_config(config)
        options = layer_options(kwargs)  # dtype and kernels, for every layer

        # === Layers ===
        initializer_range = config.initializer_range
        self.embeddings = BertEmbeddings(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            max_position_embeddings=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            layer_norm_eps=config.layer_norm_eps,
            dropout_rate=config.hidden_dropout_prob,
            initializer_range=initializer_range,
            pad_token_id=getattr(config, "pad_token_id", None),
            **options,
            name="embeddings",
        )
        self.encoder = BertEncoder(
            num_hidden_layers=config.num_hidden_layers,
            hidden_size=config.hidden_size,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            hidden_act=config.hidden_act,
            hidden_dropout_rate=config.hidden_dropout_prob,
            attention_dropout_rate=config.attention_probs_dropout_prob,
            layer_norm_eps=config.layer_norm_eps,
            initializer_range=initializer_range,
            **options,
            name="encoder",
        )
        self.pooler = (
            BertPooler(
                config.hidden_size,
                initializer_range=initializer_range,
                **options,
                name="pooler",
            )
            if add_pooling_layer
            else None
        )

        # === Functional Model ===
        inputs = bert_inputs()
        embeddings = self.embeddings(inputs["input_ids"], inputs["token_type_ids"])
        encoded = self.encoder(embeddings, inputs["attention_mask"])
        outputs = {"last_hidden_state": encoded["last_hidden_state"]}
        if self.pooler is not None:
            outputs["pooler_output"] = self.pooler(encoded["last_hidden_state"])
        if config.output_hidden_states:
            outputs["hidden_states"] = encoded["hidden_states"]
        if config.output_attentions:
            outputs["attentions"] = encoded["attentions"]
        super().__init__(
            inputs=inputs, outputs=outputs, config=config, **options, **kwargs
        )

        # === Config ===
        self.add_pooling_layer = add_pooling_layer

    def selected_outputs(self, inputs, positions=None):
        """The pooler output, and the final states at `positions` only.

        For task heads that read [CLS] (through the pooler) and at most a few
        given positions: sequence classification, multiple choice, next
        sentence, and pretraining with gathered masked positions. The last
        layer's queries, output projection and feed-forward block run on
        those rows alone instead of all `seq` (its keys and values still cover
        every position), so every output, and every gradient, is that of
        `self(inputs)` at those rows. A config that asks for `hidden_states`
        or `attentions` gets the full model's, which cover every position.

        Args:
            inputs: dict of `input_ids`, `attention_mask` and `token_type_ids`,
                each (batch, seq).
            positions: optional (batch, n) int tensor of sequence positions.

        Returns:
            dict with `pooler_output` (batch, hidden; not without a pooler)
            and, with `positions`, `last_hidden_state` (batch, n, hidden): the
            states at `positions`.
        """
        config = self.config
        every_position = config.output_hidden_states or config.output_attentions
        rows_only = kernel_policy.choose("selected_rows_only", self.kernels, False)
        pooled = self.pooler is not None
        if (not pooled and positions is None) or every_position or not rows_only:
            encoded = dict(self({name: inputs[name] for name in INPUT_NAMES}))
            if positions is not None:
                encoded["last_hidden_state"] = ops.take_along_axis(
                    encoded["last_hidden_state"], positions[:, :, None], axis=1
                )
            return encoded
        embeddings = self.embeddings(inputs["input_ids"], inputs["token_type_ids"])
        rows = []
        if pooled:
            rows.append(ops.zeros_like(inputs["input_ids"][:, :1]))  # [CLS]
        if positions is not None:
            rows.append(ops.cast(positions, inputs["input_ids"].dtype))
        rows = rows[0] if len(rows) == 1 else ops.concatenate(rows, axis=1)
        states = self.encoder(
            embeddings, inputs["attention_mask"], output_positions=rows
        )["last_hidden_state"]
        outputs = {}
        if pooled:
            outputs["pooler_output"] = self.pooler(states)
        if positions is not None:
            outputs["last_hidden_state"] = states[:, 1:] if pooled else states
        return outputs

    def get_config(self):
        config = super().get_config()
        config["add_pooling_layer"] = self.add_pooling_layer
        return config
