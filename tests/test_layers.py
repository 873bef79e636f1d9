"""Every layer of bert_keras.modeling and bert_keras.kernels through `run_layer_test`.

Shapes, config round trip, mixed precision, a training step and a `.keras`
round trip, under both kernel policies where the layer takes `kernels`.
Numerics against transformers are in test_parity.py; the fast kernels against
their references in test_kernels.py.
"""

import importlib
import inspect
import pkgutil

import keras
import numpy as np
import pytest
from conftest import BATCH
from conftest import CHOICES
from conftest import SEQ
from conftest import random_inputs
from conftest import tiny_config
from layer_test import run_layer_test

import bert_keras.kernels
import bert_keras.modeling
from bert_keras.kernels.dense import Float32BiasGradientDense
from bert_keras.kernels.dropout import SixteenBitDropout
from bert_keras.kernels.layer_norm import LeanLayerNormalization
from bert_keras.modeling.attention import BertAttention
from bert_keras.modeling.embeddings import BertEmbeddings
from bert_keras.modeling.encoder import BertEncoder
from bert_keras.modeling.encoder import BertLayer
from bert_keras.modeling.heads import BertLMPredictionHead
from bert_keras.modeling.heads import BertPooler
from bert_keras.modeling.heads import FlattenChoices
from bert_keras.modeling.heads import UnflattenChoices

CONFIG = tiny_config()
VOCAB = CONFIG.vocab_size  # 99
HIDDEN = CONFIG.hidden_size  # 32
HEADS = CONFIG.num_attention_heads  # 4
INTERMEDIATE = CONFIG.intermediate_size  # 37
LAYERS = CONFIG.num_hidden_layers  # 2
ROWS = 2  # query / output positions asked for

KERNELS = pytest.mark.parametrize("kernels", ["fast", "reference"])
ATTENTION_KWARGS = dict(hidden_size=HIDDEN, num_attention_heads=HEADS)
LAYER_KWARGS = dict(ATTENTION_KWARGS, intermediate_size=INTERMEDIATE)

TESTED = {
    BertEmbeddings,
    BertAttention,
    BertLayer,
    BertEncoder,
    BertPooler,
    BertLMPredictionHead,
    FlattenChoices,
    UnflattenChoices,
    Float32BiasGradientDense,
    LeanLayerNormalization,
    SixteenBitDropout,
}


