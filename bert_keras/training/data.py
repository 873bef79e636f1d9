"""Input pipelines: tokenized Hugging Face datasets -> `tf.data` batches.

Batches are padded to their own longest sequence (dynamic padding), not to a
fixed maximum. By default a shuffled epoch is cut into consecutive batches, as
a PyTorch `DataLoader(shuffle=True)` does; `bucket=True` draws batches from
length buckets instead, so that sequences of similar length share a batch:
less padding, faster on a CPU, but other batches than transformers trains on
(docs/fidelity.md). Multiple-choice examples (`num_choices` sequences each)
are padded to the longest choice of their batch and bucketed by their longest
choice.
"""

import numpy as np
import tensorflow as tf

from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.training.losses import IGNORE_INDEX

SEQUENCE_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
# Token-level label columns are padded with the ignore index, not 0.
_PAD_VALUES = {"input_ids": 0, "attention_mask": 0, "token_type_ids": 0}


def to_tf_dataset(
    dataset,
    batch_size=8,
    shuffle=False,
    tokenizer=None,
    collate_fn=None,
    collate_fn_args=None,
    drop_remainder=False,
    prefetch=True,
    *,
    label_column="label",
    seed=None,
    bucket=False,
    num_buckets=8,
    pad_token_id=None,
    label_pad_value=IGNORE_INDEX,
):
    """Turns a tokenized dataset into a `tf.data.Dataset` of padded batches.

    The arguments up to `prefetch` are those of transformers v4's
    `prepare_tf_dataset`, in its order, so a call to one works on the other
    (but `shuffle` defaults to False here: evaluation keeps its order).

    Args:
        dataset: a `datasets.Dataset` (or a dict of equal-length lists) with
            `input_ids` and optionally `attention_mask`, `token_type_ids` and
            the label column. An example's `input_ids` is a list of ids, or
            for multiple choice a list of `num_choices` lists of ids (what a
            tokenizer gives for SWAG-style data once regrouped per example).
        batch_size: int, examples per batch (default 8).
        shuffle: bool, reshuffle every epoch (seeded by `seed`).
        tokenizer: optional transformers tokenizer; its `pad_token_id` pads
            `input_ids` unless `pad_token_id` is given.
        collate_fn, collate_fn_args: must be None: batches are padded to
            their longest example here (what v4's default collator did).
        drop_remainder: bool or None (False), drop a last incomplete batch.
            Evaluation must keep it, so the default is False.
        prefetch: bool, prefetch batches while the model runs.
        label_column: str, list of str, or None. Scalar labels become a
            (batch,) tensor; a list of columns gives a dict of them (e.g.
            `["start_positions", "end_positions"]` for question answering);
            per-token labels are padded with `label_pad_value`. None or a
            missing column yields features only (for `predict`).
        seed: int or None, shuffling seed.
        bucket: bool (False), group similar lengths into batches (multiple
            choice: by each example's longest choice); each bucket ends an
            epoch with its own partial batch. Faster on a CPU, but the
            batches differ from transformers' (`--group-by-length` in the
            task CLIs).
        num_buckets: int, number of length buckets (boundaries at length
            quantiles).
        pad_token_id: int or None, padding id for `input_ids`; None takes the
            tokenizer's, or 0 without a tokenizer.
        label_pad_value: int, padding for per-token labels (-100 = ignored).

    Returns:
        `tf.data.Dataset` yielding `(features, labels)` or `features`; every
        batch is padded only to its longest example. Features are int32,
        (batch, seq), or (batch, choices, seq) for multiple choice, whose
        labels are (batch,).

    Raises:
        InputError: no `input_ids`, no examples, a label column missing, or
            multiple-choice examples with differing numbers of choices.
        ConfigError: a bad `batch_size`, a `collate_fn`, or a `pad_token_id`
            that contradicts the tokenizer's.

    Example:

    >>> import datasets
    >>> raw = datasets.Dataset.from_dict(
    ...     {"sentence": ["A great film.", "A dull one."], "label": [1, 0]})
    >>> encoded = raw.map(lambda b: tokenizer(b["sentence"]), batched=True)
    >>> train_ds = to_tf_dataset(encoded, 32, shuffle=True, seed=0)
    >>> model = BertForSequenceClassification.from_pretrained(path, num_labels=2)
    >>> model.compile()
    >>> history = model.fit(train_ds, epochs=3, verbose=0)

    Multiple choice: each example holds one sequence per choice.

    >>> swag = {"sent1": ["He opens the door."], "label": [1],
    ...         "ending": [["and sings.", "and walks in.", "and sleeps."]]}
    >>> flat = tokenizer([s for s in swag["sent1"] for _ in range(3)],
    ...                  [e for endings in swag["ending"] for e in endings])
    >>> per_example = {name: [values[i:i + 3] for i in range(0, len(values), 3)]
    ...                for name, values in flat.items()}
    >>> choices_ds = to_tf_dataset({**per_example, "label": swag["label"]})
    >>> features, labels = next(iter(choices_ds))
    >>> features["input_ids"].shape, labels.shape
    (TensorShape([1, 3, 12]), TensorShape([1]))
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size <= 0
    ):
        raise ConfigError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    if collate_fn is not None or collate_fn_args is not None:
        raise ConfigError(
            "bert_keras pads each batch to its longest example itself; a "
            "collate_fn is not used. Drop it (or build the tf.data pipeline "
            f"yourself). Received: collate_fn={collate_fn!r}, "
            f"collate_fn_args={collate_fn_args!r}"
        )
    pad_token_id = _pad_token_id(pad_token_id, tokenizer)
    columns = _columns(dataset)
    if "input_ids" not in columns:
        raise InputError(
            "The dataset has no `input_ids` column: tokenize it first, e.g. "
            "`dataset.map(lambda b: tokenizer(b['text']), batched=True)`. "
            f"Received: columns={sorted(columns)}"
        )
    if len(columns["input_ids"]) == 0:
        raise InputError("The dataset is empty. Received: 0 examples")
    # Flat list-of-int columns straight from Arrow: no Python loop per row.
    arrow = _arrow_sequences(dataset)
    choices = None if "input_ids" in arrow else _num_choices(columns["input_ids"])
    # One row per sequence: per example, or per choice of each example.
    if "input_ids" in arrow:
        row_lengths = arrow["input_ids"][1]
    else:
        row_lengths = np.fromiter(
            (len(ids) for ids in _rows(columns["input_ids"], choices)), dtype=np.int64
        )
    # What batches are bucketed and counted by: multiple choice by the
    # longest choice, which is what a batch is padded to.
    if choices is None:
        lengths = row_lengths
    else:
        lengths = row_lengths.reshape(-1, choices).max(axis=1)
    offsets = np.concatenate([[0], np.cumsum(row_lengths)])
    sequences = {
        name: _arrow_values(arrow, name, row_lengths)
        if name in arrow
        else _flat(_rows(columns[name], choices), row_lengths)
        for name in SEQUENCE_COLUMNS
        if name in columns
    }
    # Several label columns (e.g. QA's start_positions / end_positions) give a
    # dict of scalar labels keyed by column name.
    label_names = (
        tuple(label_column) if isinstance(label_column, (list, tuple)) else None
    )
    if label_names is not None:
        missing = [name for name in label_names if name not in columns]
        if missing:
            raise InputError(
                f"Label columns {missing} are not in the dataset. Received: "
                f"columns={sorted(columns)}"
            )
    has_labels = label_names is not None or (
        label_column is not None and label_column in columns
    )
    token_labels = False
    if label_names is not None:
        label_values = {
            name: tf.constant(np.asarray(columns[name])) for name in label_names
        }
    elif has_labels:
        labels = columns[label_column]
        token_labels = isinstance(labels[0], (list, tuple, np.ndarray))
        if token_labels and choices is not None:
            raise InputError(
                "Multiple-choice examples take one label each (the index of "
                f"the right choice), but column {label_column!r} holds lists. "
                "Give one int per example. Received: "
                f"{label_column}[0]={list(labels[0])!r}"
            )
        if token_labels and label_column in arrow:
            label_values = tf.constant(_arrow_values(arrow, label_column, row_lengths))
        elif token_labels:
            label_values = tf.constant(_flat(labels, row_lengths))
        else:
            label_values = tf.constant(np.asarray(labels))
    sequences = {name: tf.constant(values) for name, values in sequences.items()}
    offsets = tf.constant(offsets)
    row_lengths_tensor = tf.constant(row_lengths)
    pad_values = {**_PAD_VALUES, "input_ids": pad_token_id}

    # Examples are slices of flat value arrays: cheap to build for 100k rows.
    def example(index):
        if choices is None:
            start, end = offsets[index], offsets[index + 1]
            features = {name: values[start:end] for name, values in sequences.items()}
            if "attention_mask" not in features:
                features["attention_mask"] = tf.ones([end - start], tf.int32)
        else:
            features = _choices_example(
                index, choices, sequences, offsets, row_lengths_tensor, pad_values
            )
        if not has_labels:
            return features
        if label_names is not None:
            return features, {name: label_values[name][index] for name in label_names}
        if token_labels:
            return features, label_values[offsets[index] : offsets[index + 1]]
        return features, label_values[index]

    padding = {
        name: tf.constant(pad_values[name], tf.int32)
        for name in list(sequences) + ["attention_mask"]
    }
    if label_names is not None:
        padding = (
            padding,
            {name: tf.constant(0, label_values[name].dtype) for name in label_names},
        )
    elif has_labels:
        label_padding = (
            tf.constant(label_pad_value, tf.int32)
            if token_labels
            else tf.constant(0, label_values.dtype)
        )
        padding = (padding, label_padding)
    ds = tf.data.Dataset.range(len(lengths))
    if shuffle:
        ds = ds.shuffle(len(lengths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    drop_remainder = bool(drop_remainder)
    boundaries = _bucket_boundaries(lengths, num_buckets) if bucket else []
    if boundaries:

        def length(*element):
            # The sequence axis is the last: (seq,) or (choices, seq).
            return tf.shape(element[0]["input_ids"])[-1]

        ds = ds.bucket_by_sequence_length(
            length,
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padding_values=padding,
            pad_to_bucket_boundary=False,
            drop_remainder=drop_remainder,
        )
    else:
        ds = ds.padded_batch(
            batch_size, padding_values=padding, drop_remainder=drop_remainder
        )
    # A known length gives Keras a progress bar with an ETA and lets callers
    # size a learning-rate schedule.
    num_batches = count_batches(lengths, batch_size, boundaries, drop_remainder)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    # No autotuning thread: destroying an iterator (every epoch) can wait out
    # its whole period (docs/performance.md); this pipeline needs no tuning.
    options = tf.data.Options()
    options.autotune.enabled = False
    # Across workers each global batch is split between them: the data is in
    # memory, so there are no files to shard (docs/distributed.md).
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds.with_options(options)


def count_batches(lengths, batch_size, boundaries=(), drop_remainder=False):
    """Number of batches `to_tf_dataset` yields per epoch for these lengths."""
    lengths = np.asarray(lengths)
    bucket_ids = np.searchsorted(np.asarray(boundaries), lengths, side="right")
    counts = np.bincount(bucket_ids, minlength=len(boundaries) + 1)
    if drop_remainder:
        return int((counts // batch_size).sum())
    return int(((counts + batch_size - 1) // batch_size).sum())


def _choices_example(index, choices, sequences, offsets, row_lengths, pad_values):
    """Example `index` of a multiple-choice dataset: (choices, seq) tensors.

    Each choice is padded to the example's longest; `padded_batch` then pads
    to the batch's longest.
    """
    first = index * choices
    start, end = offsets[first], offsets[first + choices]
    lengths = row_lengths[first : first + choices]
    features = {}
    for name, values in sequences.items():
        ragged = tf.RaggedTensor.from_row_lengths(values[start:end], lengths)
        features[name] = ragged.to_tensor(pad_values[name])
    if "attention_mask" not in features:
        features["attention_mask"] = tf.sequence_mask(
            lengths, tf.reduce_max(lengths), dtype=tf.int32
        )
    for tensor in features.values():
        tensor.set_shape([choices, None])
    return features


def _pad_token_id(pad_token_id, tokenizer):
    tokenizer_pad = getattr(tokenizer, "pad_token_id", None)
    if pad_token_id is None:
        return 0 if tokenizer_pad is None else int(tokenizer_pad)
    if tokenizer_pad is not None and tokenizer_pad != pad_token_id:
        raise ConfigError(
            f"`pad_token_id` ({pad_token_id}) differs from the tokenizer's "
            f"pad_token_id ({tokenizer_pad}); padding with the wrong id feeds "
            "the model tokens it never saw as padding. Pass one of them. "
            f"Received: pad_token_id={pad_token_id}, tokenizer.pad_token_id="
            f"{tokenizer_pad}"
        )
    return int(pad_token_id)


def _num_choices(input_ids):
    """None for (seq,) examples, else the choices per (choices, seq) example."""
    first = input_ids[0]
    if len(first) == 0 or not isinstance(first[0], (list, tuple, np.ndarray)):
        return None
    counts = np.fromiter((len(example) for example in input_ids), dtype=np.int64)
    if (counts != counts[0]).any():
        row = int(np.argmax(counts != counts[0]))
        raise InputError(
            "Multiple-choice examples must all have the same number of choices "
            "(the model takes (batch, choices, seq)). Example 0 has "
            f"{counts[0]}, example {row} has {counts[row]}: give every example "
            f"the same choices count. Received: choices={sorted(set(counts.tolist()))}"
        )
    return int(counts[0])


def _rows(column, choices):
    """A column's sequences: its examples, or their choices one after another."""
    if choices is None:
        return column
    return (sequence for example in column for sequence in example)


