"""XLA: every task model's train step compiles and trains with `jit_compile=True`.

A TPU runs a train step only as one XLA program, so every op of the step
(forward, backward, AdamW update) needs an XLA kernel. On the CPU the same
TensorFlow-to-XLA bridge compiles for XLA_CPU_JIT: each task model, with
either kernel policy and dropout on, trains two steps of `fit` under
`compile(jit_compile=True)`, and the XLA step equals the graph-mode step.
(`compile()`'s default, "auto", is no XLA on a CPU-only machine and under
any tf.distribute strategy.)

Models have one layer: the ops of a step do not grow with depth, its compile
time does.
"""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import BATCH
from conftest import TASK_CLASS_NAMES
from conftest import inputs_for
from conftest import labels_for
from conftest import tiny_config
from tensorflow.python.eager import context

import bert_keras as bk
from bert_keras.training.optimization import AdamW

DROPOUT = 0.1
MAX_PREDICTIONS = 3
# A case's variant: (model arguments, config overrides).
VARIANTS = {
    None: ({}, {}),
    # BERT pretraining as a TPU runs it: MLM logits at masked_lm_positions only.
    "gathered": ({"max_predictions_per_seq": MAX_PREDICTIONS}, {}),
    "regression": ({}, {"num_labels": 1}),
    "multi_label": ({}, {"problem_type": "multi_label_classification"}),
}


def _case(name, kernels, dtype="float32", variant=None, slow=True):
    label = "-".join([name, *([variant] if variant else []), kernels, dtype])
    marks = [pytest.mark.slow] if slow else []
    return pytest.param(name, kernels, dtype, variant, id=label, marks=marks)


# Every class with the fast kernels; the reference kernels (plain Keras layers)
# once, in the step that holds them all. Each case is ~5 s of XLA compiling.
CASES = [
    *(_case(name, "fast") for name in TASK_CLASS_NAMES),
    # Its fast step holds every fast kernel: the one case out of `slow`.
    _case("BertForPreTraining", "fast", variant="gathered", slow=False),
    _case("BertForPreTraining", "reference", variant="gathered"),
    _case("BertForSequenceClassification", "fast", variant="regression"),
    _case("BertForSequenceClassification", "fast", variant="multi_label"),
    _case("BertForPreTraining", "fast", "mixed_bfloat16", "gathered"),
    _case("BertForQuestionAnswering", "fast", "mixed_bfloat16"),
]


def build(name, kernels, dtype="float32", variant=None, dropout=DROPOUT, **compile):
    """A one-layer task model, compiled with its defaults and `compile`."""
    arguments, overrides = VARIANTS[variant]
    config = tiny_config(
        name,
        num_hidden_layers=1,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **overrides,
    )
    model = getattr(bk, name)(config, kernels=kernels, dtype=dtype, **arguments)
    model.compile(**compile)
    # Built before `fit`, Keras traces the step once instead of twice (it
    # retraces a step that created the optimizer's slots).
    model.optimizer.build(model.trainable_variables)
    return model


def dataset(name, config, variant=None):
    """One batch of features and labels, of static shape as a TPU needs."""
    features = inputs_for(name, config)
    labels = labels_for(name, config)
    rng = np.random.default_rng(2)
    if variant == "gathered":  # masked LM labels at the positions: (batch, P)
        features["masked_lm_positions"] = np.array([[1, 3, 5], [2, 4, 0], [1, 0, 0]])
        used = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]], bool)
        masked = rng.integers(0, config.vocab_size, size=(BATCH, MAX_PREDICTIONS))
        labels["labels"] = np.where(used, masked, -100)
    elif variant == "regression":
        labels = rng.normal(size=BATCH).astype("float32")
    elif variant == "multi_label":
        labels = (rng.random((BATCH, config.num_labels)) < 0.5).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((features, labels))
    return data.batch(BATCH, drop_remainder=True)


@contextlib.contextmanager
def functions_defined():
    """Yields a list that holds, on exit, the FunctionDefs traced in the block.

    TensorFlow's eager context is where a traced function is registered, with
    the attributes it is executed by; no public API lists them.
    """
    runtime = context.context()
    before = set(runtime.list_function_names())
    defined = []
    yield defined
    for name in sorted(set(runtime.list_function_names()) - before):
        # A transient function can be freed meanwhile (TensorFlow then raises
        # an AssertionError, not the NotFoundError it documents).
        with contextlib.suppress(tf.errors.NotFoundError, AssertionError):
            defined.append(runtime.get_function_def(name))