def hidden_states(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((BATCH, SEQ, HIDDEN)).astype("float32")


def key_mask():
    """(batch, 1, 1, seq) bool, the padded rows of `random_inputs`."""
    mask = random_inputs(CONFIG)["attention_mask"].astype(bool)
    return mask[:, None, None, :]


def positions():
    return np.array([[0, 3], [4, 1], [2, 2]], "int32")


def test_every_layer_class_is_tested():
    """A new layer in modeling/ or kernels/ needs a test here."""
    defined = set()
    for package in (bert_keras.modeling, bert_keras.kernels):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for _, value in inspect.getmembers(module, inspect.isclass):
                if (
                    issubclass(value, keras.layers.Layer)
                    and not issubclass(value, keras.Model)
                    and value.__module__ == module.__name__
                ):
                    defined.add(value)
    assert defined == TESTED


@KERNELS
def test_embeddings(kernels, tmp_path):
    inputs = random_inputs(CONFIG)
    run_layer_test(
        BertEmbeddings,
        dict(
            vocab_size=VOCAB,
            hidden_size=HIDDEN,
            max_position_embeddings=CONFIG.max_position_embeddings,
            type_vocab_size=CONFIG.type_vocab_size,
            kernels=kernels,
        ),
        {key: inputs[key] for key in ("input_ids", "token_type_ids")},
        (BATCH, SEQ, HIDDEN),
        tmp_path=tmp_path,
        expected_num_trainable_weights=5,  # 3 tables, LayerNorm gamma and beta
    )


@KERNELS
@pytest.mark.parametrize("rows", [None, ROWS], ids=["all-rows", "query-positions"])
@pytest.mark.parametrize(
    ("cls", "init_kwargs", "num_trainable_weights"),
    [
        # q, k, v and output: kernel and bias; LayerNorm: gamma and beta.
        pytest.param(BertAttention, ATTENTION_KWARGS, 10, id="BertAttention"),
        # The attention's 10, then two dense layers and a LayerNorm.
        pytest.param(BertLayer, LAYER_KWARGS, 16, id="BertLayer"),
    ],
)
def test_attention_and_layer(
    cls, init_kwargs, num_trainable_weights, kernels, rows, tmp_path
):
    inputs = {"hidden_states": hidden_states(), "attention_mask": key_mask()}
    if rows:
        inputs["query_positions"] = positions()
    rows = rows or SEQ
    run_layer_test(
        cls,
        dict(init_kwargs, kernels=kernels),
        inputs,
        ((BATCH, rows, HIDDEN), (BATCH, HEADS, rows, SEQ)),
        tmp_path=tmp_path,
        expected_num_trainable_weights=num_trainable_weights,
    )


@KERNELS
@pytest.mark.parametrize("rows", [None, ROWS], ids=["all-rows", "output-positions"])
def test_encoder(kernels, rows, tmp_path):
    inputs = {
        "hidden_states": hidden_states(),
        "attention_mask": random_inputs(CONFIG)["attention_mask"],
    }
    if rows:
        inputs["output_positions"] = positions()
    last = rows or SEQ
    run_layer_test(
        BertEncoder,
        dict(LAYER_KWARGS, num_hidden_layers=LAYERS, kernels=kernels),
        inputs,
        {
            "last_hidden_state": (BATCH, last, HIDDEN),
            "hidden_states": [(BATCH, SEQ, HIDDEN)] * LAYERS + [(BATCH, last, HIDDEN)],
            "attentions": [(BATCH, HEADS, SEQ, SEQ)] * (LAYERS - 1)
            + [(BATCH, HEADS, last, SEQ)],
        },
        tmp_path=tmp_path,
        expected_num_trainable_weights=16 * LAYERS,
    )


@KERNELS
def test_pooler(kernels, tmp_path):
    run_layer_test(
        BertPooler,
        dict(hidden_size=HIDDEN, kernels=kernels),
        hidden_states(),
        (BATCH, HIDDEN),
        tmp_path=tmp_path,
        expected_num_trainable_weights=2,
    )


@KERNELS
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_lm_prediction_head(kernels, tied, tmp_path):
    init_kwargs = dict(vocab_size=VOCAB, hidden_size=HIDDEN, kernels=kernels)
    if tied:
        word_embeddings = keras.layers.Embedding(VOCAB, HIDDEN)
        word_embeddings.build((None,))
        init_kwargs["word_embeddings"] = word_embeddings
    run_layer_test(
        BertLMPredictionHead,
        init_kwargs,
        hidden_states(),
        (BATCH, SEQ, VOCAB),
        tmp_path=tmp_path,
        # dense (2), LayerNorm (2), bias, and the decoder or the shared table.
        expected_num_trainable_weights=6,
        not_in_config=("word_embeddings",) if tied else (),
        # Re-tying on load is the owning model's job: test_models.py's
        # test_keras_file_round_trip_keeps_decoder_tying saves a tied MLM model.
        run_saving_check=not tied,
    )


def test_flatten_choices(tmp_path):
    input_ids = np.arange(BATCH * CHOICES * SEQ).reshape(BATCH, CHOICES, SEQ)
    flat = run_layer_test(
        FlattenChoices, {}, input_ids, (BATCH * CHOICES, SEQ), tmp_path=tmp_path
    )
    np.testing.assert_array_equal(flat, input_ids.reshape(-1, SEQ))


def test_unflatten_choices(tmp_path):
    scores = np.arange(BATCH * CHOICES, dtype="float32").reshape(-1, 1)
    input_ids = np.zeros((BATCH, CHOICES, SEQ), "int32")
    logits = run_layer_test(
        UnflattenChoices,
        {},
        {"scores": scores, "input_ids": input_ids},
        (BATCH, CHOICES),
        tmp_path=tmp_path,
    )
    np.testing.assert_array_equal(logits, scores.reshape(BATCH, CHOICES))


@pytest.mark.parametrize(
    ("cls", "init_kwargs", "width", "num_trainable_weights"),
    [
        pytest.param(
            Float32BiasGradientDense,
            dict(units=INTERMEDIATE, activation="gelu"),
            INTERMEDIATE,
            2,
            id="Float32BiasGradientDense",
        ),
        pytest.param(
            LeanLayerNormalization,
            dict(epsilon=1e-12),
            HIDDEN,
            2,
            id="LeanLayerNormalization",
        ),
        pytest.param(
            SixteenBitDropout,
            dict(rate=0.1, seed=1),
            HIDDEN,
            0,
            id="SixteenBitDropout",
        ),
    ],
)
def test_kernel_layer(cls, init_kwargs, width, num_trainable_weights, tmp_path):
    run_layer_test(
        cls,
        init_kwargs,
        hidden_states(),
        (BATCH, SEQ, width),
        tmp_path=tmp_path,
        expected_num_trainable_weights=num_trainable_weights,
    )
