"""Checkpoint files on disk: find, read and atomically write HF weight files.

Hugging Face stores a model's weights as `model.safetensors`, as shards listed
in `model.safetensors.index.json`, or (legacy, pickle) as `pytorch_model.bin`.
This module knows those layouts and nothing about models: it maps state-dict
keys to numpy arrays and back. Tensors are read lazily, so shapes can be checked
before a byte of weight data is loaded.
"""

import contextlib
import json
import os
import re
import struct
import tempfile

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy

from bert_keras.errors import CheckpointError
from bert_keras.errors import CheckpointNotFoundError
from bert_keras.errors import UnsafeCheckpointError

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"
PICKLE_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
# Written shards are named like transformers': model-00001-of-00003.safetensors.
_SHARD_PATTERN = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
# numpy reads these dtypes through safetensors; others are read from raw bytes.
_RAW_DTYPES = {"BF16": ml_dtypes.bfloat16}
_SIZE_UNITS = {
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "B": 1,
}


def find_weight_files(directory, *, allow_pickle=False):
    """Returns the weight files of a checkpoint directory, in the HF order.

    `model.safetensors` wins over a sharded index, which wins over the pickle
    formats; pickle files are only returned when `allow_pickle` is True.

    Args:
        directory: str, a checkpoint directory.
        allow_pickle: bool, whether `pytorch_model.bin` (a pickle, which can
            run code when loaded) may be used when no safetensors file exists.

    Returns:
        list of absolute file paths, all in one format.

    Raises:
        UnsafeCheckpointError: only pickle weights exist and `allow_pickle`
            is False.
        CheckpointNotFoundError: no weight file, or a shard the index lists
            is absent.

    Example:

    >>> find_weight_files("out/")
    ['/abs/out/model.safetensors']
    """
    directory = os.path.abspath(directory)
    for name, index_name in (
        (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME),
        (PICKLE_WEIGHTS_NAME, PICKLE_WEIGHTS_INDEX_NAME),
    ):
        is_pickle = name == PICKLE_WEIGHTS_NAME
        single = os.path.join(directory, name)
        index = os.path.join(directory, index_name)
        if not (os.path.isfile(single) or os.path.isfile(index)):
            continue
        if is_pickle and not allow_pickle:
            raise UnsafeCheckpointError(
                f"The checkpoint at {directory} only has PyTorch pickle weights "
                f"({name}). Unpickling can run arbitrary code, so bert_keras "
                "refuses it by default. Expected model.safetensors. To fix, "
                "pass allow_pickle=True if you trust the source (it is read with "
                "torch.load(weights_only=True)), or convert the file to "
                "safetensors once. Received: "
                f"files={sorted(os.listdir(directory))}"
            )
        if os.path.isfile(single):
            return [single]
        return _shard_files(directory, index)
    raise CheckpointNotFoundError(
        f"No model weights found in {directory}. Expected {SAFE_WEIGHTS_NAME}, "
        f"{SAFE_WEIGHTS_INDEX_NAME} (sharded), or {PICKLE_WEIGHTS_NAME} with "
        "allow_pickle=True. Check that the directory is a Hugging Face model "
        f"checkpoint. Received: files={sorted(os.listdir(directory))}"
    )


def _shard_files(directory, index_path):
    try:
        with open(index_path, encoding="utf-8") as file:
            weight_map = json.load(file)["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"{index_path} is not a valid index: expected JSON with a "
            '"weight_map" of {key: shard file}. Re-save or re-download the '
            f"checkpoint. Received: {type(error).__name__}: {error}"
        ) from error
    paths = []
    for shard in shards:
        path = os.path.abspath(os.path.join(directory, shard))
        if os.path.dirname(path) != directory:
            raise CheckpointError(
                f"{index_path} points outside its directory; shard names must be "
                f"plain file names. Received: shard={shard!r}"
            )
        if not os.path.isfile(path):
            raise CheckpointNotFoundError(
                f"{index_path} lists shard {shard} but the file is missing. "
                "Re-download or re-save the checkpoint. Received: "
                f"files={sorted(os.listdir(directory))}"
            )
        paths.append(path)
    return paths


