"""The files of a Hugging Face checkpoint directory, and reading its JSON ones."""

import json
import os

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"
PICKLE_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
# Legacy TensorFlow checkpoints (see legacy.py).
TF_WEIGHTS_NAME = "tf_model.h5"
TF_WEIGHTS_INDEX_NAME = "tf_model.h5.index.json"
GOOGLE_CONFIG_NAME = "bert_config.json"
# Config and index JSON files are a few KB; anything past this is not one.
MAX_JSON_BYTES = 100_000_000


def read_json(path, error_type):
    """Returns the content of a small JSON file (config.json, an index).

    Raises `error_type` when the file is too large to be one, is not UTF-8 or
    is not JSON (nesting too deep for the parser included).
    """
    size = os.path.getsize(path)
    if size > MAX_JSON_BYTES:
        raise error_type(
            f"{path} is {size:,} bytes; a config or index file is a few KB and "
            f"bert_keras reads at most {MAX_JSON_BYTES:,}. Re-download or re-save "
            f"the checkpoint. Received: size={size}"
        )
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (ValueError, RecursionError) as error:  # ValueError: also bad UTF-8
        raise error_type(
            f"{path} is not valid JSON. Re-download or re-save the checkpoint. "
            f"Received: {type(error).__name__}: {str(error)[:200]}"
        ) from error
