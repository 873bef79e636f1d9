"""The post-LN transformer layer (attention + feed-forward) and the layer stack."""

import keras
from keras import layers

from bert_keras import kernels as kernel_policy
from bert_keras.kernels import DEFAULT_KERNELS
from bert_keras.modeling.attention import BertAttention


@keras.saving.register_keras_serializable(package="bert_keras")
class BertLayer(layers.Layer):
    """One encoder layer (HF module `encoder.layer.N`).

    `x = attention(x)`, then `LayerNorm(x + dropout(W2 act(W1 x)))`, with
    `W1` HF's `intermediate.dense` and `W2` HF's `output.dense`.

    Args:
        hidden_size: int, model width.
        num_attention_heads: int, must divide `hidden_size`.
        intermediate_size: int, width of the feed-forward block.
        hidden_act: str, a transformers `hidden_act` name (`"gelu"` is exact).
        hidden_dropout_rate: float, dropout on residual branches.
        attention_dropout_rate: float, dropout on attention probabilities.
        layer_norm_eps: float, LayerNorm epsilon.
        initializer_range: float, stddev of the normal initializer (as transformers).
        kernels: `"fast"` or `"reference"`, see `bert_keras.kernels`.

    Example:

    >>> layer = BertLayer(32, 4, 37)
    >>> mask = np.ones((3, 1, 1, 7), bool)
    >>> x = np.zeros((3, 7, 32), "float32")
    >>> tuple(layer(x, mask)[0].shape)
    (3, 7, 32)
    >>> first = np.zeros((3, 1), "int32")
    >>> tuple(layer(x, mask, query_positions=first)[0].shape)
    (3, 1, 32)
    """

    def __init__(
        self,
        hidden_size,
        num_attention_heads,
        intermediate_size,
        hidden_act="gelu",
        hidden_dropout_rate=0.1,
        attention_dropout_rate=0.1,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        kernels=DEFAULT_KERNELS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        initializer = keras.initializers.RandomNormal(stddev=initializer_range)
        self.attention = BertAttention(
            hidden_size,
            num_attention_heads,
            attention_dropout_rate=attention_dropout_rate,
            hidden_dropout_rate=hidden_dropout_rate,
            layer_norm_eps=layer_norm_eps,
            initializer_range=initializer_range,
            kernels=kernels,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.intermediate_dense = kernel_policy.dense(
            intermediate_size,
            kernels,
            kernel_initializer=initializer,
            dtype=self.dtype_policy,
            name="intermediate_dense",
        )
        self.intermediate_act_fn = kernel_policy.activation(hidden_act, kernels)
        self.output_dense = kernel_policy.dense(
            hidden_size,
            kernels,
            kernel_initializer=initializer,
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dropout = kernel_policy.dropout(
            hidden_dropout_rate, kernels, dtype=self.dtype_policy
        )
        self.output_layer_norm = kernel_policy.layer_norm(
            kernels,
            epsilon=layer_norm_eps,
            dtype=self.dtype_policy,
            name="output_LayerNorm",
        )

        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_rate = hidden_dropout_rate
        self.attention_dropout_rate = attention_dropout_rate
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.kernels = kernels

    def build(
        self, hidden_states_shape, attention_mask_shape=None, query_positions_shape=None
    ):
        hidden_states_shape = tuple(hidden_states_shape)
        self.attention.build(hidden_states_shape)
        self.intermediate_dense.build(hidden_states_shape)
        self.output_dense.build(hidden_states_shape[:-1] + (self.intermediate_size,))
        self.output_layer_norm.build(hidden_states_shape)
        self.built = True

    def call(self, hidden_states, attention_mask, training=None, query_positions=None):
        hidden_states, probs = self.attention(
            hidden_states,
            attention_mask,
            training=training,
            query_positions=query_positions,
        )
        shape = keras.ops.shape(hidden_states)  # (batch, rows, hidden)
        # 2-D products, which oneDNN fuses with their bias (and GELU).
        tokens = keras.ops.reshape(hidden_states, (-1, self.hidden_size))
        intermediate = self.intermediate_act_fn(
            self.intermediate_dense(tokens), training=training
        )
        output = self.output_dropout(self.output_dense(intermediate), training=training)
        output = self.output_layer_norm(output + tokens)
        return keras.ops.reshape(output, shape), probs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_size": self.hidden_size,
                "num_attention_heads": self.num_attention_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_act": self.hidden_act,
                "hidden_dropout_rate": self.hidden_dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
                "layer_norm_eps": self.layer_norm_eps,
                "initializer_range": self.initializer_range,
                "kernels": self.kernels,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="bert_keras")
class BertEncoder(layers.Layer):
    """The stack of `num_hidden_layers` `BertLayer`s (HF module `encoder`).

    Args:
        num_hidden_layers: int, number of layers.
        **layer_kwargs: the `BertLayer` arguments, shared by every layer
            (`hidden_size`, `num_attention_heads`, `intermediate_size`,
            `hidden_act`, dropout rates, `layer_norm_eps`, `initializer_range`,
            `kernels`).

    Call args:
        hidden_states: (batch, seq, hidden) embeddings.
        attention_mask: (batch, seq) tensor, nonzero/True for real tokens.
        training: bool, enables dropout.
        output_positions: optional (batch, n) int tensor, the positions whose
            final states are wanted. The last layer then computes only those
            rows (its keys and values still cover every position), so
            `last_hidden_state` is (batch, n, hidden) and equals the gathered
            rows of the full computation. Task heads that read [CLS] alone
            pass zeros of shape (batch, 1).

    Returns:
        dict with `last_hidden_state` (batch, seq, hidden), `hidden_states`
        (a list of num_hidden_layers + 1 tensors: the embeddings, then each
        layer's output) and `attentions` (a list of (batch, heads, seq, seq)).

    Example:

    >>> encoder = BertEncoder(2, hidden_size=32, num_attention_heads=4,
    ...                       intermediate_size=37)
    >>> out = encoder(np.zeros((3, 7, 32), "float32"), np.ones((3, 7)))
    >>> len(out["hidden_states"])
    3
    """

    def __init__(
        self,
        num_hidden_layers,
        hidden_size,
        num_attention_heads,
        intermediate_size,
        hidden_act="gelu",
        hidden_dropout_rate=0.1,
        attention_dropout_rate=0.1,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        kernels=DEFAULT_KERNELS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.layer = [
            BertLayer(
                hidden_size,
                num_attention_heads,
                intermediate_size,
                hidden_act=hidden_act,
                hidden_dropout_rate=hidden_dropout_rate,
                attention_dropout_rate=attention_dropout_rate,
                layer_norm_eps=layer_norm_eps,
                initializer_range=initializer_range,
                kernels=kernels,
                dtype=self.dtype_policy,
                name=f"layer_{i}",
            )
            for i in range(num_hidden_layers)
        ]
        self.num_hidden_layers = num_hidden_layers
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_rate = hidden_dropout_rate
        self.attention_dropout_rate = attention_dropout_rate
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.kernels = kernels

    def build(
        self,
        hidden_states_shape,
        attention_mask_shape=None,
        output_positions_shape=None,
    ):
        for layer in self.layer:
            layer.build(hidden_states_shape)
        self.built = True

    def call(self, hidden_states, attention_mask, training=None, output_positions=None):
        # (batch, 1, 1, seq): broadcast over heads and query positions.
        key_mask = keras.ops.cast(attention_mask, "bool")[:, None, None, :]
        all_hidden_states = [hidden_states]
        all_attentions = []
        last = len(self.layer) - 1
        for index, layer in enumerate(self.layer):
            hidden_states, probs = layer(
                hidden_states,
                key_mask,
                training=training,
                query_positions=output_positions if index == last else None,
            )
            all_hidden_states.append(hidden_states)
            all_attentions.append(probs)
        return {
            "last_hidden_state": hidden_states,
            "hidden_states": all_hidden_states,
            "attentions": all_attentions,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_hidden_layers": self.num_hidden_layers,
                "hidden_size": self.hidden_size,
                "num_attention_heads": self.num_attention_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_act": self.hidden_act,
                "hidden_dropout_rate": self.hidden_dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
                "layer_norm_eps": self.layer_norm_eps,
                "initializer_range": self.initializer_range,
                "kernels": self.kernels,
            }
        )
        return config
