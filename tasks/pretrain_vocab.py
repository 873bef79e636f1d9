"""Train a WordPiece vocabulary with `tokenizers` and wrap it for transformers."""

from tokenizers import Tokenizer
from tokenizers import decoders
from tokenizers import models
from tokenizers import normalizers
from tokenizers import pre_tokenizers
from tokenizers import processors
from tokenizers import trainers

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(sentences, vocab_size, lowercase=True, min_frequency=2):
    """Trains an uncased (by default) BERT WordPiece tokenizer.

    Args:
        sentences: iterable of strings.
        vocab_size: int, target vocabulary size (special tokens included).
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
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        lowercase=lowercase, strip_accents=lowercase or None
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix="##",
    )
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    # The trainer breaks ties between equally frequent pieces in hash-map
    # order, so ids differ from run to run. Ids carry no meaning for
    # WordPiece: renumber in a fixed order (specials, then pieces sorted),
    # so the same corpus always gives the same vocab.txt and the same model.
    pieces = [t for t in tokenizer.get_vocab() if t not in SPECIAL_TOKENS]
    ordered = [*SPECIAL_TOKENS, *sorted(pieces, key=lambda t: (t[:2] == "##", t))]
    tokenizer.model = models.WordPiece(
        {token: i for i, token in enumerate(ordered)},
        unk_token="[UNK]",
        continuing_subword_prefix="##",
    )
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(
        tokenizer_object=tokenizer,
        do_lower_case=lowercase,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
