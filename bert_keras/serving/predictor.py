"""`Predictor`: a model's inference traced once on a weight snapshot."""

import numpy as np
import tensorflow as tf

from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.kernels import snapshot
from bert_keras.modeling.outputs import ModelOutput
from bert_keras.serving.savedmodel import ID_NAMES
from bert_keras.serving.savedmodel import id_input_signature
from bert_keras.serving.savedmodel import model_outputs
from bert_keras.training.inputs import check_inputs
from bert_keras.training.inputs import graph_errors_as_input_errors

_DEFAULTS = {"attention_mask": 1, "token_type_ids": 0}
RUNTIMES = ("tensorflow", "onnxruntime")


class Predictor:
    """The fastest in-process call of a model: numpy ids in, numpy outputs out.

    A snapshot of `model` for inference: its forward pass traced once for any
    batch size and sequence length, on the weights' values when the
    Predictor is made. That lets it do once what `model(...)` or `predict`
    redo at every call (casting weights to bfloat16 under mixed precision,
    packing the query, key and value projections into one product) and skips
    Keras' per-call work. Outputs equal `model(inputs, training=False)` up to
    float rounding (tests/test_predictor.py), in float32. Training the model
    afterwards does not change a Predictor: make a new one.

    `runtime="onnxruntime"` converts the model to ONNX once (tf2onnx, a few
    seconds to a minute) and runs it with ONNX Runtime instead of
    TensorFlow: faster for single requests in float32 (docs/serving.md),
    with the same inputs, checks and outputs. It needs `bert_keras[export]`
    and a float32 model (ONNX Runtime has no bfloat16 CPU kernels).

    Args:
        model: any bert_keras model (`BertModel`, `BertFor*`), built.
        runtime: `"tensorflow"` (default) or `"onnxruntime"`.
        num_threads: int or None, ONNX Runtime's intra-op threads (None: its
            default, one per core); TensorFlow's are set process-wide with
            `tf.config.threading`.

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
        ConfigError (when made): an unknown runtime, `num_threads` without
            ONNX Runtime, a bfloat16 model for ONNX Runtime, or ONNX Runtime
            or tf2onnx not installed.

    Example:

    >>> predictor = Predictor(model)
    >>> sorted(predictor(np.array([[2, 7, 3]])))
    ['last_hidden_state', 'pooler_output']
    """

    def __init__(self, model, runtime="tensorflow", num_threads=None):
        if runtime not in RUNTIMES:
            raise ConfigError(
                f"Predictor runtime must be one of {RUNTIMES}. Received: "
                f"runtime={runtime!r}"
            )
        if num_threads is not None and runtime != "onnxruntime":
            raise ConfigError(
                "num_threads sets ONNX Runtime's threads; TensorFlow's are set "
                "for the process with tf.config.threading."
                "set_intra_op_parallelism_threads. Pass runtime='onnxruntime' "
                f"or drop num_threads. Received: num_threads={num_threads}"
            )
        self.model = model
        self.runtime = runtime
        self.input_rank = model.input_rank
        self._session = None
        if runtime == "onnxruntime":
            self._session = _onnx_session(model, num_threads)
            self.output_names = tuple(o.name for o in self._session.get_outputs())
            return
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
        if self._session is not None:
            # The ONNX graph has no asserts: the model's checks run here.
            check_inputs(self.model, {k: tf.constant(v) for k, v in feeds.items()})
            values = self._session.run(list(self.output_names), feeds)
            return ModelOutput(
                (name, value.astype(np.float32, copy=False))
                for name, value in zip(self.output_names, values)
            )
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
        runtime = "" if self.runtime == "tensorflow" else f", runtime={self.runtime!r}"
        return (
            f"Predictor({type(self.model).__name__}{runtime}, "
            f"outputs={list(self.output_names)})"
        )


def _onnx_session(model, num_threads):
    """`model` converted to ONNX (any batch and length), in an ORT session."""
    compute = model.dtype_policy.compute_dtype
    if compute != "float32":
        raise ConfigError(
            "runtime='onnxruntime' runs float32 models: ONNX Runtime has no "
            f"bfloat16 CPU kernels. This model computes in {compute} "
            f"(policy {model.dtype_policy.name}). Load it with "
            "from_pretrained(..., dtype='float32') for ONNX Runtime, or keep "
            "runtime='tensorflow'."
        )
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            "runtime='onnxruntime' needs onnxruntime and tf2onnx: "
            f"pip install 'bert_keras[export]'. ({error})"
        ) from error
    from bert_keras.serving.onnx import convert_to_onnx
    from bert_keras.serving.onnx import onnx_session

    # ONNX Runtime optimizes the graph as it loads it: tf2onnx's optimizer,
    # which holds copies of the weights, is skipped.
    proto = convert_to_onnx(model, max_length=None, optimize=False)
    return onnx_session(proto, num_threads)
