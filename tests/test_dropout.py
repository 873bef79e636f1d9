"""SixteenBitDropout: 16-bit draws, the drop rate asked for, inverted scaling."""

import keras
import numpy as np
import pytest

from bert_keras.kernels.dropout import SixteenBitDropout


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_drops_the_rate_asked_for_and_keeps_the_mean(rate):
    x = np.ones((64, 12, 128, 128), "float32")  # 12.6 M elements
    y = SixteenBitDropout(rate, seed=7)(x, training=True).numpy()
    dropped = round(rate * 65536) / 65536
    values = np.unique(y)
    assert values[0] == 0 and len(values) == 2
    assert values[1] == pytest.approx(1 / (1 - dropped), rel=1e-6)
    # 12.6 M Bernoulli draws: the standard error of the fraction is < 1.5e-4.
    assert np.mean(y == 0) == pytest.approx(rate, abs=1e-3)
    assert np.mean(y) == pytest.approx(1.0, abs=2e-3)


def test_odd_sizes_bfloat16_and_no_dropout_outside_training():
    layer = SixteenBitDropout(0.5, seed=1, dtype="mixed_bfloat16")
    x = np.arange(1, 8, dtype="float32").reshape(7, 1)  # 7 elements: odd
    y = layer(x, training=True)
    assert y.shape == (7, 1) and keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert set(np.unique(np.asarray(y, "float32") / x)) <= {0.0, 2.0}
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_array_equal(SixteenBitDropout(0.0)(x, training=True), x)


def test_draws_are_independent_across_calls_and_elements():
    layer = SixteenBitDropout(0.5, seed=3)
    x = np.ones((200_000,), "float32")
    first = layer(x, training=True).numpy() > 0
    second = layer(x, training=True).numpy() > 0
    assert 0.49 < np.mean(first != second) < 0.51  # a new stream each call
    # The two 16-bit halves of one 32-bit draw are independent.
    assert 0.49 < np.mean(first[0::2] != first[1::2]) < 0.51


def test_seeded_runs_repeat_and_bad_rates_are_refused():
    x = np.ones((1000,), "float32")
    keras.utils.set_random_seed(5)
    a = SixteenBitDropout(0.2)(x, training=True).numpy()
    keras.utils.set_random_seed(5)
    b = SixteenBitDropout(0.2)(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="rate=1.0"):
        SixteenBitDropout(1.0)


def test_works_on_dynamic_shapes_in_a_graph():
    """Batches padded per batch (GLUE, SQuAD) reach dropout with unknown sizes."""
    import tensorflow as tf

    layer = SixteenBitDropout(0.1, seed=2)
    spec = tf.TensorSpec((None, None, 7), "float32")
    dropped = tf.function(lambda x: layer(x, training=True), input_signature=[spec])
    for shape in [(2, 3, 7), (300, 31, 7)]:
        y = dropped(tf.ones(shape)).numpy()
        assert y.shape == shape
        assert set(np.unique(y)) <= {0.0, np.float32(65536 / (65536 - 6554))}
    assert np.mean(y == 0) == pytest.approx(0.1, abs=0.01)


def test_random_words_are_uniform_over_all_32_bits_without_a_modulo():
    import tensorflow as tf

    from bert_keras.kernels.dropout import _random_words

    words = _random_words(400_000, keras.random.SeedGenerator(0)).numpy().ravel()
    quarters = np.histogram(words, bins=4, range=(-(2**31), 2**31))[0]
    np.testing.assert_allclose(quarters / words.size, 0.25, atol=0.005)
    low = words & 0xFFFF  # the half the second element of a pair reads
    assert np.mean(low) == pytest.approx(32767.5, rel=0.01)
    assert np.mean(low & 1) == pytest.approx(0.5, abs=0.005)
    # TensorFlow's raw Philox output, not a bounded draw reduced modulo 2^32 - 1.
    seed = keras.random.SeedGenerator(0)
    graph = tf.function(lambda: _random_words(8, seed))
    ops_used = {op.type for op in graph.get_concrete_function().graph.get_operations()}
    assert "StatelessRandomUniformFullIntV2" in ops_used
    assert "StatelessRandomUniformIntV2" not in ops_used
