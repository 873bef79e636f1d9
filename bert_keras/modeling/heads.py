"""Pooler and the pretraining heads (MLM with tied decoder, NSP)."""

import keras
from keras import layers
from keras import ops

from bert_keras import kernels as kernel_policy
from bert_keras.kernels import DEFAULT_KERNELS
from bert_keras.modeling.activations import get_activation


@keras.saving.register_keras_serializable(package="bert_keras")
class BertPooler(layers.Layer):
    """`tanh(dense(h[:, 0]))`: the [CLS] summary (HF module `pooler`).

    Args:
        hidden_size: int, model width.
        initializer_range: float, stddev of the normal initializer (as transformers).
        kernels: `"fast"` or `"reference"`, see `bert_keras.kernels`.

    Example:

    >>> tuple(BertPooler(32)(np.zeros((3, 7, 32), "float32")).shape)
    (3, 32)
    """

    def __init__(
        self, hidden_size, initializer_range=0.02, kernels=DEFAULT_KERNELS, **kwargs
    ):
        super().__init__(**kwargs)
        self.dense = kernel_policy.dense(
            hidden_size,
            kernels,
            activation="tanh",
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=initializer_range
            ),
            dtype=self.dtype_policy,
            name="dense",
        )
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.kernels = kernels

    def build(self, hidden_states_shape):
        self.dense.build((hidden_states_shape[0], hidden_states_shape[-1]))
        self.built = True

    def call(self, hidden_states):
        return self.dense(hidden_states[:, 0, :])

    def compute_output_shape(self, hidden_states_shape):
        return (hidden_states_shape[0], self.hidden_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_size": self.hidden_size,
                "initializer_range": self.initializer_range,
                "kernels": self.kernels,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="bert_keras")
class BertLMPredictionHead(layers.Layer):
    """Masked-LM head (HF module `cls.predictions`).

    `logits = LayerNorm(act(dense(h))) @ E^T + bias`, where `E` is the word
    embedding table when tied (the BERT default), else the head's own
    `decoder` matrix of the same (vocab, hidden) shape.

    Args:
        vocab_size: int, number of word pieces.
        hidden_size: int, model width.
        hidden_act: str, a transformers `hidden_act` name.
        layer_norm_eps: float, LayerNorm epsilon.
        initializer_range: float, stddev of the normal initializer (as transformers).
        word_embeddings: optional `keras.layers.Embedding` to tie the decoder
            to. It is shared, not copied, and not part of `get_config()`: a
            model that owns both layers re-ties them when rebuilt.
        kernels: `"fast"` or `"reference"`, see `bert_keras.kernels`.

    Call args:
        hidden_states: (..., hidden) tensor; pass only the masked positions
            to skip most of the vocabulary projection.

    Returns:
        (..., vocab_size) logits.

    Example:

    >>> head = BertLMPredictionHead(99, 32)
    >>> tuple(head(np.zeros((3, 7, 32), "float32")).shape)
    (3, 7, 99)
    """

    def __init__(
        self,
        vocab_size,
        hidden_size,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        word_embeddings=None,
        kernels=DEFAULT_KERNELS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.transform_dense = kernel_policy.dense(
            hidden_size,
            kernels,
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=initializer_range
            ),
            dtype=self.dtype_policy,
            name="transform_dense",
        )
        self.activation = get_activation(hidden_act)
        self.transform_layer_norm = kernel_policy.layer_norm(
            kernels,
            epsilon=layer_norm_eps,
            dtype=self.dtype_policy,
            name="transform_LayerNorm",
        )
        self.add_bias = kernel_policy.bias_adder(kernels)
        self.word_embeddings = word_embeddings

        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.kernels = kernels

    @property
    def tied(self):
        return self.word_embeddings is not None

    def build(self, hidden_states_shape):
        hidden_states_shape = tuple(hidden_states_shape)
        self.transform_dense.build(hidden_states_shape)
        self.transform_layer_norm.build(hidden_states_shape)
        if not self.tied:
            # torch layout (vocab, hidden), like the embedding table it replaces.
            self.decoder = self.add_weight(
                shape=(self.vocab_size, self.hidden_size),
                initializer=keras.initializers.RandomNormal(
                    stddev=self.initializer_range
                ),
                name="decoder",
            )
        self.bias = self.add_weight(
            shape=(self.vocab_size,), initializer="zeros", name="bias"
        )
        self.built = True

    def call(self, hidden_states):
        x = self.transform_layer_norm(
            self.activation(self.transform_dense(hidden_states))
        )
        table = self.word_embeddings.embeddings if self.tied else self.decoder
        logits = ops.matmul(x, ops.transpose(ops.cast(table, x.dtype)))
        return self.add_bias(logits, self.bias)

    def compute_output_shape(self, hidden_states_shape):
        return tuple(hidden_states_shape)[:-1] + (self.vocab_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size,
                "hidden_act": self.hidden_act,
                "layer_norm_eps": self.layer_norm_eps,
                "initializer_range": self.initializer_range,
                "kernels": self.kernels,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="bert_keras")
class FlattenChoices(layers.Layer):
    """(batch, choices, seq) -> (batch * choices, seq), for multiple choice."""

    def call(self, inputs):
        return ops.reshape(inputs, (-1, ops.shape(inputs)[-1]))

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1])


@keras.saving.register_keras_serializable(package="bert_keras")
class UnflattenChoices(layers.Layer):
    """(batch * choices, 1) scores -> (batch, choices), shaped like `input_ids`."""

    def call(self, scores, input_ids):
        return ops.reshape(scores, ops.shape(input_ids)[:2])

    def compute_output_shape(self, scores_shape, input_ids_shape):
        return tuple(input_ids_shape)[:2]
