"""Word + position + token type embeddings, then LayerNorm and dropout."""

import contextlib

import keras
from keras import layers
from keras import ops

from bert_keras import kernels as kernel_policy
from bert_keras.kernels import DEFAULT_KERNELS


@keras.saving.register_keras_serializable(package="bert_keras")
class BertEmbeddings(layers.Layer):
    """BERT's input embeddings (HF module `embeddings`).

    Positions are `0..seq_len-1` (absolute, right padding).

    Args:
        vocab_size: int, number of word pieces.
        hidden_size: int, embedding width.
        max_position_embeddings: int, longest sequence the model accepts.
        type_vocab_size: int, number of segment (token type) ids.
        layer_norm_eps: float, LayerNorm epsilon.
        dropout_rate: float, dropout after the LayerNorm.
        initializer_range: float, stddev of the normal initializer (as transformers).
        pad_token_id: int or None; the row of this id gets no gradient, as
            transformers' `nn.Embedding(padding_idx=pad_token_id)` gives it
            none (it matters where padded positions reach the loss, e.g. a
            QA span softmax). None: every row trains.

    Example:

    >>> embeddings = BertEmbeddings(99, 32, 64, 2)
    >>> tuple(embeddings(np.ones((3, 7), "int32"), np.zeros((3, 7), "int32")).shape)
    (3, 7, 32)
    """

    def __init__(
        self,
        vocab_size,
        hidden_size,
        max_position_embeddings,
        type_vocab_size,
        layer_norm_eps=1e-12,
        dropout_rate=0.1,
        initializer_range=0.02,
        pad_token_id=None,
        kernels=DEFAULT_KERNELS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        initializer = keras.initializers.RandomNormal(stddev=initializer_range)

        def embedding(rows, name):
            return layers.Embedding(
                rows,
                hidden_size,
                embeddings_initializer=initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.word_embeddings = embedding(vocab_size, "word_embeddings")
        self.position_embeddings = embedding(
            max_position_embeddings, "position_embeddings"
        )
        self.token_type_embeddings = embedding(type_vocab_size, "token_type_embeddings")
        self.layer_norm = kernel_policy.layer_norm(
            kernels, epsilon=layer_norm_eps, dtype=self.dtype_policy, name="LayerNorm"
        )
        self.dropout = kernel_policy.dropout(
            dropout_rate, kernels, dtype=self.dtype_policy
        )

        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range
        self.pad_token_id = pad_token_id
        self.kernels = kernels
        # Set only inside `overrides()`; kept out of Keras' state tracking.
        object.__setattr__(self, "_overrides", {})

    @contextlib.contextmanager
    def overrides(self, inputs_embeds=None, position_ids=None):
        """Within this block, calls use these in place of the word lookup
        and of positions `0..seq-1` (transformers' `inputs_embeds` and
        `position_ids`). Either may be None: the default then applies.
        """
        given = {"inputs_embeds": inputs_embeds, "position_ids": position_ids}
        given = {key: value for key, value in given.items() if value is not None}
        if not given:
            # A task model's inner BertModel call passes none: keep the outer's.
            yield
            return
        previous = self._overrides
        object.__setattr__(self, "_overrides", given)
        try:
            yield
        finally:
            object.__setattr__(self, "_overrides", previous)

    def build(self, input_ids_shape, token_type_ids_shape=None):
        self.word_embeddings.build(input_ids_shape)
        self.position_embeddings.build((None,))
        self.token_type_embeddings.build(input_ids_shape)
        self.layer_norm.build(tuple(input_ids_shape) + (self.hidden_size,))
        self.built = True

    def call(self, input_ids, token_type_ids, training=None):
        seq_len = ops.shape(input_ids)[-1]
        position_ids = self._overrides.get("position_ids")
        if position_ids is None:
            position_ids = ops.arange(seq_len, dtype="int32")  # broadcast over batch
        else:
            # (batch, seq) or (1, seq); multiple choice arrives flattened.
            position_ids = ops.reshape(ops.cast(position_ids, "int32"), (-1, seq_len))
        words = self._overrides.get("inputs_embeds")
        if words is None:
            words = self.word_embeddings(input_ids)
            if self.pad_token_id is not None:
                is_pad = ops.equal(input_ids, self.pad_token_id)
                is_pad = ops.expand_dims(is_pad, -1)
                words = ops.where(is_pad, ops.stop_gradient(words), words)
        else:
            words = ops.reshape(
                ops.cast(words, self.compute_dtype),
                ops.shape(input_ids) + (self.hidden_size,),
            )
        x = words + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        x = self.layer_norm(x)
        return self.dropout(x, training=training)

    def compute_output_shape(self, input_ids_shape, token_type_ids_shape=None):
        return tuple(input_ids_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size,
                "max_position_embeddings": self.max_position_embeddings,
                "type_vocab_size": self.type_vocab_size,
                "layer_norm_eps": self.layer_norm_eps,
                "dropout_rate": self.dropout_rate,
                "initializer_range": self.initializer_range,
                "pad_token_id": self.pad_token_id,
                "kernels": self.kernels,
            }
        )
        return config
