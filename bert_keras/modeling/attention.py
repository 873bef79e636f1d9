"""Multi-head self-attention with its output projection, residual and LayerNorm."""

import math

import keras
from keras import layers
from keras import ops

from bert_keras.kernels.dense import BertDense
from bert_keras.kernels.dropout import BertDropout
from bert_keras.checkpoints.keys import nest
from bert_keras.kernels.layer_norm import BertLayerNorm

# Added to the scores of keys that may not be attended to (float32 minimum,
# as transformers does): exp() of it is exactly 0, and a row with no key left
# gets equal scores everywhere, so it attends uniformly and stays finite.
_MASKED_SCORE = -3.4028235e38
_MASKED_SCORE_BFLOAT16 = -3.3895314e38  # the bfloat16 minimum


@keras.saving.register_keras_serializable(package="bert_keras")
class BertAttention(layers.Layer):
    """Post-LN self-attention block (HF module `attention`).

    Computes `LayerNorm(x + dropout(dense(softmax(q k^T / sqrt(d)) v)))`, where
    padded keys (mask 0) get no weight. A row whose mask is all zero attends
    uniformly, as in transformers, so its outputs stay finite.

    Args:
        hidden_size: int, model width.
        num_attention_heads: int, must divide `hidden_size`.
        attention_dropout_rate: float, dropout on attention probabilities.
        hidden_dropout_rate: float, dropout on the projected output.
        layer_norm_eps: float, LayerNorm epsilon.
        initializer_range: float, stddev of the truncated normal initializer.

    Call args:
        hidden_states: (batch, seq, hidden) tensor.
        attention_mask: (batch, 1, 1, seq) boolean tensor, True where a key
            may be attended to.
        training: bool, enables dropout.
        query_positions: optional (batch, n) int tensor: compute the output
            of these positions only (every position is still a key and a
            value). Their outputs equal those of the full computation.

    Returns:
        `(output, attention_probs)`, shapes (batch, seq, hidden) and
        (batch, heads, seq, seq); with `query_positions`, `seq` query rows
        become `n`.

    Example:

    >>> attention = BertAttention(32, 4)
    >>> mask = np.ones((3, 1, 1, 7), bool)
    >>> attention(np.zeros((3, 7, 32), "float32"), mask)[0].shape
    (3, 7, 32)
    """

    def __init__(
        self,
        hidden_size,
        num_attention_heads,
        attention_dropout_rate=0.1,
        hidden_dropout_rate=0.1,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_size % num_attention_heads:
            raise ValueError(
                "`hidden_size` must be divisible by `num_attention_heads`. "
                f"Received: hidden_size={hidden_size}, "
                f"num_attention_heads={num_attention_heads}"
            )
        self.head_size = hidden_size // num_attention_heads

        def dense(name):
            return BertDense(
                hidden_size,
                kernel_initializer=keras.initializers.TruncatedNormal(
                    stddev=initializer_range
                ),
                dtype=self.dtype_policy,
                name=name,
            )

        self.query = dense("query")
        self.key = dense("key")
        self.value = dense("value")
        self.attention_dropout = BertDropout(
            attention_dropout_rate, dtype=self.dtype_policy
        )
        self.output_dense = dense("dense")
        self.output_dropout = BertDropout(hidden_dropout_rate, dtype=self.dtype_policy)
        self.output_layer_norm = BertLayerNorm(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="LayerNorm"
        )

        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.attention_dropout_rate = attention_dropout_rate
        self.hidden_dropout_rate = hidden_dropout_rate
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range

    def build(
        self, hidden_states_shape, attention_mask_shape=None, query_positions_shape=None
    ):
        for dense in (self.query, self.key, self.value, self.output_dense):
            dense.build(hidden_states_shape)
        self.output_layer_norm.build(hidden_states_shape)
        self.built = True

    def call(self, hidden_states, attention_mask, training=None, query_positions=None):
        batch, seq = ops.shape(hidden_states)[0], ops.shape(hidden_states)[1]
        # Projections on (batch * seq, hidden): plain 2-D matrix products,
        # which oneDNN fuses with their bias add.
        tokens = ops.reshape(hidden_states, (-1, self.hidden_size))
        queries, rows = tokens, seq
        if query_positions is not None:
            # The rows as a product with their one-hot positions: its
            # gradient is one more product, where a gather's scatters into
            # zeros of the whole (batch, seq, hidden) input.
            rows = ops.shape(query_positions)[1]
            select = ops.one_hot(query_positions, seq, dtype=hidden_states.dtype)
            queries = ops.reshape(
                ops.matmul(select, hidden_states), (-1, self.hidden_size)
            )

        def split_heads(x, length, axes=(0, 2, 1, 3)):
            # (batch * length, hidden) -> (batch, heads, length, head_size),
            # or another order of those axes in one transpose.
            x = ops.reshape(
                x, (batch, length, self.num_attention_heads, self.head_size)
            )
            return ops.transpose(x, axes)

        query = split_heads(self.query(queries), rows)
        value = split_heads(self.value(tokens), seq)
        # Keys go straight to (batch, heads, head_size, seq): one transpose
        # each way, where splitting the heads and then swapping the last two
        # axes leaves the backward pass two.
        key = split_heads(self.key(tokens), seq, axes=(0, 2, 3, 1))

        # (batch, heads, rows, seq) scores, scaled after the product (as
        # transformers does) and masked through an additive (batch, 1, 1, seq)
        # bias: oneDNN runs the product, the scale and the bias as one
        # operation, and the backward pass has nothing to select.
        scale = 1.0 / math.sqrt(self.head_size)
        scores = ops.matmul(query, key)
        if self.compute_dtype == "bfloat16":
            # oneDNN's bfloat16 softmax computes in float32 inside: the same
            # probabilities as a float32 softmax rounded to bfloat16, without
            # two casts of the scores, and half the memory kept for the
            # backward pass, whose row sums TensorFlow also accumulates in
            # float32. bfloat16 has float32's range, so the masked score
            # stays finite.
            bias = ops.where(attention_mask, 0.0, _MASKED_SCORE_BFLOAT16)
            scores = scores * ops.cast(scale, "bfloat16") + ops.cast(bias, "bfloat16")
            probs = ops.softmax(scores, axis=-1)
        else:
            # float32; under mixed float16 the softmax is computed in float32
            # (float16's range cannot hold the masked score).
            bias = ops.where(attention_mask, 0.0, _MASKED_SCORE)
            scores = ops.cast(scores, "float32") * scale + bias
            probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)

        context = ops.matmul(
            self.attention_dropout(probs, training=training), value
        )  # (batch, heads, seq, head_size)
        context = ops.reshape(
            ops.transpose(context, (0, 2, 1, 3)), (-1, self.hidden_size)
        )

        output = self.output_dropout(self.output_dense(context), training=training)
        output = self.output_layer_norm(output + queries)
        return ops.reshape(output, (batch, rows, self.hidden_size)), probs

    def compute_output_shape(
        self, hidden_states_shape, attention_mask_shape=None, query_positions_shape=None
    ):
        batch, seq = hidden_states_shape[0], hidden_states_shape[1]
        rows = seq if query_positions_shape is None else query_positions_shape[1]
        return (
            (batch, rows, hidden_states_shape[-1]),
            (batch, self.num_attention_heads, rows, seq),
        )

    def hf_variables(self):
        return {
            **nest({"self.query": self.query}),
            **nest({"self.key": self.key}),
            **nest({"self.value": self.value}),
            **nest({"output.dense": self.output_dense}),
            **nest({"output.LayerNorm": self.output_layer_norm}),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_size": self.hidden_size,
                "num_attention_heads": self.num_attention_heads,
                "attention_dropout_rate": self.attention_dropout_rate,
                "hidden_dropout_rate": self.hidden_dropout_rate,
                "layer_norm_eps": self.layer_norm_eps,
                "initializer_range": self.initializer_range,
            }
        )
        return config