class Checkpoint:
    """Lazily readable tensors of one checkpoint (one or many files).

    Use as a context manager; `shapes` is known on entry, data is read only by
    `read(key)`.

    Args:
        files: list of paths from `find_weight_files`.

    Example:

    >>> with Checkpoint(find_weight_files("out/")) as checkpoint:
    ...     array = checkpoint.read("pooler.dense.weight")
    """

    def __init__(self, files):
        self.files = list(files)
        self.shapes = {}
        self._readers = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        try:
            for path in self.files:
                if path.endswith(".safetensors"):
                    self._open_safetensors(path)
                else:
                    self._open_pickle(path)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info):
        self._stack.close()

    def read(self, key):
        """Returns the tensor stored under `key` as a numpy array."""
        return self._readers[key]()

    def _open_safetensors(self, path):
        try:
            handle = self._stack.enter_context(safetensors.safe_open(path, "np"))
            header = None
            for key in handle.keys():
                tensor_slice = handle.get_slice(key)
                self.shapes[key] = tuple(tensor_slice.get_shape())
                dtype = tensor_slice.get_dtype()
                if dtype in _RAW_DTYPES:
                    header = header or _safetensors_header(path)
                    self._readers[key] = _raw_reader(
                        path, header, key, _RAW_DTYPES[dtype]
                    )
                else:
                    self._readers[key] = _safe_reader(handle, key)
        except (
            safetensors.SafetensorError,
            OSError,
            ValueError,
            struct.error,
        ) as error:
            raise CheckpointError(
                f"{path} is not a readable safetensors file (truncated or "
                "corrupt?). Re-download or re-save the checkpoint. Received: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _open_pickle(self, path):
        try:
            import torch
        except ImportError as error:
            raise CheckpointError(
                f"Reading {os.path.basename(path)} needs PyTorch, which is not "
                "installed. Install it (pip install torch) or convert the "
                f"checkpoint to safetensors. Received: {error}"
            ) from error
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for bad pickles
            raise CheckpointError(
                f"torch.load(weights_only=True) could not read {path}: it is "
                "corrupt or holds more than tensors. Convert it to safetensors "
                f"in a trusted environment. Received: {type(error).__name__}: "
                f"{error}"
            ) from error
        for key, tensor in state_dict.items():
            if not isinstance(tensor, torch.Tensor):
                continue
            self.shapes[key] = tuple(tensor.shape)
            self._readers[key] = _torch_reader(tensor)


def _safetensors_header(path):
    """Returns (offset of the data buffer, {key: entry}) of a safetensors file."""
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
    header.pop("__metadata__", None)
    return 8 + length, header


def _safe_reader(handle, key):
    return lambda: handle.get_tensor(key)


def _raw_reader(path, header, key, dtype):
    # safetensors' numpy binding has no bfloat16: read the bytes ourselves.
    data_start, entries = header
    begin, end = entries[key]["data_offsets"]
    shape = tuple(entries[key]["shape"])

    def read():
        with open(path, "rb") as file:
            file.seek(data_start + begin)
            buffer = file.read(end - begin)
        return np.frombuffer(buffer, dtype=dtype).reshape(shape).copy()

    return read


def _torch_reader(tensor):
    import torch

    def read():
        value = tensor.detach().cpu().contiguous()
        if value.dtype == torch.bfloat16:
            return value.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return value.numpy()

    return read


def parse_size(size):
    """Returns a byte count from an int or a string such as `"5GB"`, `"200MiB"`.

    Example:

    >>> parse_size("10KB")
    10000
    """
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    if isinstance(size, str):
        match = re.fullmatch(r"\s*(\d+)\s*([KMG]I?B|B)\s*", size.upper())
        if match and int(match.group(1)) > 0:
            return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    raise CheckpointError(
        "`max_shard_size` must be a positive number of bytes or a string such as "
        f"'5GB', '500MB' or '2GiB'. Received: max_shard_size={size!r}"
    )


def weight_writers(tensors, max_shard_size=None):
    """Plans the weight files of a save: one file, or shards plus an index.

    Args:
        tensors: dict `{hf_key: numpy array}` in torch layout.
        max_shard_size: int bytes or None (no limit). When the tensors exceed
            it, they are split in key order into
            `model-00001-of-0000n.safetensors` shards (a tensor larger than
            the limit gets one of its own) listed in
            `model.safetensors.index.json`, as transformers writes them.

    Returns:
        dict `{file_name: write(path)}` for `write_atomically`.

    Example:

    >>> sorted(weight_writers({"bias": np.zeros(3, "float32")}))
    ['model.safetensors']
    """
    shards, current, current_size = [], {}, 0
    for key in sorted(tensors):
        size = tensors[key].nbytes
        if current and max_shard_size and current_size + size > max_shard_size:
            shards.append(current)
            current, current_size = {}, 0
        current[key] = tensors[key]
        current_size += size
    shards.append(current)
    if len(shards) == 1:
        return {SAFE_WEIGHTS_NAME: safetensors_writer(tensors)}
    writers, weight_map = {}, {}
    for number, shard in enumerate(shards, start=1):
        name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        writers[name] = safetensors_writer(shard)
        weight_map.update(dict.fromkeys(shard, name))
    index = {
        "metadata": {
            "total_parameters": int(sum(v.size for v in tensors.values())),
            "total_size": int(sum(v.nbytes for v in tensors.values())),
        },
        "weight_map": weight_map,
    }
    writers[SAFE_WEIGHTS_INDEX_NAME] = text_writer(
        json.dumps(index, indent=2, sort_keys=True) + "\n"
    )
    return writers


def safetensors_writer(tensors):
    """Returns `write(path)` saving `{key: array}` as HF-compatible safetensors."""
    ordered = {key: np.ascontiguousarray(tensors[key]) for key in sorted(tensors)}

    def write(path):
        safetensors.numpy.save_file(ordered, path, metadata={"format": "pt"})

    return write


def text_writer(text):
    """Returns `write(path)` saving `text` as UTF-8."""

    def write(path):
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)

    return write


