"""TFLite export of the id-input signature, run with the LiteRT interpreter.

The TFLite file holds the model over token ids (`input_ids`,
`token_type_ids`, `attention_mask`, int32) and returns its outputs by HF
name in float32, as the SavedModel's `serve_ids` signature does. The batch
is dynamic; the sequence is fixed at `max_length`, so the caller pads to it
as the HF tokenizer does with `padding="max_length"` (a dynamic sequence
length needs a TensorFlow `StridedSlice` that only the Flex delegate runs).

The string signature is not converted: the in-graph tokenizer's Unicode and
ragged TensorFlow ops have no LiteRT kernels, and the ai-edge-litert wheel
has no Flex delegate (docs/serving.md: what was tried).

Conversion goes through a Keras `ExportArchive` SavedModel: handing the
converter a concrete function over a Keras 3 model's variables leaves them as
resource variables nobody initialises, and the `.tflite` then returns NaN.
"""

import os
import tempfile

import keras
import tensorflow as tf

from bert_keras.errors import ConfigError
from bert_keras.serving.api import write_model_file
from bert_keras.serving.savedmodel import IDS_SIGNATURE
from bert_keras.serving.savedmodel import ids_function


def convert_to_tflite(model, max_length=128, int8=False):
    """Converts `model`'s id-input signature to a TFLite flatbuffer.

    Args:
        model: a bert_keras model (any task class).
        max_length: int, the fixed sequence length.
        int8: bool; True quantizes the weights to int8 (dynamic-range
            quantization: activations stay float32, about 4x smaller).

    Returns:
        bytes, the `.tflite` model, with one signature `serve_ids`.

    Example:

    >>> flatbuffer = convert_to_tflite(model, max_length=7)
    >>> flatbuffer[4:8]  # the TFLite file identifier
    b'TFL3'
    """
    if max_length is None:
        raise ConfigError(
            "TFLite exports need a fixed sequence length: with a dynamic one "
            "the encoder needs TensorFlow ops (StridedSlice) that only the "
            "Flex delegate runs, which the LiteRT interpreter does not have. "
            "Pass max_length=N and pad inputs to N tokens. "
            "Received: max_length=None"
        )
    function = ids_function(model, max_length)
    with tempfile.TemporaryDirectory() as directory:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(IDS_SIGNATURE, function)
        archive.write_out(directory, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            directory, signature_keys=[IDS_SIGNATURE]
        )
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def export_tflite(model, path, max_length=128, int8=False):
    """Writes `model`'s id-input signature as a `.tflite` file.

    Args:
        model: a bert_keras model (any task class).
        path: str or path of the file to write (its folder is created).
        max_length: int, the fixed sequence length inputs are padded to.
        int8: bool, dynamic-range int8 weights (see `convert_to_tflite`).

    Returns:
        str, the path written.

    Example:

    >>> export_tflite(model, "exported/model.tflite", max_length=7)
    'exported/model.tflite'
    """
    flatbuffer = convert_to_tflite(model, max_length=max_length, int8=int8)
    return write_model_file(path, flatbuffer)


def tflite_runner(model, num_threads=None):
    """The LiteRT interpreter's runner of a `.tflite` id-input model.

    Args:
        model: str or path of a `.tflite` file, or its bytes.
        num_threads: int, CPU threads (None: LiteRT's default).

    Returns:
        a callable `runner(input_ids=..., token_type_ids=...,
        attention_mask=...)` of int32 numpy arrays, returning a dict of numpy
        outputs by HF name. A new batch size resizes the inputs.

    Example:

    >>> runner = tflite_runner(convert_to_tflite(model, max_length=7))
    >>> ids = {name: value.astype("int32") for name, value in inputs.items()}
    >>> runner(**ids)["last_hidden_state"].shape
    (3, 7, 32)
    """
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes):
        interpreter = Interpreter(model_content=model, num_threads=num_threads)
    else:
        interpreter = Interpreter(model_path=os.fspath(model), num_threads=num_threads)
    return interpreter.get_signature_runner(IDS_SIGNATURE)
