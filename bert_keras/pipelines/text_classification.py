"""`text-classification`: labels and scores for texts or text pairs."""

import numpy as np

from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.pipelines.base import Pipeline
from bert_keras.pipelines.base import sigmoid
from bert_keras.pipelines.base import softmax
from bert_keras.pipelines.base import split_features

FUNCTIONS = {
    "softmax": softmax,
    "sigmoid": sigmoid,
    "none": lambda logits: np.asarray(logits, np.float64),
}


class TextClassificationPipeline(Pipeline):
    """Classifies texts, or `{"text": ..., "text_pair": ...}` pairs.

    Call options: `top_k` (int, or None for every label; when given, each
    input gets a list of `{"label", "score"}` sorted best first), and
    `function_to_apply` (`"softmax"`, `"sigmoid"`, `"none"`; by default
    sigmoid for one label or multi-label models, none for regression,
    softmax otherwise), plus the tokenizer's `truncation` and `max_length`.

    Without `top_k` the output is transformers' historical one: a list of one
    `{"label", "score"}` for one string, a bare dict for one pair, a list of
    dicts for a list of inputs. As in transformers, a `top_k` given to the
    constructor (not the call) wraps one string's list in another list.

    Example:

    >>> from bert_keras.pipelines import pipeline
    >>> classify = pipeline("text-classification", model=path)  # untrained head
    >>> classify("A gripping, funny film.")
    [{'label': 'LABEL_...', 'score': 0...}]
    >>> len(classify({"text": "A film.", "text_pair": "Funny."}, top_k=None))
    2
    """

    task = "text-classification"
    model_classes = ("BertForSequenceClassification",)
    call_options = ("top_k", "function_to_apply", "truncation", "max_length")

    def __call__(self, inputs, **options):
        # transformers wraps a lone string's result in a list unless this
        # call (not the constructor) gives top_k; kept for drop-in parity.
        wrap = isinstance(inputs, str) and "top_k" not in options
        options = self.options(options)
        single = isinstance(inputs, (str, dict))
        items = [inputs] if single else list(inputs)
        function = FUNCTIONS[self._function(options.get("function_to_apply"))]
        features = [self._tokenize(item, options) for item in items]
        rows = self.forward(features, {"logits": ("logits",)})
        legacy = "top_k" not in options
        results = []
        for row in rows:
            scores = function(row["logits"])
            if legacy:
                best = int(np.argmax(scores))
                results.append(
                    {"label": self._label(best), "score": float(scores[best])}
                )
                continue
            ranked = np.argsort(-scores, kind="stable")[: options["top_k"]]
            results.append(
                [{"label": self._label(i), "score": float(scores[i])} for i in ranked]
            )
        if not single:
            return results
        return [results[0]] if wrap else results[0]

    def _tokenize(self, item, options):
        kwargs = {k: options[k] for k in ("truncation", "max_length") if k in options}
        if isinstance(item, str):
            return split_features(self.tokenizer([item], **kwargs))[0]
        if (
            isinstance(item, dict)
            and set(item) <= {"text", "text_pair"}
            and "text" in item
        ):
            pair = item.get("text_pair")
            pairs = {} if pair is None else {"text_pair": [pair]}
            return split_features(self.tokenizer([item["text"]], **pairs, **kwargs))[0]
        raise InputError(
            "text-classification takes a string, a dict with keys 'text' and "
            "'text_pair', or a list of those. Received: "
            f"{type(item).__name__} {str(item)[:80]!r}"
        )

    def _function(self, name):
        if name is None or name == "default":
            problem = getattr(self.config, "problem_type", None)
            if problem == "regression":
                return "none"
            if problem == "multi_label_classification" or self.config.num_labels == 1:
                return "sigmoid"
            return "softmax"
        if str(name).lower() not in FUNCTIONS:
            raise ConfigError(
                f"Unknown function_to_apply. Expected one of "
                f"{['default', *FUNCTIONS]}. Received: function_to_apply={name!r}"
            )
        return str(name).lower()

    def _label(self, index):
        return self.config.id2label[index]
