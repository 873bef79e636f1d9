"""Our own checks of a safetensors header, made before any library reads it.

A safetensors file is an 8-byte little-endian header length, a JSON header
mapping each tensor name to its dtype, shape and `data_offsets`, then the data
buffer. A corrupt or hostile file can lie in any of those; these checks compare
every field with the file itself (length against file size, offsets against the
buffer, byte counts against shape x dtype) before anything large is allocated,
and raise `CheckpointError` naming the file, what was expected and what was found.
"""

import json
import os
import struct

from bert_keras.errors import CheckpointError

# Every dtype bert_keras reads, with its size in bytes. numpy reads them
# through safetensors, except _RAW_DTYPES, which are read from raw bytes.
DTYPE_SIZES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "U64": 8,
    "I32": 4,
    "U32": 4,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
# The safetensors library's own cap: a header only lists tensors, and even
# 10^5 of them take a few MB. Checked before the header is read, so a corrupt
# length field cannot make us allocate its value.
_MAX_HEADER_BYTES = 100_000_000
# safetensors stores dimensions and offsets as 64-bit unsigned integers.
_MAX_COUNT = 2**64


def read_safetensors_header(path):
    """Reads and checks the header of a safetensors file.

    The format: an 8-byte little-endian header length, a JSON header of that
    length mapping each tensor name to its dtype, shape and `data_offsets`
    (relative to the data buffer that follows), then the data buffer, which
    the tensors must cover exactly, without overlap, gap or trailing bytes.

    Returns:
        `(offset of the data buffer, {key: (dtype, shape, begin, end)})`.

    Raises:
        CheckpointError: naming the file and what is wrong, before anything
            larger than the header has been read.
    """
    with open(path, "rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        if file_size < 8:
            raise _corrupt(
                path,
                "it is too short to hold the 8-byte header length",
                "at least 8 bytes",
                f"{file_size} bytes",
            )
        (length,) = struct.unpack("<Q", file.read(8))
        if length > file_size - 8 or length > _MAX_HEADER_BYTES:
            raise _corrupt(
                path,
                "its header length field is larger than the file (or than any header)",
                f"a header of at most {min(file_size - 8, _MAX_HEADER_BYTES):,} "
                f"bytes in this {file_size:,}-byte file",
                f"header length {length:,}",
            )
        text = file.read(length)
    try:
        header = json.loads(
            text.decode("utf-8"),
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError) as error:  # ValueError: also bad UTF-8
        raise _corrupt(
            path,
            "its header is not valid JSON",
            "a UTF-8 JSON object with each key once",
            f"{type(error).__name__}: {str(error)[:200]}",
        ) from error
    if not isinstance(header, dict):
        raise _corrupt(
            path, "its header is not a JSON object", "{name: tensor}", _clip(header)
        )
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(value, str) for value in metadata.values()
    ):
        raise _corrupt(
            path,
            "its __metadata__ is not a map of strings",
            '{"format": "pt"}',
            _clip(metadata),
        )
    data_size = file_size - 8 - length
    entries = {
        key: _tensor_entry(path, key, entry, data_size) for key, entry in header.items()
    }
    _check_layout(path, entries, data_size)
    return 8 + length, entries


def _tensor_entry(path, key, entry, data_size):
    """Returns `(dtype, shape, begin, end)` of one header entry, checked."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(
        entry
    ):
        raise _corrupt(
            path,
            f"the header entry of tensor {key!r} is malformed",
            'an object with "dtype", "shape" and "data_offsets"',
            _clip(entry),
        )
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise CheckpointError(
            f"Tensor {key!r} of {path} has a dtype bert_keras cannot read. "
            f"Expected one of {sorted(DTYPE_SIZES)}. Convert the checkpoint "
            "to float32, float16 or bfloat16 (or re-download it if it is "
            f"corrupt). Received: dtype={_clip(dtype)}"
        )
    if not isinstance(shape, list) or not all(map(_is_count, shape)):
        raise _corrupt(
            path,
            f"the shape of tensor {key!r} is malformed",
            "a list of non-negative integers",
            f"shape={_clip(shape)}",
        )
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(map(_is_count, offsets))
        and offsets[0] <= offsets[1]
    ):
        raise _corrupt(
            path,
            f"the data_offsets of tensor {key!r} are malformed",
            "[begin, end] with 0 <= begin <= end",
            f"data_offsets={_clip(offsets)}",
        )
    begin, end = offsets
    if end > data_size:
        raise _corrupt(
            path,
            f"the data of tensor {key!r} lies past the end of the file",
            f"data_offsets within the {data_size:,}-byte data buffer",
            f"data_offsets={offsets}",
        )
    size = _byte_size(shape, dtype)
    if size != end - begin:
        raise _corrupt(
            path,
            f"the size of tensor {key!r} does not match its shape and dtype",
            f"{size:,} bytes for shape {_clip(shape)} of {dtype}",
            f"data_offsets={offsets} ({end - begin:,} bytes)",
        )
    return dtype, tuple(shape), begin, end


def _check_layout(path, entries, data_size):
    """The tensors' data must tile the buffer: no overlap, gap or extra bytes."""
    position, previous = 0, None
    for key, (_, _, begin, end) in sorted(
        entries.items(), key=lambda item: item[1][2:]
    ):
        if begin != position:
            problem = (
                f"the data of tensors {previous!r} and {key!r} overlap"
                if begin < position
                else f"{begin - position:,} unused bytes lie before tensor {key!r}"
            )
            raise _corrupt(
                path,
                problem,
                f"tensor {key!r} to start at byte {position:,} of the data buffer",
                f"data_offsets={[begin, end]}",
            )
        position, previous = end, key
    if position != data_size:
        raise _corrupt(
            path,
            f"{data_size - position:,} bytes follow the last tensor (trailing "
            "garbage?)",
            f"a data buffer of {position:,} bytes, as the header lists",
            f"{data_size:,} bytes",
        )


def _byte_size(shape, dtype):
    if 0 in shape:
        return 0
    size = DTYPE_SIZES[dtype]
    for dim in shape:
        # A hostile header may list many huge dimensions: stop multiplying
        # once no buffer could hold the tensor, before the integers grow.
        size *= dim
        if size >= _MAX_COUNT:
            break
    return size


def _unique_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")  # Python reads NaN, Infinity


def _is_count(value):
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value < _MAX_COUNT
    )


def _clip(value):
    return repr(value)[:200]


def _corrupt(path, problem, expected, received):
    return CheckpointError(
        f"{path} is not a readable safetensors file (truncated or corrupt?): "
        f"{problem}. Expected {expected}. Re-download or re-save the checkpoint. "
        f"Received: {received}"
    )
