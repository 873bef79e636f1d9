"""Masking statistics of `MaskedLMMasker` on a large sample."""

import numpy as np
import pytest
import tensorflow as tf

from bert_keras.training.masking import MaskedLMMasker

VOCAB = 500
CLS, SEP, PAD, MASK = 1, 2, 0, 3
SPECIAL = (PAD, CLS, SEP, MASK)
CONTINUATIONS = tuple(range(400, 500))  # ids 400..499 play "##piece"


def sample_sequences(n=3000, seed=0):
    rs = np.random.RandomState(seed)
    sequences = []
    for _ in range(n):
        length = rs.randint(40, 126)
        words = rs.randint(4, 400, length)
        # About a third of tokens continue the previous word.
        pieces = np.where(rs.rand(length) < 0.35, rs.randint(400, 500, length), words)
        pieces[0] = words[0]
        cut = rs.randint(5, length - 5)
        sequences.append([CLS, *pieces[:cut], SEP, *pieces[cut:], SEP, PAD, PAD])
    return sequences


def run(masker, sequences):
    """Masks every sequence through a `tf.data` pipeline (graph mode)."""

    def examples():
        for ids in sequences:
            yield {
                "input_ids": np.array(ids, np.int32),
                "attention_mask": np.array([t != PAD for t in ids], np.int32),
            }

    spec = tf.TensorSpec([None], tf.int32)
    ds = tf.data.Dataset.from_generator(
        examples, output_signature={"input_ids": spec, "attention_mask": spec}
    ).map(masker)
    return [
        (
            np.array(ids),
            features["input_ids"].numpy(),
            features["masked_lm_positions"].numpy(),
            labels["labels"].numpy(),
        )
        for ids, (features, labels) in zip(sequences, ds)
    ]


@pytest.fixture(scope="module")
def token_level():
    masker = MaskedLMMasker(VOCAB, MASK, SPECIAL, max_predictions_per_seq=20, seed=0)
    return run(masker, sample_sequences())


def test_fifteen_percent_of_eligible_tokens_selected(token_level):
    selected = eligible = 0
    for original, _, _, labels in token_level:
        selected += (labels != -100).sum()
        eligible += (~np.isin(original, SPECIAL)).sum()
    assert selected / eligible == pytest.approx(0.15, abs=0.01)


def test_eighty_ten_ten(token_level):
    counts = np.zeros(3)
    for original, masked, positions, labels in token_level:
        used = positions[labels != -100]
        counts[0] += (masked[used] == MASK).sum()
        changed = (masked[used] != MASK) & (masked[used] != original[used])
        counts[1] += changed.sum()
        counts[2] += (masked[used] == original[used]).sum()
    shares = counts / counts.sum()
    # A random replacement can draw the original token (1 in ~496): negligible.
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.02)


def test_never_special_never_padding_and_labels_are_originals(token_level):
    for original, masked, positions, labels in token_level:
        used = positions[labels != -100]
        assert not np.isin(original[used], SPECIAL).any()
        np.testing.assert_array_equal(labels[labels != -100], original[used])
        untouched = np.setdiff1d(np.arange(len(original)), used)
        np.testing.assert_array_equal(masked[untouched], original[untouched])
        assert len(set(used.tolist())) == len(used)
        assert not np.isin(masked, [t for t in SPECIAL if t != MASK])[used].any()


def test_at_most_max_predictions():
    masker = MaskedLMMasker(VOCAB, MASK, SPECIAL, max_predictions_per_seq=3, seed=1)
    for _, _, positions, labels in run(masker, sample_sequences(50)):
        assert positions.shape == (3,)
        assert (labels != -100).sum() <= 3


def test_whole_word_masking_never_splits_a_word():
    masker = MaskedLMMasker(
        VOCAB, MASK, SPECIAL, max_predictions_per_seq=20,
        continuation_ids=CONTINUATIONS, whole_word_masking=True, seed=2,
    )  # fmt: skip
    selected = eligible = 0
    for original, _, positions, labels in run(masker, sample_sequences(800, seed=5)):
        chosen = set(positions[labels != -100].tolist())
        selected += len(chosen)
        eligible += (~np.isin(original, SPECIAL)).sum()
        # Split the sequence into words: a start piece and its continuations.
        word = []
        for index, token in enumerate(original):
            if token in SPECIAL or token not in CONTINUATIONS:
                if word:
                    assert len(chosen & set(word)) in (0, len(word)), word
                word = [] if token in SPECIAL else [index]
            else:
                word.append(index)
    assert selected / eligible == pytest.approx(0.15, abs=0.015)


def test_masks_change_between_epochs_and_are_reproducible():
    sequences = sample_sequences(20)
    ds = tf.data.Dataset.from_tensor_slices(
        {"input_ids": tf.ragged.constant(sequences)}
    )
    ds = ds.map(lambda x: {"input_ids": x["input_ids"]})

    def epochs(seed):
        masker = MaskedLMMasker(VOCAB, MASK, SPECIAL, 20, seed=seed)
        mapped = ds.map(masker)
        return [[f["input_ids"].numpy() for f, _ in mapped] for _ in range(2)]

    first, second = epochs(7)
    assert any((a != b).any() for a, b in zip(first, second))
    again, _ = epochs(7)
    assert all((a == b).all() for a, b in zip(first, again))


def test_bad_rates_are_refused():
    with pytest.raises(ValueError, match="mask_rate"):
        MaskedLMMasker(VOCAB, MASK, SPECIAL, 20, mask_rate=0)
    with pytest.raises(ValueError, match="continuation_ids"):
        MaskedLMMasker(VOCAB, MASK, SPECIAL, 20, whole_word_masking=True)


def test_indexed_masks_are_a_function_of_seed_and_index():
    masker = MaskedLMMasker(VOCAB, MASK, SPECIAL, 20, seed=4)
    ids = {"input_ids": tf.constant(sample_sequences(1)[0])}
    first, _ = masker(ids, index=7)
    again, _ = masker(ids, index=7)
    other, _ = masker(ids, index=8)
    np.testing.assert_array_equal(first["input_ids"], again["input_ids"])
    assert (first["input_ids"].numpy() != other["input_ids"].numpy()).any()
