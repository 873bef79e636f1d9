"""`token-classification` (NER): a label for each token, word or entity."""

import numpy as np

from bert_keras.errors import ConfigError
from bert_keras.pipelines.base import Pipeline
from bert_keras.pipelines.base import as_text_list
from bert_keras.pipelines.base import softmax
from bert_keras.pipelines.base import split_features

STRATEGIES = ("none", "simple", "first", "average", "max")


class TokenClassificationPipeline(Pipeline):
    """Labels tokens and groups them into entities, with character offsets.

    Call options: `aggregation_strategy` (`"none"`, default: one dict per
    token with its `index`; `"simple"`: adjacent tokens of one tag become one
    entity; `"first"`, `"average"`, `"max"`: words first take one label, from
    their first token, their averaged scores, or their most confident token)
    and `ignore_labels` (labels left out, default `["O"]`).

    Each entity is `{"entity", "score", "index", "word", "start", "end"}`
    (strategy none) or `{"entity_group", "score", "word", "start", "end"}`;
    `text[start:end]` is its exact span. Texts are truncated to the
    tokenizer's `model_max_length`.

    Example:

    >>> from bert_keras.pipelines import pipeline
    >>> ner = pipeline("ner", model=path, aggregation_strategy="first",
    ...                ignore_labels=[])  # untrained head: LABEL_0, LABEL_1
    >>> text = "Ada Lovelace was born in London"
    >>> [text[e["start"] : e["end"]] for e in ner(text)][0].startswith("Ada")
    True
    """

    task = "token-classification"
    model_classes = ("BertForTokenClassification",)
    call_options = ("aggregation_strategy", "ignore_labels")

    def __call__(self, inputs, **options):
        options = self.options(options)
        strategy = str(options.get("aggregation_strategy") or "none").lower()
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"Unknown aggregation_strategy. Expected one of {STRATEGIES}. "
                f"Received: aggregation_strategy={options['aggregation_strategy']!r}"
            )
        ignore = options.get("ignore_labels")
        ignore = ["O"] if ignore is None else list(ignore)
        texts, single = as_text_list(inputs, self.task)
        encoding = self.tokenizer(
            texts,
            truncation=bool(self.tokenizer.model_max_length),
            return_special_tokens_mask=True,
            return_offsets_mapping=True,
        )
        rows = self.forward(split_features(encoding), {"logits": ("logits",)})
        results = []
        for index, (text, row) in enumerate(zip(texts, rows, strict=True)):
            length = len(encoding["input_ids"][index])
            tokens = self._tokens(
                text, encoding, index, softmax(row["logits"][:length])
            )
            entities = self._aggregate(tokens, strategy)
            results.append(
                [
                    entity
                    for entity in entities
                    if entity.get("entity", entity.get("entity_group")) not in ignore
                ]
            )
        return results[0] if single else results

    def _tokens(self, text, encoding, index, scores):
        """One dict per non-special token: word, scores, offsets, is_subword."""
        input_ids = encoding["input_ids"][index]
        special = encoding["special_tokens_mask"][index]
        offsets = encoding["offset_mapping"][index]
        prefix = _subword_prefix(self.tokenizer)
        tokens = []
        for position, token_scores in enumerate(scores):
            if special[position]:
                continue
            word = self.tokenizer.convert_ids_to_tokens(int(input_ids[position]))
            start, end = (int(value) for value in offsets[position])
            source = text[start:end]
            if prefix:
                # "##ing" is longer than the "ing" it covers; whole words are not.
                is_subword = len(word) != len(source)
            else:
                is_subword = start > 0 and " " not in text[start - 1 : start + 1]
            if input_ids[position] == self.tokenizer.unk_token_id:
                word, is_subword = source, False
            tokens.append(
                {
                    "word": word,
                    "scores": token_scores,
                    "start": start,
                    "end": end,
                    "index": position,
                    "is_subword": is_subword,
                }
            )
        return tokens

    def _aggregate(self, tokens, strategy):
        if strategy in ("none", "simple"):
            entities = []
            for token in tokens:
                best = int(np.argmax(token["scores"]))
                entities.append(
                    {
                        "entity": self.config.id2label[best],
                        "score": float(token["scores"][best]),
                        "index": token["index"],
                        "word": token["word"],
                        "start": token["start"],
                        "end": token["end"],
                    }
                )
            if strategy == "none":
                return entities
        else:
            entities = [self._word_entity(group, strategy) for group in _words(tokens)]
        return [self._group_entity(group) for group in _entity_runs(entities)]

    def _word_entity(self, tokens, strategy):
        """One label for a whole word, from its sub-word tokens."""
        if strategy == "first":
            scores = tokens[0]["scores"]
        elif strategy == "max":
            scores = max(tokens, key=lambda token: token["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([token["scores"] for token in tokens]), axis=0)
        best = int(np.argmax(scores))
        return {
            "entity": self.config.id2label[best],
            "score": float(scores[best]),
            "word": self.tokenizer.convert_tokens_to_string(
                [t["word"] for t in tokens]
            ),
            "start": tokens[0]["start"],
            "end": tokens[-1]["end"],
        }

    def _group_entity(self, entities):
        return {
            "entity_group": _tag(entities[0]["entity"])[1],
            "score": float(np.nanmean([entity["score"] for entity in entities])),
            "word": self.tokenizer.convert_tokens_to_string(
                [entity["word"] for entity in entities]
            ),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }


def _subword_prefix(tokenizer):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return getattr(getattr(backend, "model", None), "continuing_subword_prefix", None)


def _words(tokens):
    """Splits tokens into words: a sub-word token joins the word before it."""
    words = []
    for token in tokens:
        if words and token["is_subword"]:
            words[-1].append(token)
        else:
            words.append([token])
    return words


def _tag(label):
    """`("B" | "I", tag)`: a label without a B-/I- prefix counts as inside."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _entity_runs(entities):
    """Adjacent entities of one tag, split where a B- tag starts a new one."""
    runs = []
    for entity in entities:
        marker, tag = _tag(entity["entity"])
        if runs and marker != "B" and tag == _tag(runs[-1][-1]["entity"])[1]:
            runs[-1].append(entity)
        else:
            runs.append([entity])
    return runs
