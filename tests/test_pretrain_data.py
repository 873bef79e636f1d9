"""Pretraining corpus conversion, NSP instances and TFRecord shards."""

import os

import numpy as np
import pytest

from tasks.pretrain_data import create_instances
from tasks.pretrain_data import create_mlm_instances
from tasks.pretrain_data import read_bert_format
from tasks.pretrain_data import read_instances
from tasks.pretrain_data import tokenize_documents
from tasks.pretrain_data import wikitext_to_documents
from tasks.pretrain_data import write_bert_format
from tasks.pretrain_data import write_instances

WIKITEXT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "tasks", "data", "wikitext-2-raw",
)  # fmt: skip


@pytest.fixture(scope="module")
def documents():
    docs = []
    for name in ("wiki.valid.raw", "wiki.test.raw"):
        with open(os.path.join(WIKITEXT, name), encoding="utf-8") as handle:
            docs.extend(wikitext_to_documents(handle))
    return docs


def test_wikitext_conversion_articles_and_sentences():
    lines = [
        " \n", " = First = \n", " \n", " Intro sentence one . Intro two ? Yes .\n",
        " = = Section = = \n", " Body text here . \n", " = Second = \n",
        " = = = Sub = = = \n", " Only line . \n",
    ]  # fmt: skip
    assert wikitext_to_documents(lines) == [
        ["Intro sentence one .", "Intro two ?", "Yes .", "Body text here ."],
        ["Only line ."],
    ]


def test_real_corpus_converts(documents):
    # WikiText-2 valid and test: 60 + 62 articles.
    assert len(documents) == 122
    assert all(document for document in documents)
    # Headings (`= = Section = =`) are gone; text like "= National record"
    # (a legend line inside an article) stays.
    assert not any(
        s.startswith("= ") and s.endswith(" =")
        for document in documents
        for s in document
    )


def test_bert_format_round_trip(tmp_path, documents):
    path = tmp_path / "corpus.txt"
    write_bert_format(documents[:5], path)
    assert read_bert_format([path]) == documents[:5]


def test_instances_balance_adjacency_and_shape(tokenizer, documents):
    tokenized = tokenize_documents(documents, tokenizer)
    labels, lengths = [], []
    for seed in range(3):
        instances = create_instances(
            tokenized, tokenizer.cls_token_id, tokenizer.sep_token_id,
            max_seq_length=128, seed=seed, with_sources=True,
        )  # fmt: skip
        for instance in instances:
            ids, types = instance["input_ids"], instance["token_type_ids"]
            assert len(ids) == len(types) <= 128
            assert (
                ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
            )
            assert ids.count(tokenizer.sep_token_id) == 2
            first_sep = ids.index(tokenizer.sep_token_id)
            assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
            (doc_a, _, last_a), (doc_b, first_b, _) = instance["source"]
            if instance["next_sentence_label"] == 0:
                assert doc_a == doc_b and first_b == last_a + 1  # adjacent
            else:
                assert doc_a != doc_b
            labels.append(instance["next_sentence_label"])
            lengths.append(len(ids))
    assert np.mean(labels) == pytest.approx(0.5, abs=0.02)
    assert np.mean(np.array(lengths) < 100) > 0.03  # short_seq_prob at work


def test_tfrecord_shards_round_trip_and_split_between_workers(tmp_path, tokenizer):
    documents = [
        [[5, 6, 7], [8, 9], [10, 11, 12, 13]],
        [[20, 21], [22], [23, 24, 25]],
        [[30, 31, 32], [33, 34]],
    ]
    instances = create_instances(documents, 101, 102, max_seq_length=16, seed=0)
    paths = write_instances(instances, tmp_path, num_shards=3)
    assert len(paths) == 3 and not list(tmp_path.glob("*.tmp"))
    pattern = str(tmp_path / "instances-*.tfrecord")
    read = [
        (f["input_ids"].numpy().tolist(), int(y["next_sentence_label"]))
        for f, y in read_instances(pattern)
    ]
    expected = [(i["input_ids"], i["next_sentence_label"]) for i in instances]
    assert sorted(read) == sorted(expected)
    parts = [
        [f["input_ids"].numpy().tolist() for f, _ in read_instances(pattern, 2, w)]
        for w in range(2)
    ]
    assert sorted(parts[0] + parts[1]) == sorted(ids for ids, _ in expected)
    assert parts[0] and parts[1]
    with pytest.raises(FileNotFoundError, match="No instance shards"):
        read_instances(str(tmp_path / "nothing-*.tfrecord"))


