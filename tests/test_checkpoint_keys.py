"""The HF key map (bert_keras/checkpoints/keys.py) against a golden list.

tests/golden/hf_keys.json holds every key of the eight classes for the tiny
2-layer config, in bert_keras's order; transformers' own state dicts must
hold the same keys (less its tied weights and buffers).
"""

import json
import pathlib

import pytest
import transformers
from conftest import tiny_config

import bert_keras as bk

GOLDEN = json.loads((pathlib.Path(__file__).parent / "golden/hf_keys.json").read_text())
CLASSES = [name for name in GOLDEN if name.startswith("Bert")]
# Buffers torch registers that are no weights.
BUFFERS = {"embeddings.position_ids", "embeddings.token_type_ids"}


def test_golden_list_covers_the_eight_classes():
    assert sorted(CLASSES) == sorted(
        name for name in bk.__all__ if name.startswith("BertFor") or name == "BertModel"
    )


@pytest.mark.parametrize("name", CLASSES)
def test_key_map_equals_the_golden_list(name):
    config = tiny_config(name, num_hidden_layers=GOLDEN["num_hidden_layers"])
    assert list(getattr(bk, name)(config).hf_variables()) == GOLDEN[name]


@pytest.mark.parametrize("name", CLASSES)
def test_golden_list_is_transformers_state_dict(name):
    config = tiny_config(name, num_hidden_layers=GOLDEN["num_hidden_layers"])
    model = getattr(bk, name)(config)
    torch_keys = {
        key
        for key in getattr(transformers, name)(config).state_dict()
        if key.removeprefix("bert.") not in BUFFERS
    }
    assert set(GOLDEN[name]) == torch_keys - set(model.hf_tied_weights)
    assert set(model.hf_tied_weights.values()) <= set(GOLDEN[name])


def test_every_variable_has_exactly_one_key_or_is_tied():
    model = bk.BertForPreTraining(tiny_config("BertForPreTraining"))
    mapped = {id(variable) for variable, _ in model.hf_variables().values()}
    trainable = {id(variable) for variable in model.trainable_variables}
    assert mapped == trainable
