"""Dropout that draws 16 random bits per element instead of a float32.

Random numbers cost about as much as the rest of a CPU dropout; each 32-bit
Philox word serves two elements here. The drop probability becomes
`round(rate * 65536) / 65536` (0.1 -> 0.100006) and kept values are scaled by
the exact inverse of the keep probability, so the expected output equals the
input, as in transformers.
"""

import keras
from keras import layers
from keras import ops

_LEVELS = 65536  # values of a 16-bit draw


@keras.saving.register_keras_serializable(package="bert_keras")
class SixteenBitDropout(layers.Layer):
    """Inverted dropout with 16-bit random draws.

    Args:
        rate: float in [0, 1), the fraction of elements zeroed in training.
        seed: int, optional seed of the layer's random stream.

    Call args:
        inputs: tensor of any shape.
        training: bool; dropout applies only when True.

    Example:

    >>> dropout = SixteenBitDropout(0.5, seed=1)
    >>> x = np.ones((2, 1000), "float32")
    >>> y = dropout(x, training=True)
    >>> np.unique(y).tolist()
    [0.0, 2.0]
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout `rate` must be in [0, 1). Received: rate={rate}")
        self.rate = rate
        self.seed = seed
        dropped = round(rate * _LEVELS)
        # A 16-bit draw is uniform on [-32768, 32767]; below this it drops.
        self._threshold = -_LEVELS // 2 + dropped
        self._scale = _LEVELS / (_LEVELS - dropped)
        self._active = dropped > 0
        if self._active:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def call(self, inputs, training=False):
        if not training or not self._active:
            return inputs
        shape = ops.shape(inputs)
        size = ops.size(inputs)
        # One int32 draw per two elements, reinterpreted as two int16s (the
        # static last axis lets `view` work with a dynamic number of draws).
        draws = _random_words((size + 1) // 2, self.seed_generator)
        halves = ops.reshape(ops.view(draws, "int16"), (-1,))
        halves = ops.slice(halves, [0], [size])
        keep = ops.greater_equal(halves, ops.cast(self._threshold, "int16"))
        mask = ops.where(keep, ops.cast(self._scale, inputs.dtype), 0)
        return inputs * ops.reshape(mask, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


def _random_words(count, seed_generator):
    """(count, 1) int32 draws whose 32 bits are all random.

    On TensorFlow, `randint` without bounds is the raw Philox output (bounds
    add a modulo per draw); other backends take the bounded draw, which never
    gives the largest int32.
    """
    if keras.backend.backend() == "tensorflow":
        bounds = {"minval": None, "maxval": None}
    else:
        bounds = {"minval": -(2**31), "maxval": 2**31 - 1}
    return keras.random.randint(
        (count, 1), dtype="int32", seed=seed_generator, **bounds
    )
