"""Input pipelines: tokenized Hugging Face datasets -> `tf.data` batches.

Batches are padded to their own longest sequence (dynamic padding), not to a
fixed maximum, and training batches are drawn from length buckets so that
sequences of similar length share a batch: on BERT, where attention cost
grows with the square of the length, this is most of the speed of a CPU run.
"""

import numpy as np
import tensorflow as tf

from bert_keras.training.losses import IGNORE_INDEX

SEQUENCE_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
# Token-level label columns are padded with the ignore index, not 0.
_PAD_VALUES = {"input_ids": 0, "attention_mask": 0, "token_type_ids": 0}


def to_tf_dataset(
    dataset,
    batch_size,
    *,
    label_column="label",
    shuffle=False,
    seed=None,
    bucket=None,
    num_buckets=8,
    pad_token_id=0,
    label_pad_value=IGNORE_INDEX,
    drop_remainder=False,
):
    """Turns a tokenized dataset into a `tf.data.Dataset` of padded batches.

    Args:
        dataset: a `datasets.Dataset` (or a dict of equal-length lists) with
            `input_ids` and optionally `attention_mask`, `token_type_ids` and
            the label column.
        batch_size: int, examples per batch.
        label_column: str, list of str, or None. Scalar labels become a
            (batch,) tensor; a list of columns gives a dict of them (e.g.
            `["start_positions", "end_positions"]` for question answering);
            per-token labels are padded with `label_pad_value`. None or a
            missing column yields features only (for `predict`).
        shuffle: bool, reshuffle every epoch (seeded by `seed`).
        seed: int or None, shuffling seed.
        bucket: bool, group similar lengths into batches. Defaults to
            `shuffle` (training); evaluation keeps the dataset's order.
        num_buckets: int, number of length buckets (boundaries at length
            quantiles).
        pad_token_id: int, padding id for `input_ids`.
        label_pad_value: int, padding for per-token labels (-100 = ignored).
        drop_remainder: bool, drop a last incomplete batch. Evaluation must
            keep it, so the default is False.

    Returns:
        `tf.data.Dataset` yielding `(features, labels)` or `features`; every
        batch is padded only to its longest example.

    Example:

    >>> import datasets
    >>> raw = datasets.Dataset.from_dict(
    ...     {"sentence": ["A great film.", "A dull one."], "label": [1, 0]})
    >>> encoded = raw.map(lambda b: tokenizer(b["sentence"]), batched=True)
    >>> train_ds = to_tf_dataset(encoded, 32, shuffle=True, seed=0)
    >>> model = BertForSequenceClassification.from_pretrained(path, num_labels=2)
    >>> model.compile()
    >>> history = model.fit(train_ds, epochs=3, verbose=0)
    """
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be positive. Received: {batch_size}")
    columns = _columns(dataset)
    if "input_ids" not in columns:
        raise ValueError(
            "The dataset has no `input_ids` column: tokenize it first, e.g. "
            "`dataset.map(lambda b: tokenizer(b['text']), batched=True)`. "
            f"Received: columns={sorted(columns)}"
        )
    lengths = np.fromiter((len(ids) for ids in columns["input_ids"]), dtype=np.int64)
    if len(lengths) == 0:
        raise ValueError("The dataset is empty. Received: 0 examples")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    sequences = {
        name: _flat(columns[name], lengths)
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
            raise ValueError(
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
        token_labels = len(labels) > 0 and isinstance(
            labels[0], (list, tuple, np.ndarray)
        )
        if token_labels:
            label_values = tf.constant(_flat(labels, lengths))
        else:
            label_values = tf.constant(np.asarray(labels))
    sequences = {name: tf.constant(values) for name, values in sequences.items()}
    starts = tf.constant(offsets[:-1])
    ends = tf.constant(offsets[1:])

    # Examples are slices of flat value arrays: cheap to build for 100k rows.
    def example(index):
        start, end = starts[index], ends[index]
        features = {name: values[start:end] for name, values in sequences.items()}
        if "attention_mask" not in features:
            features["attention_mask"] = tf.ones([end - start], tf.int32)
        if not has_labels:
            return features
        if label_names is not None:
            return features, {name: label_values[name][index] for name in label_names}
        if token_labels:
            return features, label_values[start:end]
        return features, label_values[index]

    pad_values = {**_PAD_VALUES, "input_ids": pad_token_id}
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
    if bucket is None:
        bucket = shuffle
    boundaries = _bucket_boundaries(lengths, num_buckets) if bucket else []
    if boundaries:

        def length(*element):
            return tf.shape(element[0]["input_ids"])[0]

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
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def count_batches(lengths, batch_size, boundaries=(), drop_remainder=False):
    """Number of batches `to_tf_dataset` yields per epoch for these lengths."""
    lengths = np.asarray(lengths)
    bucket_ids = np.searchsorted(np.asarray(boundaries), lengths, side="right")
    counts = np.bincount(bucket_ids, minlength=len(boundaries) + 1)
    if drop_remainder:
        return int((counts // batch_size).sum())
    return int(((counts + batch_size - 1) // batch_size).sum())


def _columns(dataset):
    if isinstance(dataset, dict):
        return dataset
    return {name: dataset[name] for name in dataset.column_names}


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
