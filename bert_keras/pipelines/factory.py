"""`pipeline(task, model=...)`: the one entry point, as in transformers."""

import os

from bert_keras.errors import ConfigError
from bert_keras.pipelines.feature_extraction import FeatureExtractionPipeline
from bert_keras.pipelines.fill_mask import FillMaskPipeline
from bert_keras.pipelines.next_sentence import NextSentencePredictionPipeline
from bert_keras.pipelines.question_answering import QuestionAnsweringPipeline
from bert_keras.pipelines.text_classification import TextClassificationPipeline
from bert_keras.pipelines.token_classification import TokenClassificationPipeline

# task: (pipeline class, bert_keras class loaded for a checkpoint directory)
TASKS = {
    "feature-extraction": (FeatureExtractionPipeline, "BertModel"),
    "fill-mask": (FillMaskPipeline, "BertForMaskedLM"),
    "next-sentence-prediction": (
        NextSentencePredictionPipeline,
        "BertForNextSentencePrediction",
    ),
    "question-answering": (QuestionAnsweringPipeline, "BertForQuestionAnswering"),
    "text-classification": (
        TextClassificationPipeline,
        "BertForSequenceClassification",
    ),
    "token-classification": (TokenClassificationPipeline, "BertForTokenClassification"),
}
TASK_ALIASES = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
}
SUPPORTED_TASKS = tuple(sorted(TASKS)) + tuple(sorted(TASK_ALIASES))


def pipeline(task, model=None, tokenizer=None, batch_size=8, **kwargs):
    """Builds a pipeline for `task` over a bert_keras model.

    Args:
        task: str, one of `SUPPORTED_TASKS`: `"fill-mask"`,
            `"text-classification"` (alias `"sentiment-analysis"`),
            `"token-classification"` (alias `"ner"`), `"question-answering"`,
            `"feature-extraction"`, `"next-sentence-prediction"`.
        model: a bert_keras model instance, or a local checkpoint directory
            (or Hub id), loaded with the task's class (e.g.
            `BertForQuestionAnswering` for `"question-answering"`).
        tokenizer: a transformers tokenizer, or a directory / Hub id for
            `transformers.AutoTokenizer`. Defaults to the model's directory.
        batch_size: int, texts (or context windows) per model call.
        **kwargs: the task's call options, used as defaults of every call
            (e.g. `top_k=3`, `aggregation_strategy="simple"`).

    Returns:
        A callable pipeline object (`FillMaskPipeline`, ...).

    Example:

    >>> embed = pipeline("feature-extraction", model=path, pooling="mean")
    >>> len(embed("A sentence to embed."))
    384
    """
    name = TASK_ALIASES.get(task, task)
    if name not in TASKS:
        raise ConfigError(
            f"Unknown pipeline task. Expected one of {SUPPORTED_TASKS}. "
            f"Received: task={task!r}"
        )
    if model is None:
        raise ConfigError(
            "bert_keras pipelines have no default model: pass `model=`, a "
            "bert_keras model or a checkpoint directory. Received: model=None"
        )
    pipeline_class, class_name = TASKS[name]
    if isinstance(model, (str, os.PathLike)):
        import bert_keras

        source = model
        model = getattr(bert_keras, class_name).from_pretrained(source)
        tokenizer = source if tokenizer is None else tokenizer
    if tokenizer is None:
        tokenizer = getattr(model.config, "_name_or_path", None) or None
    if tokenizer is None:
        raise ConfigError(
            "The pipeline needs the model's tokenizer and cannot find it: the "
            "model was not loaded from a directory. Pass `tokenizer=` (a "
            "transformers tokenizer or its directory). Received: tokenizer=None"
        )
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    return pipeline_class(model, tokenizer, batch_size=batch_size, **kwargs)
