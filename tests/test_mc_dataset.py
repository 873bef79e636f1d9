"""`to_tf_dataset` on multiple-choice data, and its `prepare_tf_dataset` keywords.

Multiple-choice examples hold one sequence per choice, as a tokenizer gives
for SWAG-style data once regrouped per example; batches are
(batch, choices, seq), every choice padded to the batch's longest choice.
"""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

import bert_keras as bk
from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.training.data import to_tf_dataset

CHOICES = 3
PAD = 7  # not 0, so a padding written with the wrong value shows


def choices_data(n=10, seed=0, masks=True):
    """`n` examples of CHOICES sequences of 1 to 9 ids; labels 0..n-1."""
    rng = np.random.default_rng(seed)
    ids, types = [], []
    for _ in range(n):
        lengths = rng.integers(1, 10, size=CHOICES)
        ids.append([rng.integers(10, 99, size=k).tolist() for k in lengths])
        types.append([[0] * (k // 2) + [1] * (k - k // 2) for k in lengths])
    data = {"input_ids": ids, "token_type_ids": types, "label": list(range(n))}
    if masks:
        data["attention_mask"] = [[[1] * len(s) for s in example] for example in ids]
    return data


def check_batch(features, labels, data):
    """Every choice's tokens, then padding values, up to the batch's longest."""
    ids = features["input_ids"].numpy()
    longest = max(len(s) for label in labels.numpy() for s in data["input_ids"][label])
    assert ids.shape == (len(labels), CHOICES, longest)
    for name, tensor in features.items():
        assert tensor.dtype == tf.int32, name
        assert tensor.shape == ids.shape, name
    for row, label in enumerate(labels.numpy()):
        for choice, sequence in enumerate(data["input_ids"][label]):
            n = len(sequence)
            assert ids[row, choice, :n].tolist() == sequence
            assert (ids[row, choice, n:] == PAD).all()
            mask = features["attention_mask"].numpy()[row, choice]
            assert mask.tolist() == [1] * n + [0] * (longest - n)
            types = features["token_type_ids"].numpy()[row, choice]
            assert types.tolist() == data["token_type_ids"][label][choice] + [0] * (
                longest - n
            )


@pytest.mark.parametrize("masks", [True, False])
def test_choices_are_padded_to_the_batch_longest(masks):
    data = choices_data(masks=masks)
    ds = to_tf_dataset(data, 4, pad_token_id=PAD)
    spec = ds.element_spec[0]["input_ids"]
    assert spec.shape.as_list() == [None, CHOICES, None]
    seen = []
    for features, labels in ds:
        assert sorted(features) == ["attention_mask", "input_ids", "token_type_ids"]
        assert labels.shape == (features["input_ids"].shape[0],)
        check_batch(features, labels, data)
        seen.extend(labels.numpy().tolist())
    assert seen == list(range(10))  # evaluation order, last batch kept
    assert int(ds.cardinality()) == 3


def test_training_batches_are_bucketed_by_longest_choice():
    data = choices_data(n=400, seed=1)
    ds = to_tf_dataset(data, 16, shuffle=True, seed=0, bucket=True, pad_token_id=PAD)
    plain = to_tf_dataset(data, 16, shuffle=True, seed=0)

    def padding_fraction(dataset):
        padded = real = 0
        for features, _ in dataset:
            mask = features["attention_mask"].numpy()
            padded += mask.size
            real += mask.sum()
        return 1 - real / padded

    for _epoch in range(2):
        seen = []
        for features, labels in ds:
            check_batch(features, labels, data)
            seen.extend(labels.numpy().tolist())
        assert sorted(seen) == list(range(400))  # each example once per epoch
    assert int(ds.cardinality()) == sum(1 for _ in ds)
    assert padding_fraction(ds) < padding_fraction(plain)


def test_drop_remainder_counts_full_batches():
    ds = to_tf_dataset(choices_data(), 4, drop_remainder=True)
    assert [int(labels.shape[0]) for _, labels in ds] == [4, 4]
    assert int(ds.cardinality()) == 2


def test_bad_multiple_choice_data_is_refused():
    data = choices_data()
    data["input_ids"][3] = data["input_ids"][3][:2]
    with pytest.raises(InputError, match="same number of choices"):
        to_tf_dataset(data, 4)
    per_choice = choices_data()
    per_choice["label"] = [[0, 1, 0]] * 10
    with pytest.raises(InputError, match="one label each"):
        to_tf_dataset(per_choice, 4)


def test_prepare_tf_dataset_arguments_are_accepted(tokenizer):
    texts = ["a fine film", "dull", "a delight", "a mess", "fine", "so so", "ok"]
    data = {**tokenizer(texts), "label": [1, 0, 1, 0, 1, 0, 1]}
    # v4's order: (dataset, batch_size, shuffle, tokenizer, collate_fn,
    # collate_fn_args, drop_remainder, prefetch).
    positional = to_tf_dataset(data, 3, False, tokenizer, None, None, None, False)
    keywords = to_tf_dataset(
        data, batch_size=3, shuffle=False, tokenizer=tokenizer, drop_remainder=None
    )
    for ds in (positional, keywords):
        labels = [label for _, batch in ds for label in batch.numpy().tolist()]
        assert labels == data["label"]
    # batch_size defaults to 8, as in prepare_tf_dataset.
    assert [int(labels.shape[0]) for _, labels in to_tf_dataset(data)] == [7]
    with pytest.raises(ConfigError, match="collate_fn"):
        to_tf_dataset(data, collate_fn=lambda rows: rows)
    with pytest.raises(ConfigError, match="batch_size"):
        to_tf_dataset(data, 0)


def test_tokenizer_gives_the_pad_id(tokenizer):
    class OtherPad:
        pad_token_id = PAD

    data = {"input_ids": [[101, 5, 102], [101, 102]]}
    features = next(iter(to_tf_dataset(data, 2, tokenizer=OtherPad())))
    assert features["input_ids"].numpy()[1].tolist() == [101, 102, PAD]
    features = next(iter(to_tf_dataset(data, 2, tokenizer=tokenizer)))
    assert features["input_ids"].numpy()[1, 2] == tokenizer.pad_token_id
    # The same id twice is fine; two different ones are a mistake.
    to_tf_dataset(data, 2, tokenizer=OtherPad(), pad_token_id=PAD)
    with pytest.raises(ConfigError, match="pad_token_id"):
        to_tf_dataset(data, 2, tokenizer=OtherPad(), pad_token_id=0)


def test_sequence_calls_of_the_tasks_still_work():
    """The keyword-only calls of tasks/glue.py and tasks/squad.py."""
    rng = np.random.default_rng(0)
    ids = [rng.integers(1, 99, size=k).tolist() for k in (3, 9, 5, 12, 7, 4, 11)]
    data = {
        "input_ids": ids,
        "start_positions": [1] * 7,
        "end_positions": [2] * 7,
        "label": list(range(7)),
    }
    train = to_tf_dataset(data, 2, shuffle=True, seed=0, pad_token_id=PAD)
    assert sorted(label for _, b in train for label in b.numpy().tolist()) == list(
        range(7)
    )
    squad = to_tf_dataset(
        data, 4, label_column=["start_positions", "end_positions"], pad_token_id=PAD
    )
    features, labels = next(iter(squad))
    assert sorted(labels) == ["end_positions", "start_positions"]
    assert features["input_ids"].numpy()[0].tolist() == ids[0] + [PAD] * 9
    predict = to_tf_dataset(data, 4, label_column=None)
    assert isinstance(next(iter(predict)), dict)


def swag_dataset(tokenizer):
    """SWAG-style rows tokenized as in transformers' multiple-choice guide."""
    import datasets

    raw = datasets.Dataset.from_dict(
        {
            "sent1": [
                "He opens the door.",
                "The cat sat down.",
                "She picks up the phone.",
                "Rain starts to fall.",
                "The car stops.",
            ],
            "endings": [
                ["and walks in.", "and sings loudly to the moon.", "and sleeps."],
                ["on the mat.", "and purrs.", "then it runs off into the garden."],
                ["and calls her friend back.", "and eats it.", "and waits."],
                ["so we go inside.", "upwards.", "and the streets get wet and dark."],
                ["at the light.", "and flies.", "and the driver gets out slowly."],
            ],
            "label": [0, 1, 0, 2, 0],
        }
    )

    def preprocess(batch):
        first = [sentence for sentence in batch["sent1"] for _ in range(CHOICES)]
        second = [ending for endings in batch["endings"] for ending in endings]
        flat = tokenizer(first, second, truncation=True)
        return {
            name: [values[i : i + CHOICES] for i in range(0, len(values), CHOICES)]
            for name, values in flat.items()
        }

    return raw.map(preprocess, batched=True, remove_columns=["sent1", "endings"])


def test_prepare_tf_dataset_feeds_a_multiple_choice_model(tokenizer):
    encoded = swag_dataset(tokenizer)
    config = tiny_config("BertForMultipleChoice", vocab_size=tokenizer.vocab_size)
    model = bk.BertForMultipleChoice(config)
    ds = model.prepare_tf_dataset(encoded, batch_size=2, shuffle=False)
    features, labels = next(iter(ds))
    assert sorted(features) == ["attention_mask", "input_ids", "token_type_ids"]
    assert features["input_ids"].shape[:2] == (2, CHOICES)
    assert labels.numpy().tolist() == [0, 1]

    # A padded batch gives each example the logits it has alone: padding ids,
    # masks and token types are what the model ignores.
    logits = model.predict(ds, verbose=0)["logits"]
    assert logits.shape == (5, CHOICES)
    for row in range(5):
        longest = max(len(s) for s in encoded[row]["input_ids"])
        alone = {
            name: np.array(
                [[s + [0] * (longest - len(s)) for s in encoded[row][name]]],
                np.int32,
            )
            for name in ("input_ids", "token_type_ids", "attention_mask")
        }
        np.testing.assert_allclose(logits[row], model(alone)["logits"][0], atol=1e-5)

    model.compile()
    train = model.prepare_tf_dataset(encoded, batch_size=2, shuffle=True)
    history = model.fit(train, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(model.optimizer.iterations) == 3
