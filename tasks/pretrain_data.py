"""Pretraining data: corpus -> documents of sentences -> NSP sentence pairs.

The corpus format is BERT's: one sentence per line, a blank line between
documents. WikiText's own layout (` = Title = ` article lines, ` = = Section
= = ` headings, one paragraph per line) converts to it with
`wikitext_to_documents`. Instances follow the BERT paper's recipe: segments
filled with consecutive sentences up to the target length, the second segment
the true continuation half of the time and a random other document's text
otherwise, the longer side truncated. They are written as sharded TFRecord
files so several workers can read disjoint shards.
"""

import glob
import os
import random
import re

import numpy as np
import tensorflow as tf

_ARTICLE = re.compile(r"^ = [^=].* = $")
_HEADING = re.compile(r"^ (= ){2,}.* (= ?){2,}$")
# WikiText is space-tokenized: a sentence ends with " . ", " ! " or " ? "
# followed by a capital letter, a digit or an opening quote.
_SENTENCE_END = re.compile(r"(?<= [.!?]) (?=[A-Z0-9\"'(])")


def wikitext_to_documents(lines):
    """Splits WikiText lines into documents (articles) of sentences.

    Args:
        lines: iterable of raw WikiText lines.

    Returns:
        list of documents, each a list of sentence strings (headings dropped,
        paragraphs split into sentences, empty articles dropped).
    """
    documents, current = [], None
    for line in lines:
        line = line.rstrip("\n")
        if _ARTICLE.match(line):
            if current:
                documents.append(current)
            current = []
            continue
        if not line.strip() or _HEADING.match(line):
            continue
        if current is None:
            current = []
        current.extend(
            sentence.strip()
            for sentence in _SENTENCE_END.split(line)
            if sentence.strip()
        )
    if current:
        documents.append(current)
    return documents


def read_bert_format(paths):
    """Reads BERT-format text files: sentence per line, blank line between docs."""
    documents = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            documents.extend(bert_format_documents(handle))
    return documents


def bert_format_documents(lines):
    """Documents (lists of sentences) of BERT-format lines: blank lines part them."""
    documents, current = [], []
    for line in lines:
        line = line.strip()
        if line:
            current.append(line)
        elif current:
            documents.append(current)
            current = []
    if current:
        documents.append(current)
    return documents


def write_bert_format(documents, path):
    with open(path, "w", encoding="utf-8") as handle:
        for document in documents:
            handle.write("\n".join(document) + "\n\n")


def tokenize_documents(documents, tokenizer, batch_size=1000):
    """Token ids (no special tokens) per sentence, per document."""
    flat = [sentence for document in documents for sentence in document]
    ids = []
    for start in range(0, len(flat), batch_size):
        ids.extend(
            tokenizer(flat[start : start + batch_size], add_special_tokens=False)[
                "input_ids"
            ]
        )
    tokenized, offset = [], 0
    for document in documents:
        tokenized.append(ids[offset : offset + len(document)])
        offset += len(document)
    return tokenized


def create_instances(
    documents,
    cls_id,
    sep_id,
    max_seq_length=128,
    short_seq_prob=0.1,
    seed=12345,
    with_sources=False,
):
    """Builds NSP sentence-pair instances from tokenized documents.

    Args:
        documents: list of documents, each a list of sentences as token-id lists.
        cls_id, sep_id: special token ids.
        max_seq_length: int, length of `[CLS] A [SEP] B [SEP]` at most.
        short_seq_prob: float, share of instances with a shorter random target
            length (so the model sees short inputs too).
        seed: int.
        with_sources: also return, per instance, `(document, first sentence,
            last sentence)` of A and of B (for tests).

    Returns:
        list of dicts with `input_ids`, `token_type_ids` and
        `next_sentence_label` (0: B follows A, 1: B is random), as transformers
        labels it.
    """
    rng = random.Random(seed)
    max_tokens = max_seq_length - 3
    instances = []
    for doc_index, document in enumerate(documents):
        target = max_tokens
        if rng.random() < short_seq_prob:
            target = rng.randint(2, max_tokens)
        chunk, chunk_length, i = [], 0, 0
        while i < len(document):
            chunk.append(i)
            chunk_length += len(document[i])
            if i == len(document) - 1 or chunk_length >= target:
                if chunk:
                    random_next = rng.random() < 0.5
                    if not random_next and len(chunk) == 1:
                        # A true continuation needs a second sentence: borrow
                        # the next one, or draw a random B at a document's end
                        # (rare, so the 50/50 balance holds).
                        if i + 1 < len(document):
                            i += 1
                            chunk.append(i)
                        else:
                            random_next = True
                    a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                    a_sentences = chunk[:a_end]
                    if random_next and len(documents) > 1:
                        b_doc = doc_index
                        while b_doc == doc_index:
                            b_doc = rng.randrange(len(documents))
                        b_start = rng.randrange(len(documents[b_doc]))
                        b_sentences, b_length = [], 0
                        a_length = sum(len(document[j]) for j in a_sentences)
                        for j in range(b_start, len(documents[b_doc])):
                            b_sentences.append(j)
                            b_length += len(documents[b_doc][j])
                            if b_length >= target - a_length:
                                break
                        # The unused rest of this chunk is not wasted.
                        i -= len(chunk) - a_end
                    else:
                        random_next = False
                        b_doc, b_sentences = doc_index, chunk[a_end:]
                    tokens_a = [t for j in a_sentences for t in document[j]]
                    tokens_b = [t for j in b_sentences for t in documents[b_doc][j]]
                    _truncate_pair(tokens_a, tokens_b, max_tokens, rng)
                    if tokens_a and tokens_b:
                        instance = {
                            "input_ids": [cls_id, *tokens_a, sep_id, *tokens_b, sep_id],
                            "token_type_ids": [0] * (len(tokens_a) + 2)
                            + [1] * (len(tokens_b) + 1),
                            "next_sentence_label": int(random_next),
                        }
                        if with_sources:
                            instance["source"] = (
                                (doc_index, a_sentences[0], a_sentences[-1]),
                                (b_doc, b_sentences[0], b_sentences[-1]),
                            )
                        instances.append(instance)
                chunk, chunk_length = [], 0
                target = max_tokens
                if rng.random() < short_seq_prob:
                    target = rng.randint(2, max_tokens)
            i += 1
    rng.shuffle(instances)
    return instances


