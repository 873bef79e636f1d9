"""`bert_keras.export`: one call for every serving format."""

import os

from bert_keras.errors import ConfigError

FORMATS = ("savedmodel", "tflite", "onnx")


def export(model, path, format="savedmodel", tokenizer=None, max_length=128, **options):
    """Exports `model` for serving: a SavedModel, a `.tflite` or an `.onnx` file.

    Args:
        model: a bert_keras model (any task class).
        path: str or path; the SavedModel directory, or the file to write.
        format: `"savedmodel"` (raw strings and token ids in, TF Serving),
            `"tflite"` or `"onnx"` (token ids in, `max_length` tokens).
        tokenizer: the model's transformers tokenizer; with `"savedmodel"`
            it becomes the `serving_default` signature over raw strings.
            TFLite and ONNX take token ids only.
        max_length: int, tokens per sequence (strings are truncated, ids of
            TFLite and ONNX padded to it).
        **options: the format's own options: `text_pair`, `top_k`,
            `max_answer_length` (`export_saved_model`); `int8`
            (`export_tflite`); `opset` (`export_onnx`).

    Returns:
        str, the path written.

    Example:

    >>> export(model, "exported/", format="savedmodel")
    'exported/'
    """
    if format not in FORMATS:
        raise ConfigError(
            f"Unknown export format. Expected one of {FORMATS}. "
            f"Received: format={format!r}"
        )
    if format == "savedmodel":
        from bert_keras.serving.savedmodel import export_saved_model

        return export_saved_model(
            model, path, tokenizer=tokenizer, max_length=max_length, **options
        )
    if tokenizer is not None:
        raise ConfigError(
            f"The {format} model takes token ids, not strings: the in-graph "
            "tokenizer's ops do not convert. Tokenize with the HF tokenizer "
            "(padding='max_length'), or export format='savedmodel' for a "
            f"signature over strings. Received: format={format!r} with a tokenizer"
        )
    if format == "tflite":
        from bert_keras.serving.tflite import export_tflite

        return export_tflite(model, path, max_length=max_length, **options)
    from bert_keras.serving.onnx import export_onnx

    return export_onnx(model, path, max_length=max_length, **options)


def write_model_file(path, data):
    """Writes `data` (bytes) to `path`, creating its folder; returns str path.

    Written under a temporary name and renamed, so no half-written model is
    ever under the final name.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "wb") as file:
        file.write(data)
    os.replace(partial, path)
    return path
