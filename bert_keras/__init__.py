"""bert_keras: BERT for Keras 3 with exact Hugging Face checkpoint round-trips."""

from bert_keras.errors import BertKerasError
from bert_keras.errors import CheckpointError
from bert_keras.errors import CheckpointNotFoundError
from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.errors import InvalidInputError
from bert_keras.errors import TrainingError
from bert_keras.errors import UnsafeCheckpointError
from bert_keras.errors import WorkerLostError
from bert_keras.lora import enable_lora
from bert_keras.lora import load_lora_adapter
from bert_keras.lora import lora_state
from bert_keras.lora import merge_lora
from bert_keras.lora import save_lora_adapter
from bert_keras.modeling.bert import BertModel
from bert_keras.modeling.classification import BertForMultipleChoice
from bert_keras.modeling.classification import BertForSequenceClassification
from bert_keras.modeling.classification import BertForTokenClassification
from bert_keras.modeling.outputs import ModelOutput
from bert_keras.modeling.pretraining import BertForMaskedLM
from bert_keras.modeling.pretraining import BertForNextSentencePrediction
from bert_keras.modeling.pretraining import BertForPreTraining
from bert_keras.modeling.question_answering import BertForQuestionAnswering
from bert_keras.pipelines import pipeline
from bert_keras.serving import export
from bert_keras.serving.predictor import Predictor
from bert_keras.training.distribute import make_strategy
from bert_keras.version import __version__

__all__ = [
    "AutoTokenizer",
    "BertConfig",
    "BertKerasError",
    "BertForMaskedLM",
    "BertForMultipleChoice",
    "BertForNextSentencePrediction",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "CheckpointError",
    "CheckpointNotFoundError",
    "ConfigError",
    "InputError",
    "InvalidInputError",
    "ModelOutput",
    "Predictor",
    "TrainingError",
    "UnsafeCheckpointError",
    "WorkerLostError",
    "enable_lora",
    "export",
    "load_lora_adapter",
    "lora_state",
    "merge_lora",
    "pipeline",
    "save_lora_adapter",
    "__version__",
    "make_strategy",
]


def __getattr__(name):
    # transformers is imported on first use: it takes seconds, and imports
    # torch whenever torch is installed.
    if name in ("AutoTokenizer", "BertConfig"):
        import transformers

        return getattr(transformers, name)
    if name == "InGraphBertTokenizer":  # needs TensorFlow Text: imported on use
        from bert_keras.serving.tokenizer import InGraphBertTokenizer

        return InGraphBertTokenizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
