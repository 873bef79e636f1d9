"""`Predictor`: a model's inference traced once on a weight snapshot."""

import numpy as np
import tensorflow as tf

from bert_keras.errors import InputError
from bert_keras.kernels import snapshot
from bert_keras.modeling.outputs import ModelOutput
from bert_keras.serving.savedmodel import ID_NAMES
from bert_keras.serving.savedmodel import id_input_signature
from bert_keras.serving.savedmodel import model_outputs
from bert_keras.training.inputs import graph_errors_as_input_errors

_DEFAULTS = {"attention_mask": 1, "token_type_ids": 0}


class Predictor:
    """The fastest in-process call of a model: numpy ids in, numpy outputs out.

    A snapshot of `model` for inference: its forward pass traced once for any
    batch size and sequence length, on a copy of the weights taken when the
    Predictor is made. That lets it do once what `model(...)` or `predict`
    redo at every call (casting weights to bfloat16 under mixed precision,
    packing the query, key and value projections into one product) and skips
    Keras' per-call work; it holds one more copy of the weights. Outputs
    equal `model(inputs, training=False)` up to float rounding
    (tests/test_predictor.py), in float32. Training the model afterwards does
    not change a Predictor: make a new one.

    Args:
        model: any bert_keras model (`BertModel`, `BertFor*`), built.

    Call args:
        input_ids: int array (batch, seq) ((batch, choices, seq) for multiple
            choice), or a mapping with HF input names (a tokenizer's output,
            `return_tensors="np"`) given alone.
        attention_mask, token_type_ids: optional, same shape; default all
            ones / all zeros, as in transformers.

    Returns:
        `bert_keras.ModelOutput` of numpy float32 arrays, the fields the
        model returns at inference (`logits`, `last_hidden_state`, ...).

    Raises:
        InputError: inputs of the wrong rank, shape or type, ids out of the
            vocabulary, or left padding; the message says which.

    Example:

    >>> predictor = Predictor(model)
    >>> sorted(predictor(np.array([[2, 7, 3]])))
    ['last_hidden_state', 'pooler_output']
    """

    def __init__(self, model):
        self.model = model
        self.input_rank = model.input_rank
        signature = id_input_signature(model, max_length=None)

        def forward(input_ids, token_type_ids, attention_mask):
            inputs = dict(zip(ID_NAMES, (input_ids, token_type_ids, attention_mask)))
            return model_outputs(model, inputs)

        traced = tf.function(forward, input_signature=signature, autograph=False)
        with snapshot.weight_snapshot(model):
            self._function = traced.get_concrete_function()
        self.output_names = tuple(self._function.structured_outputs)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
        if isinstance(input_ids, dict) or hasattr(input_ids, "keys"):
            if attention_mask is not None or token_type_ids is not None:
                raise InputError(
                    "Give the inputs either as one mapping (a tokenizer's "
                    "output) or as arrays, not both."
                )
            inputs = dict(input_ids)
            input_ids = inputs.get("input_ids")
            attention_mask = inputs.get("attention_mask")
            token_type_ids = inputs.get("token_type_ids")
        feeds = {"input_ids": self._array(input_ids, "input_ids")}
        given = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
        for name, value in given.items():
            if value is None:
                feeds[name] = np.full_like(feeds["input_ids"], _DEFAULTS[name])
            else:
                feeds[name] = self._array(value, name, feeds["input_ids"].shape)
        with graph_errors_as_input_errors():
            outputs = self._function(*(tf.constant(feeds[name]) for name in ID_NAMES))
        return ModelOutput((name, outputs[name].numpy()) for name in self.output_names)

    def _array(self, value, name, shape=None):
        if value is None:
            raise InputError(
                "Predictor inputs must contain `input_ids` (a tokenizer's "
                "output has it). Received: input_ids=None"
            )
        if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
            value = value.numpy()
        array = np.asarray(value)
        if array.dtype == bool or (
            name == "attention_mask" and np.issubdtype(array.dtype, np.floating)
        ):
            array = array != 0
        elif not np.issubdtype(array.dtype, np.integer):
            raise InputError(
                f"`{name}` must hold integer token ids. Received: {name} of "
                f"dtype {array.dtype}"
            )
        if array.ndim != self.input_rank:
            layout = "(batch, choices, seq)" if self.input_rank == 3 else "(batch, seq)"
            raise InputError(
                f"`{name}` must be {layout}: add the batch axis for one "
                f"request (ids[None]). Received: {name} of shape {array.shape}"
            )
        if shape is not None and array.shape != shape:
            raise InputError(
                f"`{name}` must have the shape of input_ids {shape}. "
                f"Received: {name} of shape {array.shape}"
            )
        if np.issubdtype(array.dtype, np.integer) and array.dtype != np.int32:
            info = np.iinfo(np.int32)
            if array.size and (array.min() < info.min or array.max() > info.max):
                raise InputError(
                    f"`{name}` holds values beyond int32. Was the text "
                    "tokenized with this model's tokenizer? Received: "
                    f"{name} with values from {array.min()} to {array.max()}"
                )
        return array.astype(np.int32, copy=False)

    def __repr__(self):
        return (
            f"Predictor({type(self.model).__name__}, outputs={list(self.output_names)})"
        )
