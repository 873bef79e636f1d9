"""ONNX export of the id-input signature (tf2onnx), run with onnxruntime.

The ONNX model takes `input_ids`, `token_type_ids` and `attention_mask`
(int32, batch dynamic, sequence fixed at `max_length` or dynamic with
`max_length=None`) and returns the model's outputs by HF name in float32,
as the SavedModel's `serve_ids` signature does. The string signature is not
exported: ONNX has no WordPiece operator (tokenize with the HF tokenizer).

tf2onnx 1.17 converts a BERT graph under TensorFlow 2.21, Keras 3 and
NumPy 2 as it is: Keras' NumPy 2 patch of tf2onnx (`keras.src.export`) is
not needed on this graph, so it is not applied.
"""

import contextlib
import os

from bert_keras.serving.api import write_model_file
from bert_keras.serving.savedmodel import id_input_signature
from bert_keras.serving.savedmodel import ids_function

# 17 is the first opset with LayerNormalization; onnxruntime runs 7 to 23.
DEFAULT_OPSET = 17


def convert_to_onnx(model, max_length=128, opset=DEFAULT_OPSET, optimize=True):
    """Converts `model`'s id-input signature to an ONNX `ModelProto`.

    Args:
        model: a bert_keras model (any task class).
        max_length: int, the fixed sequence length (None: dynamic).
        opset: int, the ONNX opset to target.
        optimize: bool; False skips tf2onnx's ONNX graph optimizer, for a
            graph ONNX Runtime loads at once (it optimizes graphs itself):
            the optimizer holds several copies of the weights (MiniLM: peak
            memory 3.0 GB without it, 5.1 GB with it).

    Returns:
        `onnx.ModelProto`, inputs `ID_NAMES` and outputs the model's HF names.

    Example:

    >>> proto = convert_to_onnx(model, max_length=7)
    >>> [output.name for output in proto.graph.output]
    ['last_hidden_state', 'pooler_output']
    """
    import tf2onnx

    function = ids_function(model, max_length)
    signature = id_input_signature(model, max_length)
    if not optimize:
        return _convert_unoptimized(function, signature, opset)
    with _optimizer_without_graph_copies():
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=signature, opset=opset
        )
    return proto


def _convert_unoptimized(function, signature, opset):
    """`tf2onnx.convert.from_function`'s steps without the ONNX optimizer."""
    import tensorflow as tf
    import tf2onnx

    concrete = function.get_concrete_function(*signature)
    inputs = [t.name for t in concrete.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    # TensorFlow's names to the signature's (`input_ids`, `logits`, ...).
    names = tf2onnx.convert.tensor_names_from_structed(concrete, inputs, outputs)
    with tf.device("/cpu:0"):
        frozen = tf2onnx.tf_loader.from_function(concrete, inputs, outputs)
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(frozen, name="")
        onnx_graph = tf2onnx.tfonnx.process_tf_graph(
            graph,
            opset=opset,
            input_names=inputs,
            output_names=outputs,
            tensors_to_rename=names,
        )
    return onnx_graph.make_model(concrete.name)


@contextlib.contextmanager
def _optimizer_without_graph_copies():
    """tf2onnx's graph optimizer deep-copies the graph, weights included,
    before each of its passes unless TF2ONNX_CATCH_ERRORS says otherwise:
    peak memory 7.8 GB instead of 4.9 GB for MiniLM. A failing pass then
    fails the conversion instead of being skipped."""
    name = "TF2ONNX_CATCH_ERRORS"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def export_onnx(model, path, max_length=128, opset=DEFAULT_OPSET):
    """Writes `model`'s id-input signature as an `.onnx` file.

    Args:
        model: a bert_keras model (any task class).
        path: str or path of the file to write (its folder is created).
        max_length: int, the fixed sequence length inputs are padded to
            (None: any length up to `max_position_embeddings`).
        opset: int, the ONNX opset to target.

    Returns:
        str, the path written.

    Example:

    >>> export_onnx(model, "exported/model.onnx", max_length=7)
    'exported/model.onnx'
    """
    proto = convert_to_onnx(model, max_length=max_length, opset=opset)
    return write_model_file(path, proto.SerializeToString())


def onnx_session(model, num_threads=None):
    """An onnxruntime CPU `InferenceSession` of an `.onnx` id-input model.

    Args:
        model: str or path of an `.onnx` file, its bytes, or a `ModelProto`.
        num_threads: int, intra-op threads (None: onnxruntime's default).

    Returns:
        `onnxruntime.InferenceSession`; `session.run(None, feeds)` takes a
        dict of int32 numpy arrays by input name.

    Example:

    >>> session = onnx_session(convert_to_onnx(model, max_length=7))
    >>> [spec.name for spec in session.get_inputs()]
    ['input_ids', 'token_type_ids', 'attention_mask']
    >>> feeds = {name: value.astype("int32") for name, value in inputs.items()}
    >>> last_hidden_state, pooler_output = session.run(None, feeds)
    >>> last_hidden_state.shape
    (3, 7, 32)
    """
    import onnxruntime

    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif not isinstance(model, bytes):
        model = os.fspath(model)
    options = onnxruntime.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    return onnxruntime.InferenceSession(
        model, options, providers=["CPUExecutionProvider"]
    )
