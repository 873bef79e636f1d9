"""Warmup + linear decay schedule and AdamW's weight-decay exclusions."""

import keras
import numpy as np
import pytest
import torch
import transformers

from bert_keras.training.optimization import WarmupLinearDecay
from bert_keras.training.optimization import create_optimizer


@pytest.mark.parametrize(("total", "warmup"), [(100, 10), (37, 0), (10, 10), (1, 0)])
def test_schedule_matches_transformers_linear_schedule(total, warmup):
    peak = 3e-5
    ours = WarmupLinearDecay(peak, total_steps=total, warmup_steps=warmup)
    # transformers' reference, driven by a torch optimizer.
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=peak)
    reference = transformers.get_linear_schedule_with_warmup(optimizer, warmup, total)
    for step in range(total + 5):
        expected = reference.get_last_lr()[0]
        assert float(ours(step)) == pytest.approx(expected, rel=1e-6, abs=1e-12), step
        optimizer.step()
        reference.step()


def test_schedule_known_values_and_serialization():
    schedule = WarmupLinearDecay(2e-5, total_steps=1000, warmup_steps=100)
    values = [float(schedule(step)) for step in (0, 50, 100, 550, 1000, 5000)]
    np.testing.assert_allclose(values, [0, 1e-5, 2e-5, 1e-5, 0, 0], atol=1e-12)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, WarmupLinearDecay)
    assert float(restored(550)) == pytest.approx(1e-5)


def test_schedule_rejects_bad_steps():
    with pytest.raises(ValueError, match="warmup_steps=20, total_steps=10"):
        WarmupLinearDecay(1e-5, total_steps=10, warmup_steps=20)


def test_create_optimizer_builds_the_schedule_from_a_ratio():
    optimizer = create_optimizer(2e-5, total_steps=200, warmup_ratio=0.1)
    schedule = optimizer._learning_rate  # where Keras keeps the schedule object
    assert isinstance(schedule, WarmupLinearDecay)
    assert schedule.warmup_steps == 20 and schedule.total_steps == 200
    assert optimizer.weight_decay == pytest.approx(0.01)
    assert optimizer.global_clipnorm == pytest.approx(1.0)


def test_weight_decay_skips_bias_and_layer_norm():
    dense = keras.layers.Dense(3)
    norm = keras.layers.LayerNormalization()
    dense.build((None, 4))
    norm.build((None, 3))
    optimizer = create_optimizer()
    optimizer.build(dense.trainable_variables + norm.trainable_variables)
    decayed = {
        v.name: optimizer._use_weight_decay(v)
        for v in dense.trainable_variables + norm.trainable_variables
    }
    assert decayed == {"kernel": True, "bias": False, "gamma": False, "beta": False}


def test_fused_adamw_step_equals_pytorch_adamw():
    """One fused kernel per weight with PyTorch's AdamW numbers: epsilon added
    to the bias-corrected sqrt(v) (Keras adds it to sqrt(v), which differs
    most for tiny gradients, included here), decay off the bias."""
    rng = np.random.default_rng(0)
    kernel0 = rng.normal(size=(4, 3)).astype("float32")
    bias0 = rng.normal(size=(3,)).astype("float32")
    grads = [
        (
            (rng.normal(size=(4, 3)) * scale).astype("float32"),
            (rng.normal(size=(3,)) * 1e-7).astype("float32"),
        )
        for scale in (1.0, 1e-6, 0.3, 1e-5, 2.0)
    ]
    kernel = keras.Variable(kernel0, name="kernel")
    bias = keras.Variable(bias0, name="bias")
    optimizer = create_optimizer(1e-2, weight_decay=0.01, clipnorm=None)
    assert optimizer.__class__ is not keras.optimizers.AdamW
    optimizer.build([kernel, bias])
    for kernel_grad, bias_grad in grads:
        optimizer.apply_gradients([(kernel_grad, kernel), (bias_grad, bias)])

    torch_kernel = torch.nn.Parameter(torch.tensor(kernel0))
    torch_bias = torch.nn.Parameter(torch.tensor(bias0))
    reference = torch.optim.AdamW(
        [
            {"params": [torch_kernel], "weight_decay": 0.01},
            {"params": [torch_bias], "weight_decay": 0.0},
        ],
        lr=1e-2,
        eps=1e-6,
    )
    for kernel_grad, bias_grad in grads:
        torch_kernel.grad = torch.tensor(kernel_grad)
        torch_bias.grad = torch.tensor(bias_grad)
        reference.step()
    for ours, theirs in ((kernel, torch_kernel), (bias, torch_bias)):
        expected = theirs.detach().numpy()
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6, atol=1e-7)
        state = reference.state[theirs]
        momentum, velocity = optimizer._momentums, optimizer._velocities
        index = optimizer._get_variable_index(ours)
        np.testing.assert_allclose(
            momentum[index].numpy(), state["exp_avg"].numpy(), rtol=1e-4
        )
        np.testing.assert_allclose(
            velocity[index].numpy(), state["exp_avg_sq"].numpy(), rtol=1e-4
        )