def train_steps(function_defs):
    """The functions that update the weights: bert_keras' AdamW applies its
    update with `ResourceApplyAdam`, in the function that computes the loss
    and gradients."""
    return [
        function_def
        for function_def in function_defs
        if any(node.op == "ResourceApplyAdam" for node in function_def.node_def)
    ]


def must_compile(function_def):
    """Whether TensorFlow runs `function_def` as one XLA program.

    `tf.function(jit_compile=True)` marks it `_XlaMustCompile`; TensorFlow
    then compiles it whole and fails on an op without an XLA kernel (see
    `test_an_op_without_an_xla_kernel_fails_the_step`) instead of running it
    op by op.
    """
    attr = function_def.attr
    return "_XlaMustCompile" in attr and attr["_XlaMustCompile"].b


def fit_two_steps(model, data):
    """`fit` for two epochs of one batch: `(per-step losses, FunctionDefs)`."""
    with functions_defined() as defined:
        history = model.fit(data, epochs=2, shuffle=False, verbose=0)
    return np.array(history.history["loss"]), defined


def weights(model):
    return [np.array(variable.numpy(), "float32") for variable in model.weights]


@pytest.mark.parametrize(("name", "kernels", "dtype", "variant"), CASES)
def test_train_step_compiles_and_trains_with_xla(name, kernels, dtype, variant):
    model = build(name, kernels, dtype, variant, jit_compile=True)
    assert isinstance(model.optimizer, AdamW)
    # Keras sets jit_compile to False, with a warning only, when a layer has
    # `supports_jit=False` or op determinism is enabled (keras.src.trainers.
    # trainer.model_supports_jit); the step is then plain graph mode.
    assert model.jit_compile is True
    before = [np.array(v.numpy()) for v in model.trainable_variables]

    losses, defined = fit_two_steps(model, dataset(name, model.config, variant))

    assert losses.shape == (2,) and np.isfinite(losses).all(), losses
    unchanged = [
        variable.path
        for variable, value in zip(model.trainable_variables, before)
        if np.array_equal(variable.numpy(), value)
    ]
    assert not unchanged, f"not trained: {unchanged}"
    assert model.jit_compile is True
    steps = train_steps(defined)
    assert steps, "fit traced no function with the AdamW update"
    assert all(must_compile(step) for step in steps), "the step was not XLA"
    # Dropout, and so its random draws, are part of the compiled step.
    assert all(
        any(node.op.startswith("StatelessRandom") for node in step.node_def)
        for step in steps
    )


@pytest.mark.parametrize(
    "kernels", ["fast", pytest.param("reference", marks=pytest.mark.slow)]
)
def test_xla_train_step_equals_the_graph_step(kernels):
    """Dropout off, float32: the same losses and updates either way."""
    name = "BertForPreTraining"
    xla = build(name, kernels, variant="gathered", dropout=0.0, jit_compile=True)
    graph = build(name, kernels, variant="gathered", dropout=0.0, jit_compile=False)
    graph.set_weights(xla.get_weights())
    data = dataset(name, xla.config, "gathered")

    xla_losses, xla_defined = fit_two_steps(xla, data)
    graph_losses, graph_defined = fit_two_steps(graph, data)

    assert [must_compile(step) for step in train_steps(xla_defined)] == [True]
    assert [must_compile(step) for step in train_steps(graph_defined)] == [False]
    # The first loss is the forward pass; the second follows one update.
    np.testing.assert_allclose(xla_losses, graph_losses, rtol=1e-5)
    # One AdamW step moves a weight by about the learning rate, 5e-5.
    for got, expected in zip(weights(xla), weights(graph)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


class _HostCall(keras.layers.Layer):
    """Identity through Python: `PyFunc` has no XLA kernel."""

    def call(self, inputs):
        outputs = tf.numpy_function(lambda x: x, [inputs], inputs.dtype)
        return tf.ensure_shape(outputs, inputs.shape)


def test_an_op_without_an_xla_kernel_fails_the_step():
    """What makes a passing XLA test mean something: a must-compile step
    with such an op raises instead of falling back to running op by op."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(_HostCall()(inputs)))
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert model.jit_compile is True
    x, y = np.ones((3, 4), "float32"), np.ones((3, 1), "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="unsupported op.*PyFunc"):
        model.fit(x, y, verbose=0)
