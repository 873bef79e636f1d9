"""Per-character tables that let TF ops reproduce a Hugging Face BERT tokenizer.

HF's `BertNormalizer` (clean text, pad CJK characters with spaces, strip accents,
lower-case) and `BertPreTokenizer` (split on whitespace, isolate punctuation)
act on one character at a time. So instead of re-implementing their Unicode
rules with TF's own (older or newer) Unicode tables, the tables here are
*measured*: every code point is run through the tokenizer's own normalizer and
pre-tokenizer once, at build time, and the answers are stored as sorted range
tables that `tf.searchsorted` can read. The in-graph tokenizer is therefore
exact for the `tokenizers` version it was built with, whatever Unicode version
TensorFlow or ICU ship.

One thing is not per-character: canonical reordering of combining marks during
NFD. Only marks that survive accent stripping could show it (some musical
symbol marks); the tables keep them in input order.

The build takes about two seconds per distinct normalizer and is cached per
process.
"""

import dataclasses
import json

import numpy as np

# Normalization kinds, per code point.
KEEP = 0  # unchanged
DROP = 1  # removed (control and format characters under clean_text)
ISOLATE = 2  # surrounded by spaces (CJK characters)
MAP = 3  # replaced by the string in the mapping table

# Pre-tokenization classes, per normalized code point.
WORD = 0
SPACE = 1
PUNCTUATION = 2

# Added tokens found in the raw text become one pseudo code point each, above
# Unicode's range: kept by normalization, isolated like punctuation.
PLACEHOLDER_BASE = 0x110000

_SURROGATES = range(0xD800, 0xE000)
# A character that every BERT normalizer leaves alone and that stays a word
# character: joins the probes so one Rust call answers for many code points.
_SEPARATOR = "|"
_PROBE_FILLER = "x"


@dataclasses.dataclass(frozen=True)
class CharacterTables:
    """Sorted range tables for normalization and pre-tokenization.

    Attributes:
        normalization_starts: int32 `(ranges,)`, first code point of each range.
        normalization_kinds: int32 `(ranges,)`, `KEEP`, `DROP`, `ISOLATE` or
            `MAP` for every code point of the range.
        mapping_keys: int32 `(mapped,)`, sorted code points of kind `MAP`.
        mapping_splits: int32 `(mapped + 1,)`, row splits into
            `mapping_values`.
        mapping_values: int32, the replacement code points, concatenated.
        class_starts: int32 `(ranges,)`, first code point of each range.
        class_kinds: int32 `(ranges,)`, `WORD`, `SPACE` or `PUNCTUATION`.
    """

    normalization_starts: np.ndarray
    normalization_kinds: np.ndarray
    mapping_keys: np.ndarray
    mapping_splits: np.ndarray
    mapping_values: np.ndarray
    class_starts: np.ndarray
    class_kinds: np.ndarray


_CACHE = {}


def character_tables(backend):
    """Measures the tables of a `tokenizers.Tokenizer` (cached per settings).

    Args:
        backend: a `tokenizers.Tokenizer` with a `BertNormalizer` (or none) and
            a `BertPreTokenizer`.

    Returns:
        A `CharacterTables`.

    Example:

    >>> tables = character_tables(tokenizer.backend_tokenizer)
    >>> int(tables.class_kinds[-1]) == PUNCTUATION  # placeholders stand alone
    True
    """
    state = json.loads(backend.to_str())
    normalizer_key = ("normalizer", json.dumps(state["normalizer"], sort_keys=True))
    classes_key = ("pre_tokenizer", json.dumps(state["pre_tokenizer"], sort_keys=True))
    if normalizer_key not in _CACHE:
        _CACHE[normalizer_key] = _normalization(backend.normalizer)
    if classes_key not in _CACHE:
        _CACHE[classes_key] = _classes(backend.pre_tokenizer)
    return CharacterTables(*_CACHE[normalizer_key], *_CACHE[classes_key])


def _code_points():
    """Every Unicode scalar value except `_SEPARATOR` (surrogates can't be str)."""
    points = np.arange(0x110000, dtype=np.int64)
    keep = (points < _SURROGATES.start) | (points >= _SURROGATES.stop)
    keep &= points != ord(_SEPARATOR)
    return points[keep]


def _normalize_each(normalizer, characters):
    """`normalizer` applied to each character alone, in one call when possible."""
    if normalizer is None:
        return list(characters)
    joined = normalizer.normalize_str(_SEPARATOR.join(characters))
    parts = joined.split(_SEPARATOR)
    if len(parts) == len(characters):
        return parts
    # Some character normalized to text containing the separator: go one by one.
    return [normalizer.normalize_str(character) for character in characters]


def _ranges(points, kinds, top_kind):
    """Run-length ranges of `kinds` over sorted `points`; a last range at the top."""
    full = np.full(PLACEHOLDER_BASE + 1, DROP, np.int32)
    full[points] = kinds
    full[PLACEHOLDER_BASE] = top_kind
    change = np.flatnonzero(np.diff(full)) + 1
    starts = np.concatenate([[0], change]).astype(np.int32)
    return starts, full[starts].astype(np.int32)


def _normalization(normalizer):
    """Normalization range table plus the mapping table for kind `MAP`."""
    points = _code_points()
    characters = [chr(point) for point in points]
    outputs = _normalize_each(normalizer, characters)
    kinds = np.empty(len(points), np.int32)
    mapped = {}
    for index, (character, output) in enumerate(zip(characters, outputs)):
        if output == character:
            kinds[index] = KEEP
        elif not output:
            kinds[index] = DROP
        elif output == f" {character} ":
            kinds[index] = ISOLATE
        else:
            kinds[index] = MAP
            mapped[int(points[index])] = [ord(c) for c in output]
    # The separator itself, probed alone.
    separator = _normalize_each(normalizer, [_SEPARATOR])[0]
    if separator != _SEPARATOR:
        raise ValueError(
            "The tokenizer's normalizer changes the probe character "
            f"{_SEPARATOR!r}; expected a BERT normalizer that leaves it alone. "
            f"Received: {_SEPARATOR!r} -> {separator!r}."
        )
    points = np.append(points, ord(_SEPARATOR))
    kinds = np.append(kinds, KEEP)
    starts, range_kinds = _ranges(points, kinds, KEEP)
    # A sentinel past every code point keeps the tables non-empty.
    mapped[np.iinfo(np.int32).max] = [0]
    keys = np.array(sorted(mapped), np.int32)
    lengths = [len(mapped[key]) for key in keys]
    splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = np.array(
        [point for key in keys for point in mapped[key]], np.int32
    ).reshape(-1)
    return starts, range_kinds, keys, splits, values


def _classes(pre_tokenizer):
    """Pre-tokenization class of every code point, as a range table.

    The probe is `c1 x c2 x ...`: a word character joins its neighbours, a
    punctuation character comes back as a piece of its own and a whitespace
    character leaves a gap in the pieces' offsets (which count characters).
    """
    points = np.append(_code_points(), ord(_SEPARATOR))
    kinds = np.full(len(points), SPACE, np.int32)
    probe = _PROBE_FILLER.join(chr(point) for point in points)
    for piece, (start, end) in pre_tokenizer.pre_tokenize_str(probe):
        # Probe position 2 * i holds points[i]; odd positions hold fillers.
        first, last = (start + 1) // 2, (end - 1) // 2
        if start % 2 == 0 and end - start == 1 and piece != _PROBE_FILLER:
            kinds[first] = PUNCTUATION
        else:
            kinds[first : last + 1] = WORD
    order = np.argsort(points)
    return _ranges(points[order], kinds[order], PUNCTUATION)
