"""`InGraphBertTokenizer` is token-exact with the HF fast tokenizer.

Each comparison runs the real transformers tokenizer and the in-graph one on
the same batch and compares ids, type ids, mask and offsets, for the uncased
all-MiniLM-L6-v2 tokenizer and a cased one (its vocabulary with lower-casing
and accent stripping off), single texts and pairs, with truncation (32) and
without (None: padded to the longest row). The texts are the hostile set below
and a few hundred strings of the shipped corpora; `benchmarks/
tokenizer_parity.py` runs the same comparison on every corpus string.
"""

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from bert_keras.serving import InGraphBertTokenizer

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "tasks", "data")

# Texts where a BERT tokenizer port usually goes wrong. Escapes keep every
# invisible character visible in this file.
HOSTILE_TEXTS = [
    # Accents, NFC and NFD; case mappings that change length or need context.
    "café naïve résumé Ångström",
    "cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030angstro\u0308m",
    "ÉCOLE E\u0301COLE Tiếng Việt Tie\u0302\u0301ng Vie\u0323\u0302t",
    "İstanbul ışık ΟΔΥΣΣΕΥΣ Σίσυφος Straße STRASSE \u212a\u212b",
    "ǄǅǆȺ ﬁ ﬂ ﬀ Ꭰ ꭰ Привет Ёлка",
    # CJK, with and without spaces; compatibility and extension ideographs.
    "中文字符测试 日本語のテキスト 한국어 텍스트",
    "abc中文def\u3400\U00020000\U0002a700\uf900\U0002f800",
    "ＡＢＣ１２３ ｶﾀｶﾅ 「引用」、。・",
    # Emoji, sequences, flags, keycaps, newest emoji.
    "😀🥲👍🏽 👨\u200d👩\u200d👧\u200d👦 🇫🇷 I ❤\ufe0f NY 1\ufe0f\u20e3 \U0001fae0",
    # Zero-width, format and bidi characters.
    "a\u200bb a\u200cb\u200dc \ufeffBOM word\u2060joiner soft\u00adhyphen",
    "\u200e\u200fRTL \u202eoverride\u202c \u2066isolate\u2069",
    # Control characters, NUL, replacement character.
    "a\x00b tab\tsep new\nline\r\nwin \x0bvt\x0cff \x1b[31mred\x1b[0m",
    "\x7fdel \x85nel \ufffdrepl \x01\x02\x03 \u0600arabic-number-sign",
    # A 300-character word, and the 100-character limit on both sides.
    "a" * 300,
    "x" * 100 + " " + "y" * 101 + " ok",
    "supercalifragilistic" * 15 + ".",
    "e\u0301" * 60 + " " + "é" * 101,
    # Empty and whitespace-only.
    "",
    " ",
    "   \t\n ",
    "\u3000\u00a0\u2028\u2029",
    "\u200b",
    # Mixed case.
    "HeLLo WoRLD McDonald's iPhone ALLCAPS camelCaseWord",
    # Punctuation runs and ASCII symbols BERT treats as punctuation.
    "!!!???... --- ~~~ ### a.b,c;d:e ((([[[{{{",
    "$100 + 50% = €150 ¿Qué? ¡Sí! “quotes” ‘single’ «guillemets» …—–",
    "@user #hashtag http://x.y/z?q=1&r=2 <b>bold</b> a|b^c`d",
    # Unicode spaces.
    "a\u2000b\u2001c\u2002d\u2003e\u2009f\u200ag\u202fh\u205fi\u3000j\u1680k\u180el",
    "non\u00a0breaking\u2007figure",
    # Combining marks alone, stacked, and in scripts that need them.
    "a\u0300\u0301\u0302\u0303 \u0301start Z\u0351\u0352\u0353algo q\u0307\u0323",
    "ক্ষ हिन्दी ภาษาไทย كَتَبَ العربية עִבְרִית",
    "a\u0898b \U0001d16d\U0001d165 \U0001d15e\U0001d165",
    # Special tokens written in the text.
    "[MASK] [CLS] x [SEP] y [mask] a[MASK]b [[MASK]] [PAD][UNK][MASK][MASK]",
    # Numbers, symbols, private use, unassigned and noncharacters.
    "3.14159 1,000,000 ½ ² ① ∑∫√∞ ≤≥≠ x² + y³",
    "\ue000private \u0378unassigned \uffffnon \U0010ffffend",
]


