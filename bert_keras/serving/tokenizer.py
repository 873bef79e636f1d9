"""`InGraphBertTokenizer`: a Hugging Face BERT tokenizer made of TensorFlow ops.

It is token-exact with the fast tokenizer it is built from (ids, type ids,
mask and character offsets), and lives inside a SavedModel that loads with only
`tensorflow` and `tensorflow_text`. The steps, each as HF does them:

1. Added tokens (`[MASK]`, `[SEP]`, ... written in the text) are matched on the
   raw text and kept whole.
2. `BertNormalizer` and `BertPreTokenizer`, per character, through tables
   measured from the HF tokenizer itself (see `tokenizer_tables`).
3. WordPiece with TF Text's `FastWordpieceTokenizer`, one word at a time;
   words over `max_input_chars_per_word` characters become `[UNK]`.
4. `[CLS] a [SEP] (b [SEP])`, truncation `longest_first` by HF's rule, right
   padding.
"""

import dataclasses

import numpy as np
import tensorflow as tf

try:
    import tensorflow_text
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "bert_keras.serving needs TensorFlow Text. Install it with "
        "`pip install bert_keras[export]` (tensorflow-text matching your "
        f"TensorFlow). Received: {error}"
    ) from error

from bert_keras.serving import tokenizer_tables as tables_lib
from bert_keras.serving.tokenizer_pipeline import encode_pieces
from bert_keras.serving.tokenizer_pipeline import pack


