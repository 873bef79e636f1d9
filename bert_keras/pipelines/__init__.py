"""Pipelines over bert_keras models, with transformers' call signatures.

transformers v5's pipelines run PyTorch models only; these run the Keras
models on the same inputs and return the same dicts.
"""

from bert_keras.pipelines.base import Pipeline
from bert_keras.pipelines.factory import SUPPORTED_TASKS
from bert_keras.pipelines.factory import pipeline
from bert_keras.pipelines.feature_extraction import FeatureExtractionPipeline
from bert_keras.pipelines.fill_mask import FillMaskPipeline
from bert_keras.pipelines.next_sentence import NextSentencePredictionPipeline
from bert_keras.pipelines.question_answering import QuestionAnsweringPipeline
from bert_keras.pipelines.text_classification import TextClassificationPipeline
from bert_keras.pipelines.token_classification import TokenClassificationPipeline

__all__ = [
    "FeatureExtractionPipeline",
    "FillMaskPipeline",
    "NextSentencePredictionPipeline",
    "Pipeline",
    "QuestionAnsweringPipeline",
    "SUPPORTED_TASKS",
    "TextClassificationPipeline",
    "TokenClassificationPipeline",
    "pipeline",
]