def read_corpus_sample():
    """A few hundred shipped strings: `(singles, pairs)`."""
    with open(os.path.join(DATA, "glue", "SST-2", "dev.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    sst2 = [row["sentence"] for row in rows[:150]]
    path = os.path.join(DATA, "squad", "dev-v1.1.shared.json")
    with open(path, encoding="utf-8") as f:
        articles = json.load(f)["data"][:2]
    paragraphs = [p for article in articles for p in article["paragraphs"]][:12]
    contexts = [p["context"] for p in paragraphs]
    questions = [qa["question"] for p in paragraphs for qa in p["qas"][:4]]
    path = os.path.join(DATA, "wikitext-2-raw", "wiki.valid.raw")
    with open(path, encoding="utf-8") as f:
        wiki = [line.rstrip("\n") for line in f][:120]
    singles = sst2 + questions + contexts + wiki
    pairs = [(qa["question"], p["context"]) for p in paragraphs for qa in p["qas"][:2]]
    pairs += list(zip(sst2[0::2], sst2[1::2]))
    return singles, pairs


SINGLES, PAIRS = read_corpus_sample()
# Every hostile text against another, and against itself.
HOSTILE_PAIRS = list(zip(HOSTILE_TEXTS, HOSTILE_TEXTS[3:] + HOSTILE_TEXTS[:3]))
HOSTILE_PAIRS += [(text, text) for text in HOSTILE_TEXTS[::4]]


@pytest.fixture(scope="module", params=["uncased", "cased"])
def tokenizers(request, tokenizer):
    """`(HF tokenizer, InGraphBertTokenizer)`; cased = MiniLM's vocabulary with
    lower-casing (and so accent stripping) off."""
    import transformers

    if request.param == "cased":
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            tokenizer.name_or_path, do_lower_case=False
        )
        normalizer = tokenizer.backend_tokenizer.normalizer
        assert not normalizer.lowercase and not normalizer.strip_accents
    return tokenizer, InGraphBertTokenizer(tokenizer)


def assert_same(hf_tokenizer, in_graph, texts, pairs=None, max_length=None):
    hf_args = [list(texts)] + ([list(pairs)] if pairs is not None else [])
    expected = hf_tokenizer(
        *hf_args,
        padding="max_length" if max_length else "longest",
        truncation=bool(max_length),
        max_length=max_length,
        return_offsets_mapping=True,
        return_tensors="np",
    )
    ours = in_graph(
        tf.constant(texts),
        None if pairs is None else tf.constant(pairs),
        max_length=max_length,
        return_offsets=True,
    )
    for key in ("input_ids", "token_type_ids", "attention_mask", "offset_mapping"):
        mine, theirs = ours[key].numpy(), expected[key]
        assert mine.shape == theirs.shape, (key, mine.shape, theirs.shape)
        bad = np.flatnonzero((mine != theirs).reshape(len(texts), -1).any(-1))
        assert bad.size == 0, (
            f"{key} differs on {bad.size} rows, first: {texts[bad[0]]!r}"
            f"{'' if pairs is None else ' / ' + repr(pairs[bad[0]])}\n"
            f"ours: {mine[bad[0]].tolist()}\nHF:   {theirs[bad[0]].tolist()}"
        )


@pytest.mark.parametrize("max_length", [None, 32])
def test_single_texts_match_hf(tokenizers, max_length):
    hf_tokenizer, in_graph = tokenizers
    assert_same(hf_tokenizer, in_graph, HOSTILE_TEXTS + SINGLES, max_length=max_length)


@pytest.mark.parametrize("max_length", [None, 32])
def test_text_pairs_match_hf(tokenizers, max_length):
    hf_tokenizer, in_graph = tokenizers
    first, second = zip(*(HOSTILE_PAIRS + PAIRS))
    assert_same(hf_tokenizer, in_graph, first, second, max_length=max_length)


@pytest.mark.parametrize("max_length", [11, 12])
def test_longest_first_truncation_matches_hf_on_every_length_pair(
    tokenizer, max_length
):
    # Segments of 0..13 one-token words: every case of HF's rule, odd and even
    # budgets, ties included.
    in_graph = InGraphBertTokenizer(tokenizer)
    words = [" ".join(["word"] * n) for n in range(14)]
    first = [a for a in words for _ in words]
    second = [b for _ in words for b in words]
    assert_same(tokenizer, in_graph, first, second, max_length=max_length)


def test_default_length_and_names(tokenizer):
    in_graph = InGraphBertTokenizer(tokenizer, max_length=16)
    outputs = in_graph(["a b", "c"])
    assert sorted(outputs) == ["attention_mask", "input_ids", "token_type_ids"]
    for value in outputs.values():
        assert value.dtype == tf.int32 and value.shape == (2, 16)
    assert in_graph.vocabulary[in_graph.cls_token_id] == "[CLS]"
    assert in_graph.vocab_size == tokenizer.vocab_size


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: t(["a"], max_length=1), "max_length=1"),
        (lambda t: t(["a"], ["b"], max_length=2), "max_length=2"),
        (lambda t: t(["a"], max_length=8.0), "max_length=8.0"),
        (lambda t: t([["a"]]), "shape (1, 1)"),
        (lambda t: t(["a", "b"], ["c"]), "2 and 1"),
    ],
)
def test_bad_calls_say_what_was_received(tokenizer, call, message):
    in_graph = InGraphBertTokenizer(tokenizer, max_length=8)
    with pytest.raises(ValueError, match="Received") as error:
        call(in_graph)
    assert message in str(error.value)


def test_non_bert_tokenizer_is_refused(tokenizer):
    import tokenizers

    backend = tokenizers.Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match="pre_tokenizer=Whitespace"):
        InGraphBertTokenizer(backend)


@pytest.mark.slow
def test_saved_model_runs_without_bert_keras_or_transformers(tokenizer, tmp_path):
    in_graph = InGraphBertTokenizer(tokenizer, max_length=24)
    module = tf.Module()
    module.tokenizer = in_graph
    module.serve = tf.function(
        lambda texts: in_graph(texts, return_offsets=True),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, str(tmp_path))
    texts = HOSTILE_TEXTS[:12]
    expected = tokenizer(
        texts,
        padding="max_length",
        truncation=True,
        max_length=24,
        return_offsets_mapping=True,
    )
    blocked = {"bert_keras", "transformers", "tokenizers"}
    script = textwrap.dedent(
        f"""
        import json, sys

        class Refuse:
            # Any import of these fails: the SavedModel must not need them.
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError(f"blocked: {{name}}")

        sys.meta_path.insert(0, Refuse())
        import tensorflow as tf
        import tensorflow_text  # registers the WordPiece op
        loaded = tf.saved_model.load({str(tmp_path)!r})
        texts = json.loads(sys.stdin.read())
        out = loaded.serve(tf.constant(texts))
        print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert served[key] == expected[key], key
    offsets = [[list(pair) for pair in row] for row in expected["offset_mapping"]]
    assert served["offset_mapping"] == offsets
