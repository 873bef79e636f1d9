"""`next-sentence-prediction`: how likely a second text follows a first."""

from bert_keras.errors import InputError
from bert_keras.pipelines.base import Pipeline
from bert_keras.pipelines.base import softmax
from bert_keras.pipelines.base import split_features


class NextSentencePredictionPipeline(Pipeline):
    """Scores `(text, text_pair)`: the probability that text_pair follows text.

    BERT's pretraining head puts "is next" at index 0 of its two logits; the
    score is that class's softmax probability. transformers has no such
    pipeline; inputs follow text-classification's pair form.

    Inputs: `(text, text_pair)` as two arguments, a dict
    `{"text": ..., "text_pair": ...}`, or a list of dicts or 2-tuples.
    Returns a float, or a list of floats for a list.

    Example:

    >>> from bert_keras.pipelines import pipeline
    >>> nsp = pipeline("next-sentence-prediction", model=path)  # untrained head
    >>> 0.0 <= nsp("The sky darkened.", text_pair="Then it began to rain.") <= 1.0
    True
    """

    task = "next-sentence-prediction"
    model_classes = ("BertForNextSentencePrediction", "BertForPreTraining")
    call_options = ("truncation", "max_length")

    def __call__(self, inputs, text_pair=None, **options):
        options = self.options(options)
        if text_pair is not None:
            inputs = {"text": inputs, "text_pair": text_pair}
        single = isinstance(inputs, dict) or (
            isinstance(inputs, tuple)
            and len(inputs) == 2
            and isinstance(inputs[0], str)
        )
        pairs = [_pair(item) for item in ([inputs] if single else inputs)]
        kwargs = {k: options[k] for k in ("truncation", "max_length") if k in options}
        encoding = self.tokenizer(
            [first for first, _ in pairs], [second for _, second in pairs], **kwargs
        )
        rows = self.forward(
            split_features(encoding), {"logits": ("logits", "seq_relationship_logits")}
        )
        scores = [float(softmax(row["logits"])[0]) for row in rows]
        return scores[0] if single else scores


def _pair(item):
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        if isinstance(item.get("text_pair"), str):
            return item["text"], item["text_pair"]
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        if all(isinstance(text, str) for text in item):
            return tuple(item)
    raise InputError(
        "next-sentence-prediction takes (text, text_pair) pairs: two strings, "
        "a dict with keys 'text' and 'text_pair', or a list of those. "
        f"Received: {type(item).__name__} {str(item)[:80]!r}"
    )
