"""Train a WordPiece vocabulary, deterministically, and wrap it for transformers."""

import collections
import gc
import heapq

from tokenizers import Tokenizer
from tokenizers import decoders
from tokenizers import models
from tokenizers import normalizers
from tokenizers import pre_tokenizers
from tokenizers import processors

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PREFIX = "##"


def train_wordpiece(sentences, vocab_size, lowercase=True, min_frequency=2):
    """Trains an uncased (by default) BERT WordPiece tokenizer.

    The same sentences always give the same vocabulary, in any process: the
    pieces are learned as the `tokenizers` WordPiece trainer learns them
    (merges of the most frequent adjacent pair, counted over the normalized,
    pre-tokenized words), but ties between equally frequent pairs are broken
    by the pair's text, not by hash-map order.

    Args:
        sentences: iterable of strings.
        vocab_size: int, target vocabulary size (special tokens included; the
            single characters of the corpus are always kept, even beyond it).
        lowercase: bool, lower-case and strip accents as BERT-uncased does.
        min_frequency: int, minimum pair frequency for a merge.

    Returns:
        `transformers.BertTokenizerFast` whose `save_pretrained` output opens
        with `transformers.AutoTokenizer`.

    Example:

    >>> tokenizer = train_wordpiece(open("corpus.txt"), vocab_size=8000)
    >>> tokenizer.save_pretrained("out/")
    """
    from transformers import BertTokenizerFast

    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"`vocab_size` must exceed the {len(SPECIAL_TOKENS)} special tokens. "
            f"Received: vocab_size={vocab_size}"
        )
    normalizer = normalizers.BertNormalizer(
        lowercase=lowercase, strip_accents=lowercase or None
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = _word_counts(sentences, normalizer, pre_tokenizer)
    # The merges make millions of small acyclic objects: in a process with a
    # large heap (a test session), cyclic GC passes would dominate the time.
    enabled = gc.isenabled()
    gc.disable()
    try:
        pieces = _learn_pieces(words, vocab_size, min_frequency)
    finally:
        if enabled:
            gc.enable()
    # Ids carry no meaning for WordPiece: specials, then the pieces sorted.
    ordered = [*SPECIAL_TOKENS, *sorted(pieces, key=lambda t: (t[:2] == PREFIX, t))]
    tokenizer = Tokenizer(
        models.WordPiece(
            {token: i for i, token in enumerate(ordered)},
            unk_token="[UNK]",
            continuing_subword_prefix=PREFIX,
        )
    )
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece(prefix=PREFIX)
    return BertTokenizerFast(
        tokenizer_object=tokenizer,
        do_lower_case=lowercase,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


def _word_counts(sentences, normalizer, pre_tokenizer, chunk=1000):
    """How often each normalized, pre-tokenized word occurs."""
    counts = collections.Counter()
    batch = []

    def flush():
        # Both steps work character by character, so a chunk of sentences
        # joined by newlines splits into the same words as each one alone.
        text = normalizer.normalize_str("\n".join(batch))
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(text))
        batch.clear()

    for sentence in sentences:
        batch.append(sentence)
        if len(batch) == chunk:
            flush()
    if batch:
        flush()
    return counts


def _learn_pieces(word_counts, vocab_size, min_frequency):
    """The characters and merged pieces (no special tokens), BPE-style.

    Every word starts as its characters, all but the first with the `##`
    prefix. The most frequent adjacent pair is merged, again and again, until
    the vocabulary is full or no pair occurs `min_frequency` times. Ties go to
    the pair that sorts first, `(count desc, left, right)`: a total order.
    """
    words = sorted(word_counts)
    counts = [word_counts[word] for word in words]
    characters = {c for word in words for c in word}
    symbols = [
        [word[0], *(PREFIX + c for c in word[1:])] if word else [] for word in words
    ]
    pieces = set(characters)
    pieces.update(s for word in symbols for s in word)
    pair_counts = {}
    pair_words = collections.defaultdict(set)
    for index, word in enumerate(symbols):
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + counts[index]
            pair_words[pair].add(index)
    heap = [(-count, *pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    while heap and len(pieces) + len(SPECIAL_TOKENS) < vocab_size:
        negative, left, right = heapq.heappop(heap)
        count = pair_counts.get((left, right), 0)
        if count != -negative:
            # A stale entry (counts only fall): requeue with the current one.
            if count:
                heapq.heappush(heap, (-count, left, right))
            continue
        if count < min_frequency:
            break
        merged = left + right[len(PREFIX) :]
        pieces.add(merged)
        changed = set()
        for index in pair_words.pop((left, right)):
            old = symbols[index]
            new, i = [], 0
            while i < len(old):
                if i + 1 < len(old) and old[i] == left and old[i + 1] == right:
                    new.append(merged)
                    i += 2
                else:
                    new.append(old[i])
                    i += 1
            if len(new) == len(old):
                continue
            for pair in zip(old, old[1:]):
                pair_counts[pair] -= counts[index]
                changed.add(pair)
            for pair in zip(new, new[1:]):
                pair_counts[pair] = pair_counts.get(pair, 0) + counts[index]
                pair_words[pair].add(index)
                changed.add(pair)
            symbols[index] = new
        del pair_counts[(left, right)]
        for pair in changed:
            if pair_counts.get(pair, 0) > 0 and merged in pair:
                heapq.heappush(heap, (-pair_counts[pair], *pair))
            elif pair in pair_counts and pair_counts[pair] <= 0:
                del pair_counts[pair]
    return pieces
