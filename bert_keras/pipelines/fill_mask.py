"""`fill-mask`: the most likely tokens for each `[MASK]` in a text."""

import numpy as np

from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.pipelines.base import Pipeline
from bert_keras.pipelines.base import as_text_list
from bert_keras.pipelines.base import softmax
from bert_keras.pipelines.base import split_features


class FillMaskPipeline(Pipeline):
    """Predicts the tokens hidden behind the tokenizer's mask token.

    Call options: `top_k` (int, default 5), `targets` (a token or list of
    tokens to score instead of the whole vocabulary; a word that is not one
    token is replaced by its first token) and `tokenizer_kwargs` (dict passed
    to the tokenizer, e.g. `{"truncation": True}`).

    Returns, as transformers does, for each text a list of
    `{"score", "token", "token_str", "sequence"}` dicts, best first; a text
    with several masks gets one such list per mask.

    Example:

    >>> from bert_keras.pipelines import pipeline
    >>> fill = pipeline("fill-mask", model=path)  # MiniLM: an untrained MLM head
    >>> fill("Paris is the [MASK] of France.", top_k=1)
    [{'score': ..., 'token': ..., 'token_str': '...', 'sequence': 'paris is the ...'}]
    """

    task = "fill-mask"
    model_classes = ("BertForMaskedLM", "BertForPreTraining")
    call_options = ("top_k", "targets", "tokenizer_kwargs")

    def __call__(self, inputs, **options):
        options = self.options(options)
        texts, single = as_text_list(inputs, self.task)
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            raise ConfigError(
                "The fill-mask pipeline needs a tokenizer with a mask token. "
                f"Received: {type(self.tokenizer).__name__} with mask_token=None"
            )
        target_ids = self._target_ids(options.get("targets"))
        encoding = self.tokenizer(texts, **(options.get("tokenizer_kwargs") or {}))
        features = split_features(encoding)
        for text, feature in zip(texts, features, strict=True):
            if mask_id not in feature["input_ids"]:
                raise InputError(
                    f"Each fill-mask input needs at least one "
                    f"{self.tokenizer.mask_token} token. Received: {text!r}"
                )
        rows = self.forward(features, {"logits": ("logits", "prediction_logits")})
        top_k = options.get("top_k", 5)
        results = [
            self._postprocess(
                np.asarray(f["input_ids"]), row["logits"], top_k, target_ids
            )
            for f, row in zip(features, rows, strict=True)
        ]
        # transformers returns one result unwrapped for one text, even in a list.
        return results[0] if single or len(results) == 1 else results

    def _postprocess(self, input_ids, logits, top_k, target_ids):
        positions = np.flatnonzero(input_ids == self.tokenizer.mask_token_id)
        probabilities = softmax(logits[positions])  # (masks, vocab)
        if target_ids is not None:
            probabilities = probabilities[:, target_ids]
            top_k = min(top_k, len(target_ids))
        single_mask = len(positions) == 1
        results = []
        for position, row in zip(positions, probabilities, strict=True):
            best = np.argsort(-row, kind="stable")[:top_k]
            candidates = []
            for index in best:
                token = int(index if target_ids is None else target_ids[index])
                tokens = input_ids.copy()
                tokens[position] = token
                # Other masks stay visible when there are several.
                sequence = self.tokenizer.decode(
                    tokens[tokens != self.tokenizer.pad_token_id],
                    skip_special_tokens=single_mask,
                )
                candidates.append(
                    {
                        "score": float(row[index]),
                        "token": token,
                        "token_str": self.tokenizer.decode([token]),
                        "sequence": sequence,
                    }
                )
            results.append(candidates)
        return results[0] if single_mask else results

    def _target_ids(self, targets):
        if targets is None:
            return None
        targets = [targets] if isinstance(targets, str) else list(targets)
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            if target in vocab:
                ids.append(vocab[target])
                continue
            pieces = self.tokenizer(target, add_special_tokens=False)["input_ids"]
            if pieces:
                ids.append(pieces[0])
        if not ids:
            raise InputError(
                "None of the fill-mask `targets` maps to a vocabulary token. "
                f"Expected tokens of the tokenizer's vocabulary. Received: "
                f"targets={targets!r}"
            )
        return np.array(sorted(set(ids)))