def test_wordpiece_training_is_deterministic_and_opens_in_transformers(
    tmp_path, documents
):
    import transformers

    from tasks.pretrain_vocab import train_wordpiece

    sentences = [s for d in documents[:40] for s in d]
    first = train_wordpiece(sentences, vocab_size=1200)
    # Ties between equally frequent pieces used to be broken in hash order.
    for _ in range(3):
        assert train_wordpiece(sentences, vocab_size=1200).get_vocab() == (
            first.get_vocab()
        )
    first.save_pretrained(tmp_path)
    loaded = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.convert_ids_to_tokens(range(5)) == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    ]  # fmt: skip
    text = "The album was released in the United States in 1998 ."
    encoded = loaded(text, "It sold well .")
    assert encoded["input_ids"][0] == loaded.cls_token_id
    assert encoded["input_ids"].count(loaded.sep_token_id) == 2
    assert loaded.unk_token_id not in encoded["input_ids"]
    # The WordPiece decoder glues punctuation back; compare without spaces.
    decoded = loaded.decode(encoded["input_ids"], skip_special_tokens=True)
    assert decoded.replace(" ", "") == (text + "It sold well .").lower().replace(
        " ", ""
    )


def test_mlm_instances_pack_each_document_and_cover_every_token():
    docs = [[[1, 2, 3], [4, 5]], [[6]], [[7, 8, 9, 10, 11, 12, 13]]]
    instances = create_mlm_instances(docs, 101, 102, max_seq_length=5, seed=None)
    pieces = sorted(i["input_ids"] for i in instances)
    # Pieces of at most 3 tokens, never across documents, every token once.
    assert pieces == sorted(
        [[101, 1, 2, 3, 102], [101, 4, 5, 102], [101, 6, 102],
         [101, 7, 8, 9, 102], [101, 10, 11, 12, 102], [101, 13, 102]]
    )  # fmt: skip
    assert all(i["token_type_ids"] == [0] * len(i["input_ids"]) for i in instances)
    assert "next_sentence_label" not in instances[0]
    # Seeded copies are cut elsewhere but still hold every token once.
    for seed in range(5):
        cut = create_mlm_instances(docs, 101, 102, max_seq_length=5, seed=seed)
        tokens = sorted(t for i in cut for t in i["input_ids"][1:-1])
        assert tokens == list(range(1, 14))
        assert max(len(i["input_ids"]) for i in cut) <= 5
    lines = create_mlm_instances(docs, 101, 102, max_seq_length=4, line_by_line=True)
    assert sorted(i["input_ids"] for i in lines) == sorted(
        [[101, 1, 2, 102], [101, 4, 5, 102], [101, 6, 102], [101, 7, 8, 102]]
    )


def test_mlm_instances_round_trip_without_next_sentence_labels(tmp_path):
    from tasks.pretrain_data import instance_records

    instances = create_mlm_instances([[[5, 6, 7, 8]]], 1, 2, max_seq_length=4)
    paths = write_instances(instances, str(tmp_path), num_shards=1)
    read = [
        (f["input_ids"].numpy().tolist(), y) for f, y in instance_records(paths, False)
    ]
    assert sorted(ids for ids, _ in read) == sorted(i["input_ids"] for i in instances)
    assert all(y == {} for _, y in read)