@pytest.mark.parametrize("layers", [2, 8])
def test_step_scalars_are_made_once_per_traced_step(layers):
    """Beta powers and decay factors do not grow with the weight count (they
    were ~15 operations per weight of every traced training step)."""
    import tensorflow as tf

    weights = [tf.Variable(tf.ones((4, 4))) for _ in range(layers)]
    optimizer = create_optimizer(1e-3, weight_decay=0.01)
    optimizer.build(weights)

    @tf.function
    def step():
        optimizer.apply_gradients([(tf.ones((4, 4)), w) for w in weights])

    ops = [op.type for op in step.get_concrete_function().graph.get_operations()]
    assert ops.count("ResourceApplyAdam") == layers
    assert ops.count("Pow") == 2
    step()
    step()
    # Eager steps (no cache) give the same weights as the traced ones.
    eager = [tf.Variable(tf.ones((4, 4))) for _ in range(layers)]
    reference = create_optimizer(1e-3, weight_decay=0.01)
    reference.build(eager)
    for _ in range(2):
        reference.apply_gradients([(tf.ones((4, 4)), w) for w in eager])
    for got, expected in zip(weights, eager):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("clip", [1.0, 100.0])
def test_global_norm_clipping_equals_keras(clip):
    """Embedding rows are clipped as touched rows; norm and scale are Keras'."""
    import tensorflow as tf
    from keras.src.optimizers.base_optimizer import clip_by_global_norm

    rng = np.random.default_rng(1)
    rows = tf.IndexedSlices(
        tf.constant(rng.normal(size=(6, 4)), "float32"),
        tf.constant([3, 0, 3, 7, 0, 3]),  # repeated rows are summed
        tf.constant([9, 4]),
    )
    dense = tf.constant(rng.normal(size=(5, 3)) * 2, "float32")
    optimizer = create_optimizer(1e-3, clipnorm=clip)
    got = optimizer._clip_gradients([rows, None, dense])
    expected = clip_by_global_norm([tf.convert_to_tensor(rows), None, dense], clip)
    assert got[1] is None
    assert isinstance(got[0], tf.IndexedSlices)
    for ours, keras_value in zip((got[0], got[2]), (expected[0], expected[2])):
        np.testing.assert_allclose(tf.convert_to_tensor(ours), keras_value, rtol=1e-6)
    norm = np.sqrt(
        sum(np.sum(np.square(tf.convert_to_tensor(g))) for g in (rows, dense))
    )
    clipped = np.sqrt(
        sum(np.sum(np.square(tf.convert_to_tensor(got[i]))) for i in (0, 2))
    )
    assert clipped == pytest.approx(min(norm, clip), rel=1e-5)
    assert norm > 1.0  # the first case clips


def test_global_norm_clipping_of_a_non_finite_gradient_gives_nan():
    import tensorflow as tf

    optimizer = create_optimizer(1e-3)
    got = optimizer._clip_gradients([tf.constant([1.0, np.inf]), tf.constant([2.0])])
    assert np.isnan(got[1].numpy()).all()
