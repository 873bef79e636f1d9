"""`feature-extraction`: per-token hidden states, or pooled sentence vectors."""

import numpy as np

from bert_keras.errors import ConfigError
from bert_keras.pipelines.base import Pipeline
from bert_keras.pipelines.base import as_text_list
from bert_keras.pipelines.base import split_features

POOLINGS = (None, "mean", "cls")


class FeatureExtractionPipeline(Pipeline):
    """The encoder's last hidden states for each text.

    Call options: `pooling` (None, default: per-token features shaped
    `(1, seq, hidden)` as transformers returns them; `"mean"`: the mean over
    real tokens, as sentence-transformers checkpoints such as
    all-MiniLM-L6-v2 pool; `"cls"`: the first token's state, shaped
    `(hidden,)`), `normalize` (bool: L2-normalize pooled vectors, as
    all-MiniLM-L6-v2's sentence embeddings are; default False),
    `return_tensors` (bool: numpy arrays instead of nested lists), and the
    tokenizer's `truncation` and `max_length`.

    Example:

    >>> from bert_keras.pipelines import pipeline
    >>> embed = pipeline("feature-extraction", model=path)  # all-MiniLM-L6-v2
    >>> np.shape(embed("A sentence."))  # [CLS] a sentence . [SEP]
    (1, 5, 384)
    >>> vector = embed("A sentence.", pooling="mean", normalize=True)
    >>> len(vector), round(float(np.linalg.norm(vector)), 4)
    (384, 1.0)
    """

    task = "feature-extraction"
    model_classes = ("BertModel",)
    call_options = (
        "pooling",
        "normalize",
        "return_tensors",
        "truncation",
        "max_length",
    )

    def __call__(self, inputs, **options):
        options = self.options(options)
        pooling = options.get("pooling")
        if pooling not in POOLINGS:
            raise ConfigError(
                f"Unknown pooling. Expected one of {POOLINGS}. "
                f"Received: pooling={pooling!r}"
            )
        if options.get("normalize") and pooling is None:
            raise ConfigError(
                "`normalize=True` applies to pooled vectors; choose "
                "pooling='mean' or 'cls'. Received: pooling=None, normalize=True"
            )
        texts, single = as_text_list(inputs, self.task)
        kwargs = {k: options[k] for k in ("truncation", "max_length") if k in options}
        features = split_features(self.tokenizer(texts, **kwargs))
        rows = self.forward(features, {"states": ("last_hidden_state",)})
        results = []
        for feature, row in zip(features, rows, strict=True):
            states = row["states"][: len(feature["input_ids"])]  # (seq, hidden)
            if pooling is None:
                value = states[None]
            else:
                # The row is cut to its real tokens, so a plain mean is the masked mean.
                value = states.mean(axis=0) if pooling == "mean" else states[0]
                if options.get("normalize"):
                    value = value / max(float(np.linalg.norm(value)), 1e-12)
            results.append(value if options.get("return_tensors") else value.tolist())
        return results[0] if single else results
