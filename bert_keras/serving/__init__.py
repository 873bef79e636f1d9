"""Serving: BERT inputs from raw text in the graph, SavedModel, TFLite and ONNX.

`InGraphBertTokenizer` needs TensorFlow Text (`pip install bert_keras[export]`);
it is imported on first use, so `import bert_keras` works without it.
"""

from bert_keras.serving.api import FORMATS
from bert_keras.serving.api import export
from bert_keras.serving.predictor import Predictor
from bert_keras.serving.savedmodel import export_saved_model
from bert_keras.serving.savedmodel import ids_function
from bert_keras.serving.savedmodel import text_function


def __getattr__(name):
    if name == "InGraphBertTokenizer":
        from bert_keras.serving.tokenizer import InGraphBertTokenizer

        return InGraphBertTokenizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMATS",
    "InGraphBertTokenizer",
    "Predictor",
    "export",
    "export_saved_model",
    "ids_function",
    "text_function",
]