def create_mlm_instances(
    documents, cls_id, sep_id, max_seq_length=128, line_by_line=False, seed=12345
):
    """Builds masked-LM-only instances (no sentence pairs) from tokenized documents.

    Packed (the default, run_mlm's `group_texts`): each document's tokens,
    sentence after sentence, cut into `[CLS] ... [SEP]` pieces of
    `max_seq_length`; a document never runs into the next. With `seed`, the
    first piece of a document starts at a random cut, so the copies of a
    dupe factor are cut differently. `line_by_line`: each sentence (line) is
    one instance, truncated to `max_seq_length` (run_mlm's
    `--line_by_line`).

    Args:
        documents: list of documents, each a list of sentences as token-id lists.
        cls_id, sep_id: special token ids.
        max_seq_length: int, length of `[CLS] tokens [SEP]` at most.
        line_by_line: bool.
        seed: int or None (None: every document is cut from its start).

    Returns:
        list of dicts with `input_ids` and `token_type_ids` (all 0), shuffled.
    """
    rng = random.Random(seed)
    max_tokens = max_seq_length - 2
    pieces = []
    for document in documents:
        if line_by_line:
            pieces.extend(sentence[:max_tokens] for sentence in document if sentence)
            continue
        tokens = [t for sentence in document for t in sentence]
        start = rng.randrange(max_tokens) if seed is not None else 0
        if start:
            pieces.append(tokens[:start])
        pieces.extend(
            tokens[i : i + max_tokens] for i in range(start, len(tokens), max_tokens)
        )
    instances = [
        {
            "input_ids": [cls_id, *piece, sep_id],
            "token_type_ids": [0] * (len(piece) + 2),
        }
        for piece in pieces
        if piece
    ]
    rng.shuffle(instances)
    return instances


def _truncate_pair(tokens_a, tokens_b, max_tokens, rng):
    """Trims the longer side, from the front or the back at random."""
    while len(tokens_a) + len(tokens_b) > max_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def write_instances(instances, output_dir, num_shards=4, prefix="instances"):
    """Writes instances round-robin into `num_shards` TFRecord files.

    Returns:
        list of the shard paths.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = [
        os.path.join(output_dir, f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord")
        for i in range(num_shards)
    ]
    writers = [tf.io.TFRecordWriter(path + ".tmp") for path in paths]
    try:
        for index, instance in enumerate(instances):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        key: tf.train.Feature(
                            int64_list=tf.train.Int64List(value=np.atleast_1d(value))
                        )
                        for key, value in instance.items()
                        if key != "source"
                    }
                )
            )
            writers[index % num_shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    for path in paths:
        os.replace(path + ".tmp", path)
    return paths


def read_instances(pattern, num_workers=1, worker_index=0):
    """`tf.data` of instances from TFRecord shards; worker i reads shards i::n."""
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No instance shards match {pattern}")
    return instance_records(files[worker_index::num_workers])


def instance_records(files, next_sentence=True):
    """`tf.data` of the instances in `files` (paths, or a string tensor), in order.

    `(features, labels)`; labels hold `next_sentence_label` unless
    `next_sentence` is False (masked-LM-only instances have none).
    """
    spec = {
        "input_ids": tf.io.RaggedFeature(tf.int64),
        "token_type_ids": tf.io.RaggedFeature(tf.int64),
    }
    if next_sentence:
        spec["next_sentence_label"] = tf.io.FixedLenFeature([], tf.int64)

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        input_ids = tf.cast(example["input_ids"], tf.int32)
        labels = {}
        if next_sentence:
            labels["next_sentence_label"] = tf.cast(
                example["next_sentence_label"], tf.int32
            )
        return {
            "input_ids": input_ids,
            "token_type_ids": tf.cast(example["token_type_ids"], tf.int32),
            "attention_mask": tf.ones_like(input_ids),
        }, labels

    return tf.data.TFRecordDataset(files).map(
        parse, num_parallel_calls=tf.data.AUTOTUNE
    )