def write_atomically(directory, writers):
    """Writes several files so that either all are replaced or none is.

    Each file is first written to a temporary file in `directory` and
    fsynced; only when every write succeeded are they moved into place with
    `os.replace`. On any error the temporary files are removed and the
    previous files are left untouched.

    Args:
        directory: str, an existing directory.
        writers: dict `{file_name: write(path)}`.

    Returns:
        list of the final paths, in the order of `writers`.

    Example:

    >>> write_atomically("out", {"config.json": text_writer("{}")})
    ['out/config.json']
    """
    staged = []
    try:
        for name, write in writers.items():
            handle, temp_path = tempfile.mkstemp(
                prefix=f".{name}.", suffix=".tmp", dir=directory
            )
            os.close(handle)
            staged.append((temp_path, os.path.join(directory, name)))
            write(temp_path)
            with open(temp_path, "rb+") as file:
                os.fsync(file.fileno())
            os.chmod(temp_path, 0o644)
        for temp_path, final_path in staged:
            os.replace(temp_path, final_path)
    except BaseException:
        for temp_path, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp_path)
        raise
    _fsync_directory(directory)
    return [final_path for _, final_path in staged]


def remove_stale_weights(directory, written_names):
    """Deletes safetensors weight files of an earlier save that `written_names`
    replaces, so a loader never mixes two saves (e.g. an old single file
    shadowing new shards)."""
    stale = {SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME}
    for name in os.listdir(directory):
        is_weights = name in stale or _SHARD_PATTERN.match(name)
        if is_weights and name not in written_names:
            os.remove(os.path.join(directory, name))


def _fsync_directory(directory):
    # Makes the renames durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
