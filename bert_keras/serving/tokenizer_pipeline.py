"""The TF ops of `InGraphBertTokenizer`: text to word pieces, pieces to inputs.

Everything runs on flat tensors over the whole batch (one entry per character,
word or piece, with the row it belongs to), so a batch costs a fixed number of
ops whatever its size. Offsets are carried as `[start, end)` character indexes
into the original text from the first step on, the way HF's `NormalizedString`
aligns them.
"""

import tensorflow as tf

from bert_keras.serving import tokenizer_tables as tables_lib

_UTF8_LIMITS = (0x80, 0x800, 0x10000)


def encode_pieces(
    texts,
    tables,
    wordpiece,
    *,
    added_tokens,
    added_ids,
    unk_token_id,
    max_input_chars_per_word,
    return_offsets,
):
    """Word-piece ids (and character offsets) of each text, without specials.

    Args:
        texts: `tf.string` `(rows,)`.
        tables: dict of the `CharacterTables` fields as int32 tensors.
        wordpiece: a `FastWordpieceTokenizer(no_pretokenization=True)`.
        added_tokens: `[(id, code points)]`, matched verbatim in the raw text.
        added_ids: int32 `(len(added_tokens),)`, their ids.
        unk_token_id: int, replaces words over `max_input_chars_per_word`.
        max_input_chars_per_word: int, HF WordPiece's limit (characters).
        return_offsets: bool.

    Returns:
        `(ids, rows, offsets)`, flat over the batch's pieces in row order:
        int32 `(pieces,)` ids and text rows, and int32 `(pieces, 2)`
        `[start, end)` character offsets (or None).
    """
    decoded = tf.strings.unicode_decode(
        texts, "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    row_splits = tf.cast(decoded.row_splits, tf.int32)
    points = decoded.flat_values  # (chars,)
    char_row = tf.cast(decoded.value_rowids(), tf.int32)
    position = tf.range(tf.size(points)) - tf.gather(row_splits, char_row)
    span = tf.ones_like(points)
    if added_tokens:
        points, position, span, char_row = _match_added_tokens(
            points, position, char_row, row_splits, added_tokens
        )

    # BertNormalizer, per character: each yields 0, 1 or several code points.
    points, char_row, start, end = _normalize(
        points, char_row, position, position + span, tables
    )

    # BertPreTokenizer: spaces end words, punctuation stands alone.
    classes = _lookup(tables["class_starts"], tables["class_kinds"], points)
    is_space = tf.equal(classes, tables_lib.SPACE)
    is_punctuation = tf.equal(classes, tables_lib.PUNCTUATION)
    first_of_row = tf.not_equal(char_row, tf.concat([[-1], char_row[:-1]], 0))
    after_break = tf.concat([[True], (is_space | is_punctuation)[:-1]], 0)
    word_start = first_of_row | after_break | is_punctuation
    kept = tf.logical_not(is_space)
    points, char_row, start, end, word_start = _select(
        kept, points, char_row, start, end, word_start
    )
    char_word = tf.cumsum(tf.cast(word_start, tf.int32)) - 1
    words = tf.reduce_sum(tf.cast(word_start, tf.int32))
    (word_first,) = _select(word_start, tf.range(tf.size(points)))
    word_row = tf.gather(char_row, word_first)
    word_chars = tf.math.bincount(
        char_word, minlength=words, maxlength=words, dtype=tf.int32
    )
    word_point = tf.gather(points, word_first)
    is_added = word_point >= tables_lib.PLACEHOLDER_BASE
    # One token for the whole word: an added token, or HF's over-long [UNK].
    whole = is_added | (word_chars > max_input_chars_per_word)
    whole_id = tf.where(
        is_added,
        tf.gather(added_ids, tf.maximum(word_point - tables_lib.PLACEHOLDER_BASE, 0)),
        unk_token_id,
    )

    # WordPiece, one word per string; placeholders encode as a harmless "a".
    encodable = tf.where(points >= tables_lib.PLACEHOLDER_BASE, ord("a"), points)
    word_text = tf.strings.unicode_encode(
        tf.RaggedTensor.from_value_rowids(encodable, char_word, nrows=words),
        "UTF-8",
    )
    piece_ids, piece_start, piece_end = wordpiece.tokenize_with_offsets(word_text)
    piece_word = tf.cast(piece_ids.value_rowids(), tf.int32)
    piece_splits = tf.cast(piece_ids.row_splits, tf.int32)
    piece_index = tf.range(tf.size(piece_word)) - tf.gather(piece_splits, piece_word)
    piece_whole = tf.gather(whole, piece_word)
    keep = tf.logical_not(piece_whole) | tf.equal(piece_index, 0)
    ids = tf.where(piece_whole, tf.gather(whole_id, piece_word), piece_ids.flat_values)
    ids, piece_word, piece_start, piece_end = _select(
        keep, ids, piece_word, piece_start.flat_values, piece_end.flat_values
    )
    piece_row = tf.gather(word_row, piece_word)
    if not return_offsets:
        return ids, piece_row, None

    # Byte offsets inside each word -> its first and last character.
    width = 1 + sum(tf.cast(encodable >= limit, tf.int32) for limit in _UTF8_LIMITS)
    char_byte = tf.cumsum(width, exclusive=True)  # (chars,), increasing
    word_byte = tf.gather(char_byte, word_first)
    word_last = tf.gather(tf.cumsum(word_chars), piece_word) - 1
    base = tf.gather(word_byte, piece_word)
    piece_start = tf.cast(piece_start, tf.int32)
    piece_end = tf.cast(piece_end, tf.int32)
    first = tf.searchsorted(char_byte, base + piece_start, side="right") - 1
    # side="right" only (TFLite has no LowerBound): the last character
    # starting before the token's end byte.
    last = tf.searchsorted(char_byte, base + piece_end - 1, side="right") - 1
    piece_whole = tf.gather(whole, piece_word)
    first = tf.where(piece_whole, tf.gather(word_first, piece_word), first)
    last = tf.where(piece_whole, word_last, last)
    offsets = tf.stack([tf.gather(start, first), tf.gather(end, last)], axis=-1)
    return ids, piece_row, offsets


def _lookup(starts, kinds, points):
    """The kind of each code point in a sorted range table."""
    return tf.gather(kinds, tf.searchsorted(starts, points, side="right") - 1)


def _select(mask, *tensors):
    """`tf.boolean_mask` of several 1-D tensors by one mask, sharing its indices."""
    where = tf.cast(tf.where(mask)[:, 0], tf.int32)
    return tuple(tf.gather(tensor, where) for tensor in tensors)


def _match_added_tokens(points, position, char_row, row_splits, added_tokens):
    """Replaces each verbatim added token by one placeholder code point.

    Returns:
        `(points, position, span, char_row)` with the matched tokens' other
        characters removed; `span` is each remaining character's length in
        the original text (the token's length for placeholders).
    """
    size = tf.size(points)
    longest = max(len(token) for _, token in added_tokens)
    patterns = [
        list(token) + [-1] * (longest - len(token)) for _, token in added_tokens
    ]
    token_length = tf.constant([len(token) for _, token in added_tokens])
    # (chars, longest): the text from each character on, -2 past the end.
    padded = tf.concat([points, tf.fill([longest], -2)], 0)
    windows = tf.gather(padded, tf.range(size)[:, None] + tf.range(longest))
    row_end = tf.gather(row_splits[1:], char_row)
    # (chars, tokens): token t starts here and ends inside the row.
    match = tf.reduce_all(
        tf.equal(windows[:, None, :], patterns) | tf.less(patterns, 0), axis=-1
    ) & (tf.range(size)[:, None] + token_length <= row_end[:, None])
    matched = tf.reduce_any(match, axis=-1)
    placeholder = tf.argmax(tf.cast(match, tf.int32), axis=-1, output_type=tf.int32)
    span = tf.where(matched, tf.gather(token_length, placeholder), 1)
    # Characters after a match's first one, up to its end, disappear.
    (starts,) = _select(matched, tf.range(size))
    lengths = tf.gather(span, starts)
    delta = tf.math.unsorted_segment_sum(
        tf.concat([tf.ones_like(starts), -tf.ones_like(starts)], 0),
        tf.concat([starts + 1, starts + lengths], 0),
        size + 1,
    )
    inside = tf.cumsum(delta)[:size] > 0
    points = tf.where(matched, tables_lib.PLACEHOLDER_BASE + placeholder, points)
    return _select(tf.logical_not(inside), points, position, span, char_row)


def _normalize(points, char_row, start, end, tables):
    """Applies the normalization tables; returns the expanded code points."""
    kinds = _lookup(
        tables["normalization_starts"], tables["normalization_kinds"], points
    )
    keys = tables["mapping_keys"]
    mapped = tf.equal(kinds, tables_lib.MAP)
    # Kind MAP means the key is present: the last key <= the point is it.
    slot = tf.searchsorted(keys, points, side="right") - 1
    slot = tf.where(mapped, slot, 0)
    splits = tables["mapping_splits"]
    mapped_length = tf.gather(splits, slot + 1) - tf.gather(splits, slot)
    length = tf.gather([1, 0, 3, 0], kinds) + tf.where(mapped, mapped_length, 0)
    source = tf.repeat(tf.range(tf.size(points)), length)
    index = tf.range(tf.size(source)) - tf.gather(
        tf.cumsum(length, exclusive=True), source
    )
    source_point = tf.gather(points, source)
    source_kind = tf.gather(kinds, source)
    values = tables["mapping_values"]
    mapped_point = tf.gather(
        values,
        tf.minimum(
            tf.gather(splits, tf.gather(slot, source)) + index,
            tf.maximum(tf.size(values) - 1, 0),
        ),
    )
    isolated_point = tf.where(tf.equal(index, 1), source_point, ord(" "))
    expanded = tf.where(
        tf.equal(source_kind, tables_lib.MAP),
        mapped_point,
        tf.where(
            tf.equal(source_kind, tables_lib.ISOLATE), isolated_point, source_point
        ),
    )
    return (
        expanded,
        tf.gather(char_row, source),
        tf.gather(start, source),
        tf.gather(end, source),
    )


def pack(ids, rows, offsets, *, batch, pair, max_length, special_ids):
    """`[CLS] a [SEP] (b [SEP])`, truncated `longest_first`, padded right.

    Args:
        ids, rows, offsets: `encode_pieces` outputs; rows `batch + r` hold
            row r's second segment when `pair`.
        batch: int32 scalar, the number of output rows.
        pair: bool.
        max_length: int32 scalar; -1 means no truncation, pad to the longest.
        special_ids: `(cls, sep, pad)` token ids.

    Returns:
        A dict of int32 `(batch, width)` tensors `input_ids`, `token_type_ids`,
        `attention_mask`, and `offset_mapping` `(batch, width, 2)` when
        offsets are given.
    """
    cls_id, sep_id, pad_id = special_ids
    segments = 2 if pair else 1
    counts = tf.math.bincount(
        rows, minlength=segments * batch, maxlength=segments * batch, dtype=tf.int32
    )
    lengths = tf.split(counts, segments) if pair else [counts]
    budget = tf.where(max_length < 0, tf.int32.max, max_length - segments - 1)
    lengths = _truncated_lengths(lengths, budget)
    # Column of each segment's first token; the [SEP] follows its last.
    first_column = [tf.ones_like(lengths[0])]
    if pair:
        first_column.append(lengths[0] + 2)
    total = first_column[-1] + lengths[-1] + 1  # (batch,)
    width = tf.where(
        max_length < 0, tf.reduce_max(tf.concat([total, [0]], 0)), max_length
    )

    index = tf.range(tf.size(rows)) - tf.gather(tf.cumsum(counts, exclusive=True), rows)
    segment = rows // batch if pair else tf.zeros_like(rows)
    row = rows - segment * batch
    start = tf.gather(tf.concat(first_column, 0), rows) if pair else 1
    keep = index < tf.gather(tf.concat(lengths, 0), rows)
    kept_ids, kept_row, kept_column = _select(keep, ids, row, start + index)
    piece_at = tf.stack([kept_row, kept_column], -1)
    batch_rows = tf.range(batch)
    special_at = [tf.stack([batch_rows, tf.zeros_like(batch_rows)], -1)]
    special_at += [
        tf.stack([batch_rows, column + length], -1)
        for column, length in zip(first_column, lengths)
    ]
    special_values = [tf.fill([batch], cls_id)] + [tf.fill([batch], sep_id)] * segments
    positions = tf.concat([piece_at] + special_at, 0)
    values = tf.concat([kept_ids] + special_values, 0)
    shape = tf.stack([batch, width])
    columns = tf.range(width)[tf.newaxis, :]
    second_start = first_column[-1] if pair else total
    result = {
        "input_ids": tf.tensor_scatter_nd_update(
            tf.fill(shape, pad_id), positions, values
        ),
        "token_type_ids": tf.cast(
            (columns >= second_start[:, tf.newaxis]) & (columns < total[:, tf.newaxis]),
            tf.int32,
        ),
        "attention_mask": tf.cast(columns < total[:, tf.newaxis], tf.int32),
    }
    if offsets is not None:
        result["offset_mapping"] = tf.scatter_nd(
            piece_at, _select(keep, offsets)[0], tf.concat([shape, [2]], 0)
        )
    return result


def _truncated_lengths(lengths, budget):
    """Per-row segment lengths after HF's `longest_first` truncation.

    HF (tokenizers' `truncate_encodings`): a single text keeps `budget`
    tokens. For a pair over budget, the shorter segment keeps everything if
    the longer can take the rest, else the two share it, `budget // 2` for the
    shorter and the remainder for the longer (the first counts as shorter on
    a tie).
    """
    if len(lengths) == 1:
        return [tf.minimum(lengths[0], budget)]
    first, second = lengths
    swap = first > second
    short = tf.minimum(first, second)
    long_ = tf.where(short > budget, short, tf.maximum(short, budget - short))
    over = short + long_ > budget
    short = tf.where(over, budget // 2, short)
    long_ = tf.where(over, budget // 2 + budget % 2, long_)
    keep_first = tf.where(swap, long_, short)
    keep_second = tf.where(swap, short, long_)
    fits = first + second <= budget
    return [
        tf.where(fits, first, tf.minimum(first, keep_first)),
        tf.where(fits, second, tf.minimum(second, keep_second)),
    ]
