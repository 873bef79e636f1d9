"""Dynamic masked-LM masking inside `tf.data` (BERT's 15% with 80/10/10).

New masks are drawn every time an example passes through the pipeline, so
every epoch sees different masks (RoBERTa's "dynamic masking"), and the draw
is reproducible from a seed.
"""

import numpy as np
import tensorflow as tf

from bert_keras.training.losses import IGNORE_INDEX


class MaskedLMMasker:
    """Masks one tokenized sequence; use it with `tf.data.Dataset.map`.

    Among eligible tokens (not special, not padding), `mask_rate` of them are
    selected, at most `max_predictions_per_seq`; each selected token becomes
    `[MASK]` with probability `mask_token_rate`, a random token with
    `random_token_rate`, and stays unchanged otherwise. With
    `whole_word_masking`, selection is by word: a word-piece continuation
    (`##...`) is selected together with the piece that starts its word, and a
    word that would overshoot the budget is skipped, never split.

    Args:
        vocab_size: int.
        mask_token_id: int, id of `[MASK]`.
        special_token_ids: ids never selected (`[CLS]`, `[SEP]`, `[PAD]`, ...).
        max_predictions_per_seq: int, most selected positions per sequence.
        mask_rate: float, share of eligible tokens to select (0.15).
        mask_token_rate: float, selected tokens replaced by `[MASK]` (0.8).
        random_token_rate: float, selected tokens replaced by a random
            non-special token (0.1).
        continuation_ids: ids of word-piece continuations, required for
            whole-word masking (see `continuation_ids_from_tokenizer`).
        whole_word_masking: bool.
        seed: int, seed of the masking random stream.

    Call args:
        features: dict with a 1-D `input_ids` (and optionally
            `attention_mask`) for one sequence.

    Returns:
        `(features, labels)`: `input_ids` masked and `masked_lm_positions`
        (max_predictions_per_seq,) added to the features; labels hold
        `labels` (max_predictions_per_seq,), the original ids at those
        positions and -100 on unused slots, and keep any other label keys.

    Example:

    >>> masker = MaskedLMMasker(30522, tokenizer.mask_token_id,
    ...                         tokenizer.all_special_ids, 20, seed=0)
    >>> texts = ["The lobster is large.", "It lives in the sea."]
    >>> batch = tokenizer(texts, padding="max_length", max_length=16,
    ...                   return_tensors="np")
    >>> dataset = tf.data.Dataset.from_tensor_slices(dict(batch))
    >>> dataset = dataset.map(masker).batch(2)
    >>> features, labels = next(iter(dataset))
    >>> tuple(labels["labels"].shape)
    (2, 20)
    """

    def __init__(
        self,
        vocab_size,
        mask_token_id,
        special_token_ids,
        max_predictions_per_seq,
        mask_rate=0.15,
        mask_token_rate=0.8,
        random_token_rate=0.1,
        continuation_ids=None,
        whole_word_masking=False,
        seed=None,
    ):
        if not 0 < mask_rate <= 1:
            raise ValueError(f"`mask_rate` must be in (0, 1]. Received: {mask_rate}")
        if (
            mask_token_rate < 0
            or random_token_rate < 0
            or (mask_token_rate + random_token_rate > 1)
        ):
            raise ValueError(
                "`mask_token_rate` and `random_token_rate` must be non-negative "
                f"and sum to at most 1. Received: {mask_token_rate}, "
                f"{random_token_rate}"
            )
        if whole_word_masking and continuation_ids is None:
            raise ValueError(
                "Whole-word masking needs `continuation_ids` (the ids of ##-pieces); "
                "use continuation_ids_from_tokenizer(tokenizer)."
            )
        special = np.zeros(vocab_size, bool)
        special[list(special_token_ids)] = True
        continuation = np.zeros(vocab_size, bool)
        if continuation_ids is not None:
            continuation[list(continuation_ids)] = True
        self._special = tf.constant(special)
        self._continuation = tf.constant(continuation)
        # Random replacements are drawn from the non-special tokens.
        self._random_pool = tf.constant(np.flatnonzero(~special), tf.int32)
        self.vocab_size = vocab_size
        self.mask_token_id = mask_token_id
        self.max_predictions_per_seq = max_predictions_per_seq
        self.mask_rate = mask_rate
        self.mask_token_rate = mask_token_rate
        self.random_token_rate = random_token_rate
        self.whole_word_masking = whole_word_masking
        self.seed = 0 if seed is None else seed
        self._generator = tf.random.Generator.from_seed(self.seed)

    def _uniform(self, shape, draw, index, maxval=None, dtype=tf.float32):
        """Draw number `draw` of this example: stateless when `index` is given."""
        if index is None:
            return self._generator.uniform(shape, maxval=maxval, dtype=dtype)
        seed = tf.stack(
            [tf.constant(self.seed, tf.int64), tf.cast(index, tf.int64) * 3 + draw]
        )
        return tf.random.stateless_uniform(shape, seed, maxval=maxval, dtype=dtype)

    def __call__(self, features, labels=None, index=None):
        """Masks one example; pass a running `index` (e.g. from
        `Dataset.enumerate()` after `repeat()`) to make each draw a pure
        function of (seed, index): reproducible however the pipeline is
        cloned or distributed, and new on every pass."""
        features = dict(features)
        input_ids = tf.cast(features["input_ids"], tf.int32)
        length = tf.shape(input_ids)[0]
        eligible = tf.logical_not(tf.gather(self._special, input_ids))
        if "attention_mask" in features:
            eligible &= tf.cast(features["attention_mask"], tf.bool)

        # Units of selection: single tokens, or whole words.
        if self.whole_word_masking:
            starts = eligible & tf.logical_not(tf.gather(self._continuation, input_ids))
        else:
            starts = eligible
        unit = tf.cumsum(tf.cast(starts, tf.int32)) - 1  # unit index per token
        unit = tf.where(eligible, unit, -1)
        num_units = tf.reduce_sum(tf.cast(starts, tf.int32))
        unit_sizes = tf.math.unsorted_segment_sum(
            tf.cast(eligible, tf.int32), tf.maximum(unit, 0), tf.maximum(num_units, 1)
        )[:num_units]

        num_eligible = tf.reduce_sum(tf.cast(eligible, tf.int32))
        budget = tf.cast(
            tf.round(tf.cast(num_eligible, tf.float32) * self.mask_rate), tf.int32
        )
        budget = tf.minimum(
            tf.maximum(budget, tf.minimum(num_eligible, 1)),
            self.max_predictions_per_seq,
        )
        # Visit units in random order; take each that still fits the budget.
        order = tf.argsort(self._uniform([num_units], 0, index))
        if self.whole_word_masking:
            taken = _greedy_fit(tf.gather(unit_sizes, order), budget)
        else:  # every unit is one token: the first `budget` of them fit
            taken = tf.range(num_units) < budget
        chosen_units = tf.scatter_nd(
            order[:, None], tf.cast(taken, tf.int32), [num_units]
        )
        selected = eligible & (
            tf.gather(
                tf.pad(chosen_units, [[0, 1]]), tf.where(unit < 0, num_units, unit)
            )
            > 0
        )

        draw = self._uniform([length], 1, index)
        random_tokens = tf.gather(
            self._random_pool,
            self._uniform(
                [length],
                2,
                index,
                maxval=tf.shape(self._random_pool)[0],
                dtype=tf.int32,
            ),
        )
        replaced = tf.where(
            draw < self.mask_token_rate,
            tf.fill([length], self.mask_token_id),
            tf.where(
                draw < self.mask_token_rate + self.random_token_rate,
                random_tokens,
                input_ids,
            ),
        )
        masked_ids = tf.where(selected, replaced, input_ids)

        positions = tf.cast(tf.where(selected)[:, 0], tf.int32)
        pad = self.max_predictions_per_seq - tf.shape(positions)[0]
        originals = tf.gather(input_ids, positions)
        features["input_ids"] = masked_ids
        features["masked_lm_positions"] = tf.pad(positions, [[0, pad]])
        mlm_labels = tf.pad(originals, [[0, pad]], constant_values=IGNORE_INDEX)
        labels = {} if labels is None else dict(labels)
        labels["labels"] = mlm_labels
        return features, labels


def _greedy_fit(sizes, budget):
    """`taken[i]`: unit i (in visiting order) fits in what the earlier left."""

    def step(state, size):
        used, _ = state
        fits = used + size <= budget
        return used + tf.where(fits, size, 0), fits

    _, taken = tf.scan(
        step, sizes, initializer=(tf.constant(0, tf.int32), tf.constant(False))
    )
    return taken


def continuation_ids_from_tokenizer(tokenizer):
    """Ids of WordPiece continuation pieces (`##...`) in a tokenizer's vocab."""
    return sorted(
        index
        for token, index in tokenizer.get_vocab().items()
        if token.startswith("##")
    )
