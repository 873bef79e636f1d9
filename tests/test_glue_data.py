"""GLUE task table and loader on a tiny fixture in the official file layout."""

import numpy as np
import pytest

from bert_keras.errors import InputError
from bert_keras.training.data import count_batches
from bert_keras.training.data import to_tf_dataset
from tasks.glue_tasks import TASKS
from tasks.glue_tasks import get_task
from tasks.glue_tasks import load_glue

# One row per line, in each task's own column layout. A `"` opening a field
# must not start a quoted field that swallows the following rows.
ROWS = {
    "CoLA": (
        None,
        [
            "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.",
            'gj04\t0\t*\t"The more you eat, the less you want.',
            "gj04\t1\t\tHe left.",
        ],
    ),
    "SST-2": ("sentence\tlabel", ["a gripping film \t1", '" dull \t0', "fine \t1"]),
    "MRPC": (
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        [
            '1\t1\t2\t" the witness " said .\tThe witness said .',
            "0\t3\t4\tA cat .\tA dog .",
        ],
    ),
    "STS-B": (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\t"
        "sentence1\tsentence2\tscore",
        [
            "0\tg\tf\t2012\t0\tn\tn\tA man.\tA person.\t4.500",
            '1\tg\tf\t2012\t1\tn\tn\t"A dog.\tA cat.\t0.250',
        ],
    ),
    "QQP": (
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        [
            "0\t1\t2\tWhy?\tHow?\t0",
            "1\t3\t4\tWho?\tWho is it?\t1",
            "2\t5\t6\tbroken row without a label",
        ],
    ),
    "MNLI": (
        "index\tpromptID\tpairID\tgenre\tb1\tb2\tp1\tp2\tsentence1\tsentence2"
        "\tlabel1\tgold_label",
        [
            "0\t1\t1\tg\tb\tb\tp\tp\tA man sleeps.\tA man rests.\tentailment\t"
            "entailment",
            "1\t2\t2\tg\tb\tb\tp\tp\tIt rains.\tIt is dry.\tcontradiction\t"
            "contradiction",
            "2\t3\t3\tg\tb\tb\tp\tp\tA bird.\tAn animal.\tneutral\tneutral",
        ],
    ),
    "QNLI": (
        "index\tquestion\tsentence\tlabel",
        ["0\tWho?\tHim.\tentailment", "1\tWhy?\tNo idea.\tnot_entailment"],
    ),
    "RTE": (
        "index\tsentence1\tsentence2\tlabel",
        ["0\tA is B.\tB is A.\tentailment", "1\tA.\tB.\tnot_entailment"],
    ),
    "WNLI": (
        "index\tsentence1\tsentence2\tlabel",
        ["0\tThe cup fell.\tIt fell.\t1", "1\tHe ran.\tShe ran.\t0"],
    ),
}


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue")
    for directory, (header, rows) in ROWS.items():
        folder = root / directory
        folder.mkdir()
        splits = (
            ("train", "dev_matched", "dev_mismatched")
            if directory == "MNLI"
            else ("train", "dev")
        )
        for split in splits:
            lines = ([header] if header else []) + rows
            (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", "utf-8")
    return root


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_loads_from_glue_layout(glue_dir, name):
    task = TASKS[name]
    splits, stats = load_glue(task, str(glue_dir), ("train",) + task.dev_splits)
    header, rows = ROWS[task.directory]
    malformed = 1 if name == "qqp" else 0
    for split in ("train",) + task.dev_splits:
        assert stats[split]["lines"] == len(rows)
        assert stats[split]["malformed_rows"] == malformed
        assert len(splits[split]) == len(rows) - malformed
    first = splits["train"][0]
    assert first["sentence1"]
    assert ("sentence2" in first) == task.is_pair
    if task.is_regression:
        assert first["label"] == pytest.approx(4.5)
    else:
        labels = splits["train"]["label"]
        assert all(0 <= label < task.num_labels for label in labels)


def test_quote_at_field_start_does_not_merge_rows(glue_dir):
    splits, _ = load_glue(get_task("sst2"), str(glue_dir), ("train",))
    assert splits["train"]["sentence1"][1] == '" dull '
    assert splits["train"]["label"] == [1, 0, 1]


def test_cola_has_no_header_and_mnli_has_two_dev_sets(glue_dir):
    cola, _ = load_glue(get_task("CoLA"), str(glue_dir), ("train",))
    assert cola["train"]["sentence1"][0].startswith("The sailors")
    mnli = get_task("mnli")
    assert mnli.dev_splits == ("dev_matched", "dev_mismatched")
    splits, _ = load_glue(mnli, str(glue_dir), mnli.dev_splits)
    assert splits["dev_matched"]["label"] == [0, 2, 1]


def test_unknown_task_and_missing_files_are_clear(tmp_path, glue_dir):
    with pytest.raises(ValueError, match="Unknown GLUE task.*'sst3'"):
        get_task("sst3")
    with pytest.raises(FileNotFoundError, match=r"SST-2.*train\.tsv"):
        load_glue(get_task("sst2"), str(tmp_path), ("train",))


def test_label_outside_label_set_is_an_error(tmp_path):
    folder = tmp_path / "RTE"
    folder.mkdir()
    (folder / "train.tsv").write_text(
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n", "utf-8"
    )
    with pytest.raises(ValueError, match="line 2.*label set.*'maybe'"):
        load_glue(get_task("rte"), str(tmp_path), ("train",))


def _lengths_dataset(n=203, seed=0):
    rs = np.random.RandomState(seed)
    ids = [list(rs.randint(1, 99, rs.randint(2, 60))) for _ in range(n)]
    return {"input_ids": ids, "label": list(range(n))}, ids


@pytest.mark.parametrize("batch_size", [1, 8, 32])
def test_bucketing_pads_each_batch_to_its_own_longest(batch_size):
    data, ids = _lengths_dataset()
    ds = to_tf_dataset(data, batch_size, shuffle=True, seed=3, bucket=True)
    for _epoch in range(2):
        seen = []
        for features, labels in ds:
            mask = features["attention_mask"].numpy()
            assert mask.sum(1).max() == mask.shape[1]  # no padding past longest
            for row, row_mask, label in zip(
                features["input_ids"].numpy(), mask, labels.numpy()
            ):
                assert row[: row_mask.sum()].tolist() == ids[label]
            seen.extend(labels.numpy().tolist())
        assert sorted(seen) == list(range(len(ids)))  # each example exactly once
    assert int(ds.cardinality()) == sum(1 for _ in ds)
    # No autotuning thread, which can hold up the end of an epoch by ~30 s.
    assert ds.options().autotune.enabled is False


def test_bucketing_groups_similar_lengths():
    data, _ = _lengths_dataset(2000)
    bucketed = to_tf_dataset(data, 32, shuffle=True, seed=0, bucket=True)
    plain = to_tf_dataset(data, 32, shuffle=True, seed=0)

    def padding_fraction(ds):
        padded = real = 0
        for features, _ in ds:
            mask = features["attention_mask"].numpy()
            padded += mask.size
            real += mask.sum()
        return 1 - real / padded

    assert padding_fraction(bucketed) < padding_fraction(plain) / 2


def test_training_batches_are_a_shuffled_epoch_cut_in_order():
    """The default is transformers' batching: a fresh permutation each epoch,
    cut into full batches and one last partial batch, lengths mixed."""
    data, ids = _lengths_dataset(203)
    ds = to_tf_dataset(data, 32, shuffle=True, seed=5)
    epochs = []
    for _epoch in range(2):
        sizes, order = [], []
        for features, labels in ds:
            sizes.append(int(labels.shape[0]))
            order.extend(labels.numpy().tolist())
            mask = features["attention_mask"].numpy()
            assert mask.sum(1).max() == mask.shape[1]
        assert sizes == [32] * 6 + [11]
        assert sorted(order) == list(range(203))
        epochs.append(order)
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    assert epochs[0] != list(range(203))
    # Not grouped by length: the first batch spans short and long examples.
    first = [len(ids[i]) for i in epochs[0][:32]]
    assert max(first) - min(first) > 30


def test_evaluation_keeps_order_and_remainder():
    data, _ = _lengths_dataset(45)
    ds = to_tf_dataset(data, 8)
    labels = [label for _, batch in ds for label in batch.numpy().tolist()]
    assert labels == list(range(45))
    assert count_batches([3] * 45, 8) == 6


def _batches(ds):
    return [
        (
            {key: value.numpy().tolist() for key, value in features.items()},
            labels.numpy().tolist(),
        )
        for features, labels in ds
    ]


def test_arrow_columns_give_the_same_batches_as_python_lists():
    import datasets

    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 30, size=200)
    rows = {
        "input_ids": [rng.integers(1, 99, n).tolist() for n in lengths],
        "token_type_ids": [[0] * (n // 2) + [1] * (n - n // 2) for n in lengths],
        "attention_mask": [[1] * n for n in lengths],
        "labels": [rng.integers(-100, 5, n).tolist() for n in lengths],
    }
    # Shuffled and selected: the Arrow read must follow the indices mapping.
    dataset = datasets.Dataset.from_dict(rows).shuffle(seed=1).select(range(150))
    as_lists = {name: dataset[name] for name in dataset.column_names}
    for options in ({"shuffle": True, "seed": 4}, {"shuffle": False}):
        fast = to_tf_dataset(dataset, 16, label_column="labels", **options)
        slow = to_tf_dataset(as_lists, 16, label_column="labels", **options)
        assert _batches(fast) == _batches(slow)


def test_arrow_columns_of_other_lengths_are_refused():
    import datasets

    dataset = datasets.Dataset.from_dict(
        {"input_ids": [[1, 2, 3], [4, 5]], "attention_mask": [[1, 1, 1], [1, 1, 1]]}
    )
    with pytest.raises(InputError, match="Row 1 has 3 values for 2 tokens"):
        to_tf_dataset(dataset, 2)


def test_encoding_fingerprint_follows_what_decides_the_encoding(tokenizer):
    """The fingerprint `tokenize` hands to `datasets.map` (instead of pickling
    the tokenizer) changes with the input, the tokenizer and the settings."""
    import datasets

    from tasks.cli import encoding_fingerprint
    from tasks.glue import tokenize

    task = get_task("sst2")
    rows = {"sentence1": ["a good film", "a bad film"], "label": [1, 0]}
    data = datasets.Dataset.from_dict(rows)
    other = datasets.Dataset.from_dict({**rows, "sentence1": ["good", "bad"]})
    base = encoding_fingerprint(data, tokenizer, "v", 128)
    assert base == encoding_fingerprint(data, tokenizer, "v", 128)
    assert base != encoding_fingerprint(other, tokenizer, "v", 128)
    assert base != encoding_fingerprint(data, tokenizer, "v", 64)
    truncating_left = tokenizer.__class__.from_pretrained(
        tokenizer.name_or_path, truncation_side="left"
    )
    assert base != encoding_fingerprint(data, truncating_left, "v", 128)
    encoded = tokenize(data, tokenizer, task, 128)
    assert encoded._fingerprint == encoding_fingerprint(
        data, tokenizer, "glue-encode-1", False, 128
    )
    assert encoded["input_ids"] == tokenizer(rows["sentence1"])["input_ids"]
    assert tokenize(data, tokenizer, task, 3)["input_ids"] == [
        ids[:2] + ids[-1:] for ids in encoded["input_ids"]
    ]