def _columns(dataset):
    if isinstance(dataset, dict):
        return dataset
    return {name: dataset[name] for name in dataset.column_names}


def _arrow_sequences(dataset):
    """`{column: (flat int32 values, row lengths)}` of a `datasets.Dataset`'s
    list-of-int columns without nulls, read from its Arrow table at once."""
    if not hasattr(dataset, "with_format") or not hasattr(dataset, "column_names"):
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc

    table = dataset.with_format("arrow")[:]  # the rows in the dataset's order
    found = {}
    for name in table.column_names:
        column = table.column(name)
        kind = column.type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
            continue
        if not pa.types.is_integer(kind.value_type) or column.null_count:
            continue
        column = column.combine_chunks()
        lengths = pc.list_value_length(column).to_numpy().astype(np.int64)
        values = column.flatten().to_numpy().astype(np.int32)
        found[name] = (values, lengths)
    return found


def _arrow_values(arrow, name, row_lengths):
    values, lengths = arrow[name]
    if not np.array_equal(lengths, row_lengths):
        row = int(np.argmax(lengths != row_lengths))
        raise InputError(
            f"Column `{name}` must have one value per token of `input_ids`. "
            f"Row {row} has {lengths[row]} values for {row_lengths[row]} tokens: "
            "tokenize every column in the same call."
        )
    return values


def _flat(rows, lengths):
    return np.fromiter(
        (value for row in rows for value in row), dtype=np.int32, count=lengths.sum()
    )


def _bucket_boundaries(lengths, num_buckets):
    """Bucket edges at length quantiles, so buckets hold similar counts."""
    if num_buckets <= 1:
        return []
    quantiles = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
    # bucket_by_sequence_length puts length < boundary in the lower bucket.
    return sorted({int(q) + 1 for q in quantiles if int(q) + 1 <= lengths.max()})
