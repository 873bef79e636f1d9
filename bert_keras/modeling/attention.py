"""Multi-head self-attention with its output projection, residual and LayerNorm."""

import math

import keras
from keras import layers
from keras import ops

from bert_keras import kernels as kernel_policy
from bert_keras.kernels import DEFAULT_KERNELS
from bert_keras.kernels import snapshot
from bert_keras.kernels.attention import attend
from bert_keras.kernels.attention import packed_projection
from bert_keras.kernels.attention import split_packed_heads

# Added to the scores of keys that may not be attended to (float32's minimum,
# as transformers does): exp() of it is 0, and a row with no key left attends
# uniformly and stays finite.
MASKED_SCORE = -3.4028235e38


def split_heads(x, num_heads):
    """(batch, length, hidden) -> (batch, heads, length, head_size)."""
    batch, length, hidden = ops.shape(x)
    x = ops.reshape(x, (batch, length, num_heads, hidden // num_heads))
    return ops.transpose(x, (0, 2, 1, 3))


def merge_heads(x):
    """(batch, heads, length, head_size) -> (batch, length, hidden)."""
    batch, heads, length, head_size = ops.shape(x)
    return ops.reshape(
        ops.transpose(x, (0, 2, 1, 3)), (batch, length, heads * head_size)
    )


def scaled_dot_product_attention(
    query, key, value, attention_mask, *, num_heads, dropout, training
):
    """softmax(q k^T / sqrt(head_size) + mask) v, per head.

    Args:
        query: (batch, rows, hidden) projected queries.
        key, value: (batch, seq, hidden) projected keys and values.
        attention_mask: (batch, 1, 1, seq) bool, True where a key may be
            attended to.
        num_heads: int.
        dropout: the dropout layer applied to the probabilities.
        training: bool.

    Returns:
        `(context, probs)`: (batch, rows, hidden) and (batch, heads, rows, seq).

    Example:

    >>> x = ops.ones((3, 7, 32))
    >>> mask = ops.ones((3, 1, 1, 7), "bool")
    >>> context, probs = scaled_dot_product_attention(
    ...     x, x, x, mask, num_heads=4, dropout=lambda p, training: p,
    ...     training=False)
    >>> tuple(context.shape), tuple(probs.shape)
    ((3, 7, 32), (3, 4, 7, 7))
    """
    query = split_heads(query, num_heads)  # (batch, heads, rows, head_size)
    key = split_heads(key, num_heads)  # (batch, heads, seq, head_size)
    value = split_heads(value, num_heads)
    scale = 1.0 / math.sqrt(ops.shape(query)[-1])
    scores = ops.matmul(query, ops.swapaxes(key, -1, -2))  # (batch, heads, rows, seq)
    # float32 softmax under mixed precision: float16 cannot hold MASKED_SCORE.
    scores = ops.cast(scores, "float32") * scale
    scores = scores + ops.where(attention_mask, 0.0, MASKED_SCORE)
    probs = ops.cast(ops.softmax(scores, axis=-1), query.dtype)
    context = ops.matmul(dropout(probs, training=training), value)
    return merge_heads(context), probs  # (batch, rows, hidden)


def select_rows(hidden_states, positions):
    """`hidden_states[b, positions[b]]`: (batch, seq, hidden) -> (batch, n, hidden).

    Example:

    >>> x = ops.reshape(ops.arange(6.0), (1, 3, 2))
    >>> select_rows(x, ops.array([[2, 0]])).numpy().tolist()
    [[[4.0, 5.0], [0.0, 1.0]]]
    """
    return ops.take_along_axis(hidden_states, positions[:, :, None], axis=1)


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
        initializer_range: float, stddev of the normal initializer (as transformers).
        kernels: `"fast"` or `"reference"`, see `bert_keras.kernels`.

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
    >>> tuple(attention(np.zeros((3, 7, 32), "float32"), mask)[0].shape)
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
        kernels=DEFAULT_KERNELS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        kernel_policy.check_kernels(kernels)
        if hidden_size % num_attention_heads:
            raise ValueError(
                "`hidden_size` must be divisible by `num_attention_heads`. "
                f"Received: hidden_size={hidden_size}, "
                f"num_attention_heads={num_attention_heads}"
            )
        self.head_size = hidden_size // num_attention_heads

        def dense(name):
            return kernel_policy.dense(
                hidden_size,
                kernels,
                kernel_initializer=keras.initializers.RandomNormal(
                    stddev=initializer_range
                ),
                dtype=self.dtype_policy,
                name=name,
            )

        self.query = dense("query")
        self.key = dense("key")
        self.value = dense("value")
        self.attention_dropout = kernel_policy.dropout(
            attention_dropout_rate, kernels, dtype=self.dtype_policy
        )
        self.output_dense = dense("dense")
        self.output_dropout = kernel_policy.dropout(
            hidden_dropout_rate, kernels, dtype=self.dtype_policy
        )
        self.output_layer_norm = kernel_policy.layer_norm(
            kernels, epsilon=layer_norm_eps, dtype=self.dtype_policy, name="LayerNorm"
        )
        self.attention_function = kernel_policy.choose(
            "attention", kernels, scaled_dot_product_attention
        )
        self.select_rows = kernel_policy.choose("select_rows", kernels, select_rows)

        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.attention_dropout_rate = attention_dropout_rate
        self.hidden_dropout_rate = hidden_dropout_rate
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.kernels = kernels

    def build(
        self, hidden_states_shape, attention_mask_shape=None, query_positions_shape=None
    ):
        for dense in (self.query, self.key, self.value, self.output_dense):
            dense.build(hidden_states_shape)
        self.output_layer_norm.build(hidden_states_shape)
        self.built = True

    def call(self, hidden_states, attention_mask, training=None, query_positions=None):
        if self._packs_projections(training):
            return self._call_packed(hidden_states, attention_mask, query_positions)
        batch, seq = ops.shape(hidden_states)[0], ops.shape(hidden_states)[1]
        # Projections as 2-D products, which oneDNN fuses with their bias add.
        tokens = ops.reshape(hidden_states, (-1, self.hidden_size))
        query_tokens, rows = tokens, seq  # (batch * rows, hidden); rows = seq or n
        if query_positions is not None:
            queries = self.select_rows(hidden_states, query_positions)
            rows = ops.shape(queries)[1]
            query_tokens = ops.reshape(queries, (-1, self.hidden_size))
        query = ops.reshape(self.query(query_tokens), (batch, rows, self.hidden_size))
        key = ops.reshape(self.key(tokens), (batch, seq, self.hidden_size))
        value = ops.reshape(self.value(tokens), (batch, seq, self.hidden_size))

        context, probs = self.attention_function(
            query,
            key,
            value,
            attention_mask,
            num_heads=self.num_attention_heads,
            dropout=self.attention_dropout,
            training=training,
        )
        context = ops.reshape(context, (-1, self.hidden_size))
        output = self.output_dropout(self.output_dense(context), training=training)
        output = self.output_layer_norm(output + query_tokens)
        return ops.reshape(output, (batch, rows, self.hidden_size)), probs

    def _packs_projections(self, training):
        denses = (self.query, self.key, self.value)
        return (
            not training
            and self.kernels == "fast"
            and snapshot.active()
            and all(
                d.bias is not None
                and d.quantization_mode is None
                and not d.lora_enabled
                for d in denses
            )
        )

    def _call_packed(self, hidden_states, attention_mask, query_positions):
        """Inference on a weight snapshot: the projections as one product."""
        batch, seq = ops.shape(hidden_states)[0], ops.shape(hidden_states)[1]
        tokens = ops.reshape(hidden_states, (-1, self.hidden_size))
        dtype = self.compute_dtype
        heads = self.num_attention_heads
        if query_positions is None:
            query_tokens, rows = tokens, seq
            packed = packed_projection(
                tokens, (self.query, self.key, self.value), dtype
            )
            query, key, value = split_packed_heads(packed, batch, seq, 3, heads)
        else:
            queries = self.select_rows(hidden_states, query_positions)
            rows = ops.shape(queries)[1]
            query_tokens = ops.reshape(queries, (-1, self.hidden_size))
            query = packed_projection(query_tokens, (self.query,), dtype)
            (query,) = split_packed_heads(query, batch, rows, 1, heads)
            packed = packed_projection(tokens, (self.key, self.value), dtype)
            key, value = split_packed_heads(packed, batch, seq, 2, heads)
        context, probs = attend(
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout,
            training=False,
            keys_last=False,
        )
        context = ops.reshape(
            ops.transpose(context, (0, 2, 1, 3)), (-1, self.hidden_size)
        )
        output = self.output_layer_norm(self.output_dense(context) + query_tokens)
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
                "kernels": self.kernels,
            }
        )
        return config