class InGraphBertTokenizer(tf.Module):
    """A HF BERT tokenizer as TF ops: raw strings in, model inputs out.

    Build it from a transformers tokenizer (or a `tokenizers.Tokenizer`) with a
    `BertNormalizer`, `BertPreTokenizer` and `WordPiece` model, or from a
    checkpoint directory with `from_pretrained`. Calls work eagerly and inside
    `tf.function`; a SavedModel holding the module needs only `tensorflow` and
    `tensorflow_text` to load.

    Args:
        tokenizer: a transformers tokenizer (uses its `backend_tokenizer`) or a
            `tokenizers.Tokenizer`.
        max_length: int or None, default 512; the default length of `__call__`
            outputs. None means no truncation, padded to the batch's longest.
        name: optional module name.

    Example:

    >>> in_graph = InGraphBertTokenizer(tokenizer, max_length=8)
    >>> batch = in_graph(tf.constant(["Hello, World!"]))
    >>> batch["input_ids"].numpy().tolist()
    [[101, 7592, 1010, 2088, 999, 102, 0, 0]]
    >>> tokenizer(["Hello, World!"], padding="max_length", max_length=8)["input_ids"]
    [[101, 7592, 1010, 2088, 999, 102, 0, 0]]
    """

    def __init__(self, tokenizer, max_length=512, name=None):
        super().__init__(name=name)
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        _check_supported(backend)
        _check_max_length(max_length, pair=False)
        self.max_length = max_length
        model = backend.model
        vocab = backend.get_vocab(with_added_tokens=False)
        self.vocabulary = tuple(_ordered_vocabulary(vocab))
        self.unk_token_id = vocab[model.unk_token]
        self.max_input_chars_per_word = int(model.max_input_chars_per_word)
        self.cls_token_id, self.sep_token_id = _template_ids(backend)
        self.pad_token_id = _pad_id(tokenizer, backend, vocab)
        self.added_tokens = tuple(_added_tokens(backend))
        tables = tables_lib.character_tables(backend)
        self._tables = {
            field.name: tf.constant(getattr(tables, field.name))
            for field in dataclasses.fields(tables)
        }
        self._added_ids = tf.constant(
            [token_id for token_id, _ in self.added_tokens] or [0], tf.int32
        )
        # Words over max_input_chars_per_word characters are replaced by [UNK]
        # before WordPiece sees them; 4 bytes per character covers the rest.
        self._wordpiece = tensorflow_text.FastWordpieceTokenizer(
            vocab=list(self.vocabulary),
            suffix_indicator=model.continuing_subword_prefix,
            max_bytes_per_word=4 * self.max_input_chars_per_word + 4,
            token_out_type=tf.int32,
            unknown_token=model.unk_token,
            no_pretokenization=True,
        )

    @classmethod
    def from_pretrained(cls, path, max_length=512, name=None):
        """Builds the tokenizer of a checkpoint directory (tokenizer.json or vocab.txt).

        Args:
            path: str or path; a local directory (or Hub id, when online) that
                `transformers.AutoTokenizer` can load.
            max_length: int or None, default 512; see the class.
            name: optional module name.

        Returns:
            An `InGraphBertTokenizer`.

        Example:

        >>> InGraphBertTokenizer.from_pretrained(path).vocabulary[101]
        '[CLS]'
        """
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        return cls(tokenizer, max_length=max_length, name=name)

    @property
    def vocab_size(self):
        return len(self.vocabulary)

    def __call__(
        self, texts, pair_texts=None, max_length="default", return_offsets=False
    ):
        """Tokenizes a batch of texts (or text pairs) into BERT inputs.

        Args:
            texts: 1-D `tf.string` tensor (or list of str), UTF-8. Invalid
                bytes decode as U+FFFD, which BERT's `clean_text` drops (HF
                never sees them: Python strings are valid Unicode).
            pair_texts: optional 1-D `tf.string` tensor of the second segments,
                as long as `texts`.
            max_length: int or None; by default the constructor's. Truncation
                is HF's `longest_first`; None pads to the longest row.
            return_offsets: bool; also return `offset_mapping`.

        Returns:
            A dict of int32 `(batch, max_length)` tensors `input_ids`,
            `token_type_ids` and `attention_mask`, and with `return_offsets`
            `offset_mapping`, int32 `(batch, max_length, 2)`: HF's offsets,
            `[start, end)` in characters (Unicode code points, as Python `str`
            indexes them, and as `tf.strings.substr(..., unit="UTF8_CHAR")`
            takes them) into the text the token came from; `(0, 0)` for
            `[CLS]`, `[SEP]` and padding.
        """
        if max_length == "default":
            max_length = self.max_length
        _check_max_length(max_length, pair=pair_texts is not None)
        texts = _as_text_vector(texts, "texts")
        if pair_texts is not None:
            pair_texts = _as_text_vector(pair_texts, "pair_texts")
            if None not in (texts.shape[0], pair_texts.shape[0]) and (
                texts.shape[0] != pair_texts.shape[0]
            ):
                raise ValueError(
                    "texts and pair_texts must have the same length. "
                    f"Received: {texts.shape[0]} and {pair_texts.shape[0]}."
                )
        outputs = self._encode(
            texts,
            pair_texts,
            tf.constant(-1 if max_length is None else max_length, tf.int32),
            return_offsets,
        )
        if max_length is not None and not tf.executing_eagerly():
            # The trace is shared by every max_length; give callers its shape.
            outputs = {
                key: tf.ensure_shape(value, [None, max_length] + value.shape[2:])
                for key, value in outputs.items()
            }
        return outputs

    @tf.function(autograph=False, reduce_retracing=True)
    def _encode(self, texts, pair_texts, max_length, return_offsets):
        batch = tf.shape(texts)[0]
        if pair_texts is not None:
            tf.debugging.assert_equal(
                tf.shape(pair_texts)[0],
                batch,
                message="texts and pair_texts must have the same length",
            )
            # One pass over both segments: the first `batch` rows are `texts`.
            texts = tf.concat([texts, pair_texts], axis=0)
        ids, rows, offsets = encode_pieces(
            texts,
            self._tables,
            self._wordpiece,
            added_tokens=self.added_tokens,
            added_ids=self._added_ids,
            unk_token_id=self.unk_token_id,
            max_input_chars_per_word=self.max_input_chars_per_word,
            return_offsets=return_offsets,
        )
        return pack(
            ids,
            rows,
            offsets,
            batch=batch,
            pair=pair_texts is not None,
            max_length=max_length,
            special_ids=(self.cls_token_id, self.sep_token_id, self.pad_token_id),
        )


