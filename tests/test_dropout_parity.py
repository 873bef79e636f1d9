"""Dropout acts where transformers puts it, at the same rates (issue 26).

The two frameworks draw masks from different random streams, so their
training-mode outputs can only agree in distribution. Each side runs one
batch repeated `COPIES` times (every row gets its own masks) from the same
weights, with one kind of dropout on at a time; per output element, the mean
and the spread over the copies must agree. A dropout missing, added or at
another rate changes the spread: 0.2 instead of 0.3 takes it to 0.76-0.83 of
transformers' (`test_another_rate_changes_the_spread`).
"""

import keras
import numpy as np
import pytest
import torch
import transformers
from conftest import tiny_config
from test_training_parity import HEADS
from test_training_parity import make_batches

import bert_keras as bk

COPIES = 1000
OUTPUTS = ("logits", "start_logits", "end_logits")
# Each kind of dropout and its rate: attention probabilities; embeddings and
# each residual branch; the classifier input (sequence and token
# classification; none in QA).
RATES = {
    "attention": "attention_probs_dropout_prob",
    "hidden": "hidden_dropout_prob",
    "classifier": "classifier_dropout",
}
# One kind on at 0.3, the others off.
KINDS = {
    kind: {**dict.fromkeys(RATES.values(), 0.0), rate: 0.3}
    for kind, rate in RATES.items()
}


def sampled_outputs(head, kind, tmp_path, **keras_overrides):
    """Training-mode outputs of both frameworks, each `(COPIES, rows, n)`."""
    name, overrides = HEADS[head]
    config = tiny_config(name, **KINDS[kind], **overrides)
    torch.manual_seed(1)
    theirs = getattr(transformers, name)(config)
    theirs.save_pretrained(tmp_path)
    keras.utils.set_random_seed(2)  # the dropout layers' seeds
    ours = getattr(bk, name).from_pretrained(
        tmp_path, dtype="float32", **keras_overrides
    )
    features = make_batches(head, config)[0][0]
    rows = len(features["input_ids"])
    copies = {k: np.tile(v, (COPIES, 1)) for k, v in features.items()}
    theirs.train()
    torch.manual_seed(2)
    with torch.no_grad():
        torch_out = theirs(
            **{k: torch.from_numpy(v.astype(np.int64)) for k, v in copies.items()}
        )
    keras_out = ours(copies, training=True)
    keys = [k for k in OUTPUTS if k in torch_out]
    return [
        np.concatenate(
            [np.asarray(out[k], np.float64).reshape(COPIES, rows, -1) for k in keys],
            axis=-1,
        )
        for out in (torch_out, keras_out)
    ]


def spread_ratio(theirs, mine):
    return float(mine.std(axis=0).mean() / theirs.std(axis=0).mean())


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("head", sorted(HEADS))
def test_training_outputs_spread_as_transformers_outputs(head, kind, tmp_path):
    theirs, mine = sampled_outputs(head, kind, tmp_path)
    if head == "question_answering" and kind == "classifier":
        # No dropout in the QA head: both are deterministic here.
        assert theirs.std(axis=0).max() < 1e-7 and mine.std(axis=0).max() < 1e-7
        return
    assert theirs.std(axis=0).mean() > 1e-5 and mine.std(axis=0).mean() > 1e-5
    # Each mean over COPIES is off by about std / sqrt(COPIES).
    standard_error = np.sqrt((theirs.var(axis=0) + mine.var(axis=0)) / COPIES)
    gap = np.abs(theirs.mean(axis=0) - mine.mean(axis=0)) / standard_error
    assert gap.max() < 5, gap.max()
    assert abs(spread_ratio(theirs, mine) - 1) < 0.05, spread_ratio(theirs, mine)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_another_rate_changes_the_spread(kind, tmp_path):
    theirs, mine = sampled_outputs(
        "classification", kind, tmp_path, **{RATES[kind]: 0.2}
    )
    assert spread_ratio(theirs, mine) < 0.9, spread_ratio(theirs, mine)
