"""Checkpoint files on disk: find and read HF weight files.

Hugging Face stores a model's weights as `model.safetensors`, as shards listed
in `model.safetensors.index.json`, or (legacy, pickle) as `pytorch_model.bin`.
This module knows those layouts and nothing about models: it maps state-dict
keys to numpy arrays (`writing` does the reverse). Tensors are read
lazily, so shapes can be checked before a byte of weight data is loaded, and
every safetensors header is checked by our own code (`header`)
before the safetensors library reads it.
"""

import contextlib
import os

import ml_dtypes
import numpy as np
import safetensors

from bert_keras.checkpoints.files import PICKLE_WEIGHTS_INDEX_NAME
from bert_keras.checkpoints.files import PICKLE_WEIGHTS_NAME
from bert_keras.checkpoints.files import SAFE_WEIGHTS_INDEX_NAME
from bert_keras.checkpoints.files import SAFE_WEIGHTS_NAME
from bert_keras.checkpoints.files import read_json
from bert_keras.checkpoints.header import read_safetensors_header
from bert_keras.errors import CheckpointError
from bert_keras.errors import CheckpointNotFoundError
from bert_keras.errors import UnsafeCheckpointError

# safetensors' numpy binding has no bfloat16: these are read from raw bytes.
_RAW_DTYPES = {"BF16": ml_dtypes.bfloat16}


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

    >>> _ = model.save_pretrained("out/")
    >>> find_weight_files("out/")
    ['.../out/model.safetensors']
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
        return _shard_files(directory, index, suffix=os.path.splitext(name)[1])
    raise CheckpointNotFoundError(
        f"No model weights found in {directory}. Expected {SAFE_WEIGHTS_NAME}, "
        f"{SAFE_WEIGHTS_INDEX_NAME} (sharded), {PICKLE_WEIGHTS_NAME} with "
        "allow_pickle=True, or a TensorFlow checkpoint (tf_model.h5, "
        "bert_model.ckpt.index; see docs/legacy_checkpoints.md). Check that the "
        "directory is a BERT checkpoint. Received: "
        f"files={sorted(os.listdir(directory))}"
    )


def _shard_files(directory, index_path, suffix):
    index = read_json(index_path, CheckpointError)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(shard, str) for shard in weight_map.values()
    ):
        raise CheckpointError(
            f"{index_path} is not a valid index: expected JSON with a "
            '"weight_map" of {key: shard file name}. Re-save or re-download the '
            f"checkpoint. Received: weight_map={str(weight_map)[:200]}"
        )
    paths = []
    for shard in sorted(set(weight_map.values())):
        path = os.path.abspath(os.path.join(directory, shard))
        if os.path.dirname(path) != directory:
            raise CheckpointError(
                f"{index_path} points outside its directory; shard names must be "
                "plain file names. Re-save or re-download the checkpoint. "
                f"Received: shard={shard!r}"
            )
        if not shard.endswith(suffix):
            # A safetensors index naming a pickle would unpickle it unasked.
            raise CheckpointError(
                f"{index_path} lists a shard in another format; every shard of "
                f"this index must be a {suffix} file. Re-save or re-download the "
                f"checkpoint. Received: shard={shard!r}"
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

    >>> _ = model.save_pretrained("out/")
    >>> with Checkpoint(find_weight_files("out/")) as checkpoint:
    ...     array = checkpoint.read("pooler.dense.weight")
    >>> array.shape
    (32, 32)
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
        path, reader = self._readers[key]
        try:
            value = reader()
        except (safetensors.SafetensorError, OSError, ValueError) as error:
            # The header was checked on entry: the file changed since.
            raise CheckpointError(
                f"Could not read tensor {key!r} from {path}; the file changed or "
                "was damaged after it was opened. Re-download or re-save the "
                f"checkpoint. Received: {type(error).__name__}: {error}"
            ) from error
        if tuple(value.shape) != self.shapes[key]:
            raise CheckpointError(
                f"Tensor {key!r} of {path} was read with shape {value.shape}, "
                f"but its header says {self.shapes[key]}. Re-download or re-save "
                f"the checkpoint. Received: shape={value.shape}"
            )
        return value

    def _add(self, path, key, shape, reader):
        if key in self._readers:
            raise CheckpointError(
                f"Tensor {key!r} is stored twice, in {self._readers[key][0]} and "
                f"{path}; a checkpoint holds each tensor once, so which copy "
                "wins would be arbitrary. Re-save or re-download the checkpoint. "
                f"Received: files={self.files}"
            )
        self.shapes[key] = tuple(shape)
        self._readers[key] = (path, reader)

    def _open_safetensors(self, path):
        # Our own checks first, so that no corrupt header reaches the
        # safetensors library and no length field is trusted before it is
        # compared with the file size.
        data_start, entries = read_safetensors_header(path)
        try:
            handle = self._stack.enter_context(safetensors.safe_open(path, "np"))
            keys = set(handle.keys())
        except (safetensors.SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"{path} is not a readable safetensors file (truncated or "
                "corrupt?). Re-download or re-save the checkpoint. Received: "
                f"{type(error).__name__}: {error}"
            ) from error
        if keys != set(entries):
            raise CheckpointError(
                f"{path} is not a readable safetensors file: the safetensors "
                "library lists other tensors than its header. Re-download or "
                f"re-save the checkpoint. Received: {sorted(keys ^ set(entries))}"
            )
        for key, (dtype, shape, begin, end) in entries.items():
            if dtype in _RAW_DTYPES:
                start = data_start + begin
                reader = _raw_reader(path, start, end - begin, shape, dtype)
            else:
                reader = _safe_reader(handle, key)
            self._add(path, key, shape, reader)

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
            self._add(path, key, tensor.shape, _torch_reader(tensor))


def _safe_reader(handle, key):
    return lambda: handle.get_tensor(key)


def _raw_reader(path, start, length, shape, dtype_name):
    # safetensors' numpy binding has no bfloat16: read the bytes ourselves.
    dtype = _RAW_DTYPES[dtype_name]

    def read():
        with open(path, "rb") as file:
            file.seek(start)
            buffer = file.read(length)
        if len(buffer) != length:
            raise OSError(f"expected {length} bytes, read {len(buffer)}")
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