def _as_text_vector(texts, name):
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    if texts.shape.rank is not None and texts.shape.rank != 1:
        raise ValueError(
            f"`{name}` must be a 1-D string tensor (one text per row); wrap a "
            f"single text in a list. Received: shape {texts.shape}."
        )
    return texts


def _check_max_length(max_length, pair):
    # [CLS] + [SEP] (+ [SEP] for pairs) must fit.
    smallest = 3 if pair else 2
    if max_length is not None and (
        isinstance(max_length, bool)
        or not isinstance(max_length, (int, np.integer))
        or max_length < smallest
    ):
        raise ValueError(
            f"max_length must be None or an int >= {smallest} (room for the "
            f"special tokens). Received: max_length={max_length!r}."
        )


def _check_supported(backend):
    names = {
        "normalizer": (type(backend.normalizer).__name__, {"BertNormalizer"}),
        "pre_tokenizer": (type(backend.pre_tokenizer).__name__, {"BertPreTokenizer"}),
        "model": (type(backend.model).__name__, {"WordPiece"}),
    }
    for part, (found, expected) in names.items():
        if found not in expected:
            raise ValueError(
                f"InGraphBertTokenizer reproduces BERT tokenizers only: the "
                f"{part} must be one of {sorted(expected)}. Use the checkpoint's "
                f"BERT tokenizer. Received: {part}={found}."
            )


def _ordered_vocabulary(vocab):
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise ValueError(
            "The WordPiece vocabulary must hold ids 0..size-1 without gaps. "
            f"Received: {len(tokens)} tokens with ids up to {max(vocab.values())}."
        )
    return tokens


def _template_ids(backend):
    """[CLS] and [SEP] ids, checked against what the post-processor really does."""
    import tokenizers

    # A copy without the padding and truncation a tokenizer.json may carry.
    backend = tokenizers.Tokenizer.from_str(backend.to_str())
    backend.no_padding()
    backend.no_truncation()
    encoding = backend.encode("", "")
    ids, type_ids = encoding.ids, encoding.type_ids
    if len(ids) != 3 or ids[1] != ids[2] or type_ids != [0, 0, 1]:
        raise ValueError(
            "The tokenizer's post-processor must build `[CLS] a [SEP] b [SEP]` "
            "with type ids 0 for `[CLS] a [SEP]` and 1 for `b [SEP]`, as BERT "
            f"does. Received: ids {ids}, type ids {type_ids} for an empty pair."
        )
    return ids[0], ids[1]


def _pad_id(tokenizer, backend, vocab):
    pad_id = getattr(tokenizer, "pad_token_id", None)
    if pad_id is None and backend.padding is not None:
        pad_id = backend.padding["pad_id"]
    if pad_id is None:
        pad_id = vocab.get("[PAD]")
    if pad_id is None:
        raise ValueError(
            "The tokenizer has no padding token; expected `pad_token_id` or a "
            "`[PAD]` entry in the vocabulary. Received: neither."
        )
    return int(pad_id)


def _added_tokens(backend):
    """`[(id, code points)]` of the added tokens matched in raw text."""
    tokens = []
    for token_id, token in sorted(backend.get_added_tokens_decoder().items()):
        if token.normalized or token.lstrip or token.rstrip or token.single_word:
            raise ValueError(
                "Only added tokens matched verbatim in the raw text are "
                "supported (normalized, lstrip, rstrip and single_word all "
                f"False, as BERT's special tokens). Received: {token!r}."
            )
        tokens.append((int(token_id), tuple(ord(c) for c in token.content)))
    contents = ["".join(map(chr, points)) for _, points in tokens]
    for first in contents:
        for second in contents:
            overlap = any(
                first.endswith(second[:size]) for size in range(1, len(second))
            )
            inside = first != second and first in second
            if overlap or inside:
                raise ValueError(
                    "Added tokens that can overlap in a text are not supported "
                    "(their matches would depend on the order of search). "
                    f"Received: {first!r} and {second!r}."
                )
    return tokens
