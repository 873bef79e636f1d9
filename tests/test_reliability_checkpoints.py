"""Hostile checkpoint files: refused with bert_keras' errors, nothing run or lost.

Issue 7, the checkpoint-file cases. Every bad file ends in one of the library's
exceptions (CheckpointError, UnsafeCheckpointError, ConfigError,
CheckpointNotFoundError) whose message names the file, tensor or field, what
was expected, what was found and how to fix it; a failed call leaves no
half-loaded model, half-written file or temporary file, and a killed save
never loses the previous checkpoint.
"""

import hashlib
import json
import os
import queue
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc

import keras
import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy
import torch
import transformers
from conftest import hf_weights
from conftest import tiny_config

import bert_keras as bk
from bert_keras.checkpoints import files as checkpoint_files
from bert_keras.checkpoints import loading as weight_loading
from bert_keras.checkpoints import reading as checkpoint_io
from bert_keras.checkpoints import writing as checkpoint_writing

# Smaller than conftest's sizes (all still differ), so a load takes ms.
SMALL = dict(
    vocab_size=51,
    hidden_size=12,
    num_attention_heads=3,
    intermediate_size=17,
    num_hidden_layers=1,
    max_position_embeddings=20,
    num_labels=2,
)
# Every message says how to fix the problem, with one of these words.
FIX_HINTS = ("fix", "re-download", "re-save", "convert", "use a", "remove", "set ")


def assert_weights_equal(model, expected):
    for key, value in hf_weights(model).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


def assert_explains(error, *words):
    """The message names what is wrong, what was expected, what was found and
    how to fix it."""
    message = str(error)
    for word in words:
        assert str(word) in message, f"{word!r} not in: {message}"
    assert "Received:" in message, message
    assert any(hint in message.lower() for hint in FIX_HINTS), message


def _refuse_to_build(self, *args, **kwargs):
    raise AssertionError("the model was built before the bad input was refused")


def _forbidden(name):
    def call(*args, **kwargs):
        raise AssertionError(f"{name} was called")

    return call


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A saved tiny BertModel: config.json + model.safetensors (23 tensors)."""
    keras.utils.set_random_seed(7)
    directory = tmp_path_factory.mktemp("tiny")
    bk.BertModel(tiny_config(**SMALL)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def raw(tiny_checkpoint):
    return (tiny_checkpoint / "model.safetensors").read_bytes()


def checkpoint_copy(tiny_checkpoint, directory, weights_bytes=None):
    """A copy of the tiny checkpoint, optionally with other weight bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_checkpoint / "config.json", directory / "config.json")
    if weights_bytes is None:
        weights_bytes = (tiny_checkpoint / "model.safetensors").read_bytes()
    (directory / "model.safetensors").write_bytes(weights_bytes)
    return directory


# --- Building safetensors files by hand ---------------------------------------


def split(raw):
    """(header dict, data buffer) of a safetensors file."""
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def assemble(header, data):
    """A safetensors file from a header (dict, or JSON bytes) and a buffer."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the format pads headers with spaces
    return struct.pack("<Q", len(text)) + text + data


def by_offset(header):
    """Tensor names in data order."""
    names = [key for key in header if key != "__metadata__"]
    return sorted(names, key=lambda key: header[key]["data_offsets"])


def edited(raw, edit):
    """`raw` with `edit(header, data)` applied; `edit` returns (header, data)."""
    header, data = split(raw)
    return assemble(*edit(header, data))


def _move(header, key, delta):
    begin, end = header[key]["data_offsets"]
    header[key]["data_offsets"] = [begin + delta, end + delta]


def _set(key_index, field, value):
    def edit(header, data):
        header[by_offset(header)[key_index]][field] = value
        return header, data

    return edit


def _overlap(header, data):
    _move(header, by_offset(header)[1], -4)
    return header, data


def _gap(header, data):
    _move(header, by_offset(header)[-1], 4)
    return header, data + b"\0" * 4


def _past_the_end(header, data):
    key = by_offset(header)[-1]
    begin, end = header[key]["data_offsets"]
    header[key]["data_offsets"] = [begin + 64, end + 64]
    return header, data


def _reversed_offsets(header, data):
    key = by_offset(header)[0]
    header[key]["data_offsets"] = header[key]["data_offsets"][::-1]
    return header, data


def _wrong_size(header, data):
    key = by_offset(header)[0]
    header[key]["shape"] = [dim + 1 for dim in header[key]["shape"]]
    return header, data


def _as_dtype(dtype):
    def edit(header, data):
        key = by_offset(header)[0]
        begin, end = header[key]["data_offsets"]
        header[key].update(dtype=dtype, shape=[end - begin])  # one byte each
        return header, data

    return edit


def _drop_field(header, data):
    del header[by_offset(header)[0]]["data_offsets"]
    return header, data


def _metadata(header, data):
    header["__metadata__"] = {"format": 5}
    return header, data


def _duplicate_key(raw):
    header, data = split(raw)
    first = by_offset(header)[0]
    pairs = [json.dumps(key) + ":" + json.dumps(header[key]) for key in header]
    pairs.append(json.dumps(first) + ":" + json.dumps(header[first]))
    return assemble(("{" + ",".join(pairs) + "}").encode(), data)


def _with_length(length):
    return lambda raw: struct.pack("<Q", length) + raw[8:]


def _header_length(raw):
    return struct.unpack("<Q", raw[:8])[0]


# (case id, make(raw) -> bytes, words the message must hold)
HOSTILE_FILES = [
    ("empty", lambda raw: b"", ["too short", "0 bytes"]),
    ("length-field-cut", lambda raw: raw[:5], ["too short", "5 bytes"]),
    (
        "header-length-2**60",
        _with_length(2**60),
        ["header length 1,152,921,504,606,846,976"],
    ),
    ("header-length-max-u64", _with_length(2**64 - 1), ["header length"]),
    (
        "truncated-in-header",
        lambda raw: raw[: 8 + _header_length(raw) // 2],
        ["header length"],
    ),
    ("truncated-in-data", lambda raw: raw[:-7], ["past the end"]),
    ("trailing-garbage", lambda raw: raw + b"\0garbage", ["trailing garbage"]),
    (
        "header-not-json",
        lambda raw: assemble(b"this is not json", split(raw)[1]),
        ["not valid JSON"],
    ),
    (
        "header-not-utf8",
        lambda raw: assemble(b"\xff\xfe" * 8, split(raw)[1]),
        ["not valid JSON", "UnicodeDecodeError"],
    ),
    (
        "header-nested-too-deep",
        lambda raw: assemble(b"[" * 100_000 + b"]" * 100_000, split(raw)[1]),
        ["not valid JSON", "RecursionError"],
    ),
    (
        "header-not-an-object",
        lambda raw: assemble(b"[1, 2]", split(raw)[1]),
        ["not a JSON object"],
    ),
    ("duplicate-key", _duplicate_key, ["duplicate key"]),
    ("overlapping-offsets", lambda raw: edited(raw, _overlap), ["overlap"]),
    ("gap-between-tensors", lambda raw: edited(raw, _gap), ["unused bytes"]),
    ("offsets-out-of-bounds", lambda raw: edited(raw, _past_the_end), ["past the"]),
    ("offsets-reversed", lambda raw: edited(raw, _reversed_offsets), ["malformed"]),
    (
        "offset-negative",
        lambda raw: edited(raw, _set(0, "data_offsets", [-4, 4])),
        ["malformed"],
    ),
    (
        "shape-size-mismatch",
        lambda raw: edited(raw, _wrong_size),
        ["does not match its shape and dtype"],
    ),
    (
        "shape-float",
        lambda raw: edited(raw, _set(0, "shape", [12.0])),
        ["shape", "malformed"],
    ),
    (
        "shape-bool",
        lambda raw: edited(raw, _set(0, "shape", [True])),
        ["shape", "malformed"],
    ),
    (
        "shape-huge-dimensions",
        lambda raw: edited(raw, _set(0, "shape", [2**63] * 10_000)),
        ["does not match"],
    ),
    ("dtype-unknown", lambda raw: edited(raw, _as_dtype("X42")), ["'X42'", "F32"]),
    ("dtype-fp8", lambda raw: edited(raw, _as_dtype("F8_E4M3")), ["'F8_E4M3'"]),
    ("dtype-complex", lambda raw: edited(raw, _as_dtype("C64")), ["'C64'"]),
    (
        "dtype-not-a-string",
        lambda raw: edited(raw, _set(0, "dtype", ["F32"])),
        ["dtype", "['F32']"],
    ),
    ("entry-without-offsets", lambda raw: edited(raw, _drop_field), ["malformed"]),
    ("metadata-not-strings", lambda raw: edited(raw, _metadata), ["__metadata__"]),
]


# --- 1. Hostile safetensors files -----------------------------------------------


@pytest.mark.parametrize(
    ("make", "words"),
    [case[1:] for case in HOSTILE_FILES],
    ids=[case[0] for case in HOSTILE_FILES],
)
def test_hostile_safetensors_refused_by_our_own_checks(
    tiny_checkpoint, raw, tmp_path, monkeypatch, make, words
):
    """Refused before the safetensors library or the model sees the file."""
    directory = checkpoint_copy(tiny_checkpoint, tmp_path / "hostile", make(raw))
    path = directory / "model.safetensors"
    before = path.read_bytes()
    monkeypatch.setattr(safetensors, "safe_open", _forbidden("safe_open"))

    with pytest.raises(bk.CheckpointError) as error:
        checkpoint_io.Checkpoint([str(path)]).__enter__()
    assert_explains(error.value, path, "Expected", *words)

    monkeypatch.setattr(bk.BertModel, "__init__", _refuse_to_build)
    with pytest.raises(bk.CheckpointError) as error:
        bk.BertModel.from_pretrained(directory)
    assert_explains(error.value, path, *words)
    assert path.read_bytes() == before
    assert sorted(os.listdir(directory)) == ["config.json", "model.safetensors"]


def test_lying_header_length_allocates_nothing_large(raw, tmp_path):
    """A length field of 2**60 is compared with the file size before any read."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(_with_length(2**60)(raw))
    tracemalloc.start()
    try:
        with pytest.raises(bk.CheckpointError, match="header length"):
            checkpoint_io.Checkpoint([str(path)]).__enter__()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"peak Python allocation {peak} bytes"


def test_unusual_but_valid_files_still_load(tmp_path):
    """The checks refuse no valid file: every dtype read, empty tensors,
    scalars, bfloat16, padded headers and a file without tensors."""
    rng = np.random.default_rng(0)
    tensors = {
        dtype: rng.integers(0, 100, (2, 3)).astype(dtype)
        for dtype in (
            "float64",
            "float32",
            "float16",
            "int64",
            "uint64",
            "int32",
            "uint32",
            "int16",
            "uint16",
            "int8",
            "uint8",
            "bool",
        )
    }
    tensors["empty"] = np.zeros((0, 4), "float32")
    tensors["scalar"] = np.array(1.5, "float32")
    path = tmp_path / "numpy.safetensors"
    safetensors.numpy.save_file(tensors, path, metadata={"format": "pt"})
    with checkpoint_io.Checkpoint([str(path)]) as checkpoint:
        assert checkpoint.shapes == {key: value.shape for key, value in tensors.items()}
        for key, value in tensors.items():
            np.testing.assert_array_equal(checkpoint.read(key), value, err_msg=key)

    bfloat16 = np.array([1.5, -2.0, 3.25], ml_dtypes.bfloat16)
    header = {"b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}
    path = tmp_path / "bfloat16.safetensors"
    path.write_bytes(assemble(b"  " + json.dumps(header).encode(), bfloat16.tobytes()))
    with checkpoint_io.Checkpoint([str(path)]) as checkpoint:
        np.testing.assert_array_equal(checkpoint.read("b"), bfloat16)

    path = tmp_path / "nothing.safetensors"
    path.write_bytes(assemble({"__metadata__": {"format": "pt"}}, b""))
    with checkpoint_io.Checkpoint([str(path)]) as checkpoint:
        assert checkpoint.shapes == {}


@pytest.fixture(scope="module")
def sharded_checkpoint(tmp_path_factory):
    keras.utils.set_random_seed(8)
    directory = tmp_path_factory.mktemp("sharded")
    bk.BertModel(tiny_config(**SMALL)).save_pretrained(directory, max_shard_size="4KB")
    return directory


def _index_weight_map_list(directory, index):
    index["weight_map"] = list(index["weight_map"])


def _index_shard_not_a_string(directory, index):
    index["weight_map"]["pooler.dense.bias"] = 5


def _index_outside(directory, index):
    index["weight_map"]["pooler.dense.bias"] = "../elsewhere.safetensors"


def _index_pickle_shard(directory, index):
    torch.save({"pooler.dense.bias": torch.zeros(12)}, directory / "pytorch_model.bin")
    index["weight_map"]["pooler.dense.bias"] = "pytorch_model.bin"


def _index_duplicate_tensor(directory, index):
    first = sorted(set(index["weight_map"].values()))[0]
    shutil.copy(directory / first, directory / "copy.safetensors")
    index["weight_map"]["another.key"] = "copy.safetensors"


HOSTILE_INDEXES = [
    ("weight-map-a-list", _index_weight_map_list, ["not a valid index"]),
    ("shard-not-a-string", _index_shard_not_a_string, ["not a valid index"]),
    ("shard-outside-directory", _index_outside, ["outside its directory"]),
    ("safetensors-index-naming-a-pickle", _index_pickle_shard, ["another format"]),
    ("tensor-in-two-shards", _index_duplicate_tensor, ["stored twice"]),
]


@pytest.mark.parametrize(
    ("edit", "words"),
    [case[1:] for case in HOSTILE_INDEXES],
    ids=[case[0] for case in HOSTILE_INDEXES],
)
def test_hostile_shard_index_refused(
    sharded_checkpoint, tmp_path, monkeypatch, edit, words
):
    directory = tmp_path / "sharded"
    shutil.copytree(sharded_checkpoint, directory)
    index_path = directory / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    edit(directory, index)
    index_path.write_text(json.dumps(index))
    monkeypatch.setattr(bk.BertModel, "__init__", _refuse_to_build)
    # A safetensors index must never make us unpickle anything.
    monkeypatch.setattr(torch, "load", _forbidden("torch.load"))

    with pytest.raises(bk.CheckpointError) as error:
        bk.BertModel.from_pretrained(directory)
    assert_explains(error.value, *words)


def test_index_nested_too_deep_is_a_checkpoint_error(sharded_checkpoint, tmp_path):
    directory = tmp_path / "sharded"
    shutil.copytree(sharded_checkpoint, directory)
    index_path = directory / "model.safetensors.index.json"
    index_path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(bk.CheckpointError) as error:
        bk.BertModel.from_pretrained(directory)
    assert_explains(error.value, index_path, "not valid JSON", "RecursionError")


# --- 2. Mutation fuzz -------------------------------------------------------------

FUZZ_SEED = 20240607
READER_CASES = 10_000
MODEL_CASES = 300
# CPU seconds one case may take before it counts as a hang (CPU time, so a
# busy machine does not make it flaky): reading the tiny file takes ~1 ms, a
# load into a model at most ~0.5 s (the first traces TensorFlow functions).
READER_CPU_LIMIT = 1.0
MODEL_CPU_LIMIT = 10.0
# Wall-clock seconds after which a case is interrupted as hung (a deadlock
# burns no CPU).
CASE_WALL_LIMIT = 60
JSON_BYTES = b'{}[],:"0123456789-.eE +tfnul\\ '
DTYPES = ["F32", "F16", "BF16", "F64", "I32", "U32", "I64", "I8", "U8", "BOOL"]
DTYPES += ["C64", "F8_E4M3", "F8_E5M2", "f32", "", "X9", None, 4, ["F32"]]
ODD_VALUES = [-1, 0, 1, 2, 3, 4, 7, 2**31, 2**32, 2**53 + 1, 2**63, 2**64]
ODD_VALUES += [2**64 + 1, 10**30, -(2**63), 1.5, float("nan"), "4", None, True]
ODD_VALUES += [[], {}, [1, 2]]


class _Hang(BaseException):
    """A case ran past CASE_WALL_LIMIT."""


def _on_alarm(signum, frame):
    raise _Hang()


def _ints(value, default):
    """`value` if it is a list of integers (an earlier edit may have broken
    it), else `default`."""
    if isinstance(value, list) and all(type(item) is int for item in value):
        return value
    return default


def _json_edit(header, rng):
    """Edits one field of one tensor (or the header) the way corruption or an
    attacker would; returns a description."""
    names = [key for key in header if key != "__metadata__"] or ["t"]
    key = rng.choice(names)
    entry = header.get(key)
    if not isinstance(entry, dict):
        entry = header[key] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    kind = rng.choice(
        ["offsets", "shape", "reshape", "dtype", "retype", "entry", "metadata"]
    )
    if kind == "offsets":
        begin, end = (_ints(entry.get("data_offsets"), []) + [0, 0])[:2]
        other = header.get(rng.choice(names))
        other = _ints(other.get("data_offsets") if isinstance(other, dict) else 0, [])
        delta = rng.choice([-8, -4, -1, 1, 2, 4, 8, 64])
        entry["data_offsets"] = rng.choice(
            [
                [begin, end + delta],
                [begin + delta, end],
                [begin + delta, end + delta],
                [end, begin],
                other,
                [rng.choice(ODD_VALUES), rng.choice(ODD_VALUES)],
                [begin],
                [begin, end, end],
                rng.choice(ODD_VALUES),
            ]
        )
    elif kind == "shape":
        shape = _ints(entry.get("shape"), [1])
        entry["shape"] = rng.choice(
            [
                shape + [1],
                [1] + shape,
                shape[:-1],
                [dim + rng.choice([-1, 1]) for dim in shape],
                [rng.choice(ODD_VALUES)] + shape[1:],
                [],
                rng.choice(ODD_VALUES),
                [shape],
            ]
        )
    elif kind == "reshape":  # same number of elements: passes the file checks
        shape = _ints(entry.get("shape"), [1])
        size = int(np.prod(shape, dtype=object))
        entry["shape"] = rng.choice([shape[::-1], [size], [size, 1], [1] + shape])
    elif kind == "dtype":
        entry["dtype"] = rng.choice(DTYPES)
    elif kind == "retype":  # same byte size: passes the file checks
        sizes = {"F32": ["I32", "U32"], "F16": ["I16", "BF16"], "BF16": ["F16"]}
        dtype = entry.get("dtype")
        entry["dtype"] = rng.choice(
            sizes.get(dtype, ["F32"]) if type(dtype) is str else ["F32"]
        )
    elif kind == "entry":
        choice = rng.randrange(6)
        if choice == 0:
            del header[key]
        elif choice == 1 and entry:
            del entry[rng.choice(sorted(entry))]
        elif choice == 2:
            entry["extra"] = rng.choice(ODD_VALUES)
        elif choice == 3:
            header[key] = rng.choice(ODD_VALUES)
        elif choice == 4:  # a renamed tensor: missing and unexpected keys
            header[key[:-1] + rng.choice("xyz.")] = header.pop(key)
        else:
            header[f"extra.{rng.randrange(99)}"] = dict(entry)
    else:
        header["__metadata__"] = rng.choice(
            [5, {"format": 5}, [], {"format": "pt", "x": None}, "pt", {}]
        )
    return f"json:{kind}:{key}"


def _serialize(header, rng):
    """Header JSON, sometimes with a key repeated."""
    items = list(header.items()) if isinstance(header, dict) else []
    if items and rng.random() < 0.1:
        items.insert(rng.randrange(len(items) + 1), rng.choice(items))
        body = ",".join(json.dumps(k) + ":" + json.dumps(v) for k, v in items)
        return ("{" + body + "}").encode()
    return json.dumps(header).encode()


def mutate(raw, rng):
    """One seeded mutation of a safetensors file: `(description, bytes)`."""
    kind = rng.choices(
        ["byte", "header-byte", "truncate", "extend", "length", "splice", "json"],
        weights=[12, 12, 6, 5, 6, 6, 40],
    )[0]
    data = bytearray(raw)
    length = _header_length(raw) if len(raw) >= 8 else 0
    header_end = min(8 + length, len(raw))
    if kind == "byte" and data:
        position = rng.randrange(len(data))
        if rng.random() < 0.5:
            data[position] ^= 1 << rng.randrange(8)
        else:
            data[position] = rng.randrange(256)
        return f"byte@{position}", bytes(data)
    if kind == "header-byte" and header_end > 8:
        position = rng.randrange(8, header_end)
        data[position] = rng.choice(JSON_BYTES)
        return f"header-byte@{position}", bytes(data)
    if kind == "truncate":
        size = rng.randrange(len(raw)) if raw else 0
        return f"truncate@{size}", raw[:size]
    if kind == "extend":
        return "extend", raw + rng.randbytes(rng.randint(1, 64))
    if kind == "length":
        new = rng.choice(
            [0, 1, length - 1, length + 1, length - 8, length + 8, len(raw) - 8]
            + [len(raw), 2**60, 2**63, 2**64 - 1, rng.getrandbits(64)]
        )
        return f"length={new}", _with_length(max(new, 0) % 2**64)(raw)
    if kind == "splice" and header_end > 8:
        position = rng.randrange(8, header_end)
        if rng.random() < 0.5:
            insert = bytes(rng.choice(JSON_BYTES) for _ in range(rng.randint(1, 8)))
            data[position:position] = insert
        else:
            del data[position : position + rng.randint(1, 8)]
        return f"splice@{position}", bytes(data)
    try:
        header, buffer = split(raw)
    except (ValueError, struct.error, RecursionError):
        return mutate(raw, rng)  # no header left to edit: mutate the bytes
    if not isinstance(header, dict):
        return mutate(raw, rng)
    description = _json_edit(header, rng)
    text = _serialize(header, rng)
    text += b" " * (-len(text) % 8)
    # Now and then the length field is left as it was: a lie.
    new_length = length if rng.random() < 0.05 else len(text)
    return description, struct.pack("<Q", new_length) + text + buffer


def mutations(raw, rng):
    """Single mutations, and now and then two or three in a row."""
    while True:
        description, data = mutate(raw, rng)
        for _ in range(rng.choice([0, 0, 0, 0, 1, 2])):
            more, data = mutate(data, rng)
            description += " + " + more
        yield description, data


class FuzzLog:
    """Outcome counts; a crash is any exception outside bert_keras' own."""

    def __init__(self, name, seed, cpu_limit):
        self.name = name
        self.seed = seed
        self.cpu_limit = cpu_limit
        self.tried = self.loaded = self.rejected = 0
        self.crashes, self.hangs, self.unnamed = [], [], []
        # Files our own checks passed but the safetensors library refused.
        self.by_library = []
        self.slowest = 0.0

    def run(self, case, description, attempt, file_name):
        self.tried += 1
        started = time.process_time()
        signal.setitimer(signal.ITIMER_REAL, CASE_WALL_LIMIT)
        try:
            attempt()
            self.loaded += 1
        except bk.BertKerasError as error:
            self.rejected += 1
            if file_name not in str(error):
                self.unnamed.append((case, description, str(error)[:300]))
            if isinstance(error.__cause__, safetensors.SafetensorError):
                self.by_library.append((case, description, str(error)[:300]))
        except _Hang:
            self.hangs.append((case, description, "wall-clock limit"))
        except Exception as error:
            self.crashes.append((case, description, repr(error)[:300]))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.process_time() - started
        self.slowest = max(self.slowest, elapsed)
        if elapsed > self.cpu_limit:
            self.hangs.append((case, description, f"{elapsed:.2f} CPU s"))

    def report(self):
        print(
            f"\n[{self.name}] seed={self.seed} mutations tried={self.tried} "
            f"loaded fine={self.loaded} rejected={self.rejected} "
            f"crashes={len(self.crashes)} hangs={len(self.hangs)} "
            f"unnamed-file messages={len(self.unnamed)} "
            f"left to the safetensors library={len(self.by_library)} "
            f"slowest case={self.slowest * 1000:.1f} CPU ms"
        )
        for case in (self.crashes + self.hangs + self.unnamed + self.by_library)[:20]:
            print("   ", case)

    def check(self):
        assert not self.crashes, self.crashes[:5]
        assert not self.hangs, self.hangs[:5]
        assert not self.unnamed, self.unnamed[:5]
        assert not self.by_library, self.by_library[:5]


@pytest.fixture
def alarm():
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.slow
def test_mutation_fuzz_of_the_checkpoint_reader(raw, tmp_path, alarm):
    """10,000 seeded mutations read through `Checkpoint`: every one loads (all
    tensors, with their header's shapes) or raises a bert_keras error naming
    the file; none crashes or hangs, and our checks refuse every file the
    safetensors library would (none reaches it to be refused there)."""
    rng = random.Random(FUZZ_SEED)
    path = tmp_path / "model.safetensors"
    log = FuzzLog("reader fuzz", FUZZ_SEED, READER_CPU_LIMIT)

    def attempt():
        with checkpoint_io.Checkpoint([str(path)]) as checkpoint:
            for key, shape in checkpoint.shapes.items():
                assert checkpoint.read(key).shape == shape, key

    for case, (description, data) in zip(range(READER_CASES), mutations(raw, rng)):
        path.write_bytes(data)
        log.run(case, description, attempt, str(path))
    log.report()
    log.check()
    assert log.loaded > 100 and log.rejected > READER_CASES // 2  # both paths ran


@pytest.mark.slow
def test_mutation_fuzz_of_loading_into_a_model(tiny_checkpoint, raw, tmp_path, alarm):
    """300 seeded mutations loaded into an existing model (the path of
    `from_pretrained`), a third of them through `from_pretrained` itself: a
    failed load leaves every weight of the model as it was, and never
    changes or adds a file."""
    rng = random.Random(FUZZ_SEED + 1)
    directory = checkpoint_copy(tiny_checkpoint, tmp_path / "fuzz")
    path = directory / "model.safetensors"
    keras.utils.set_random_seed(3)
    model = bk.BertModel(tiny_config(**SMALL))
    original = hf_weights(model)
    log = FuzzLog("model fuzz", FUZZ_SEED + 1, MODEL_CPU_LIMIT)
    touched = []

    def into_existing_model():
        try:
            files = checkpoint_io.find_weight_files(directory)
            with checkpoint_io.Checkpoint(files) as checkpoint:
                weight_loading.load_weights(model, checkpoint, str(directory))
        except bk.BertKerasError:
            assert_weights_equal(model, original)  # no half-loaded model
            raise
        for key, (variable, _) in model.hf_variables().items():
            variable.assign(original[key])

    def new_model():
        bk.BertModel.from_pretrained(directory)

    for case, (description, data) in zip(range(MODEL_CASES), mutations(raw, rng)):
        path.write_bytes(data)
        attempt = new_model if case % 3 == 0 else into_existing_model
        # Shape mismatches name the checkpoint directory and the tensor.
        log.run(case, description, attempt, str(directory))
        if path.read_bytes() != data or len(os.listdir(directory)) != 2:
            touched.append((case, description, sorted(os.listdir(directory))))
    log.report()
    log.check()
    assert not touched, touched[:5]
    assert log.loaded > 10 and log.rejected > MODEL_CASES // 3


# --- 3. Code-bearing inputs ------------------------------------------------------


def test_keras_archive_with_a_lambda_runs_nothing_by_default(tmp_path, monkeypatch):
    """keras.saving.load_model (how .keras files load) refuses a Lambda built
    from a Python lambda in safe mode; the canary proves nothing ran."""
    canary = tmp_path / "lambda-ran"
    monkeypatch.setenv("BERT_KERAS_CANARY", str(canary))
    backbone = bk.BertModel(tiny_config(**SMALL))
    inputs = {
        name: keras.Input(shape=(None,), dtype="int32", name=name)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    }
    pooled = backbone(inputs)["pooler_output"]
    # Only builtins: the lambda's bytecode is all the archive keeps.
    hostile = keras.layers.Lambda(
        lambda x: (
            open(__import__("os").environ["BERT_KERAS_CANARY"], "w").write("ran"),
            x * 2,
        )[1]
    )
    keras.Model(inputs, hostile(pooled)).save(tmp_path / "hostile.keras")
    canary.unlink(missing_ok=True)  # building the model called the lambda

    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.saving.load_model(tmp_path / "hostile.keras")
    assert not canary.exists()

    # The canary works: loading without safe mode runs the lambda.
    keras.saving.load_model(tmp_path / "hostile.keras", safe_mode=False)
    assert canary.read_text() == "ran"


@pytest.mark.parametrize(
    "options",
    [{}, {"trust_remote_code": False}, {"trust_remote_code": True}],
    ids=["default", "trust-false", "trust-true"],
)
def test_auto_map_never_imports_the_checkpoint_code(
    tiny_checkpoint, tmp_path, monkeypatch, options
):
    """config.json asking for custom code is refused, and the module it names
    (a canary that writes a file when imported) is never imported."""
    directory = checkpoint_copy(tiny_checkpoint, tmp_path / "remote")
    canary = tmp_path / "imported"
    module = f"modeling_canary_{len(options)}_{options.get('trust_remote_code')}"
    (directory / f"{module}.py").write_text(
        f"open({str(canary)!r}, 'w').write('imported')\nclass CanaryModel:\n    pass\n"
    )
    config = json.loads((directory / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": f"{module}.CanaryModel",
        "AutoModel": f"{module}.CanaryModel",
    }
    (directory / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(bk.BertModel, "__init__", _refuse_to_build)

    with pytest.raises(bk.UnsafeCheckpointError) as error:
        bk.BertModel.from_pretrained(directory, **options)
    assert_explains(error.value, "auto_map", f"{module}.CanaryModel")
    assert not canary.exists()
    assert module not in sys.modules

    # The canary works: importing the module writes the file.
    monkeypatch.syspath_prepend(str(directory))
    try:
        __import__(module)
    finally:
        sys.modules.pop(module, None)
    assert canary.read_text() == "imported"


# --- 4. Hostile config.json -------------------------------------------------------

# (case id, config.json fields to set, words the message must hold)
HOSTILE_CONFIGS = [
    ("vocab-null", {"vocab_size": None}, ["vocab_size"]),
    ("hidden-null", {"hidden_size": None}, ["hidden_size"]),
    ("vocab-zero", {"vocab_size": 0}, ["vocab_size=0"]),
    ("layers-negative", {"num_hidden_layers": -1}, ["num_hidden_layers=-1"]),
    ("heads-zero", {"num_attention_heads": 0}, ["num_attention_heads=0"]),
    ("intermediate-negative", {"intermediate_size": -17}, ["intermediate_size=-17"]),
    ("positions-zero", {"max_position_embeddings": 0}, ["max_position_embeddings=0"]),
    ("type-vocab-zero", {"type_vocab_size": 0}, ["type_vocab_size=0"]),
    (
        "hidden-not-divisible-by-heads",
        {"hidden_size": 13},
        ["hidden_size=13", "num_attention_heads=3"],
    ),
    ("vocab-10**12", {"vocab_size": 10**12}, ["vocab_size=1000000000000"]),
    ("hidden-10**7", {"hidden_size": 10**7}, ["hidden_size=10000000"]),
    ("layers-10**6", {"num_hidden_layers": 10**6}, ["num_hidden_layers=1000000"]),
    (
        "absurd-product-of-allowed-sizes",
        {"vocab_size": 10**7, "hidden_size": 65_536, "num_attention_heads": 64},
        ["vocab_size=10000000", "hidden_size=65536", "1e+11"],
    ),
    ("vocab-a-string", {"vocab_size": "51"}, ["vocab_size"]),
    ("vocab-a-float", {"vocab_size": 51.0}, ["vocab_size"]),
    ("layer-norm-eps-nan", {"layer_norm_eps": float("nan")}, ["layer_norm_eps=nan"]),
    ("layer-norm-eps-inf", {"layer_norm_eps": float("inf")}, ["layer_norm_eps=inf"]),
    ("dropout-2", {"hidden_dropout_prob": 2.0}, ["hidden_dropout_prob=2.0"]),
    ("init-range-nan", {"initializer_range": float("nan")}, ["initializer_range"]),
    ("activation-unknown", {"hidden_act": "evil"}, ["hidden_act='evil'"]),
    ("activation-a-list", {"hidden_act": ["gelu"]}, ["hidden_act"]),
    ("id2label-a-list", {"id2label": ["a", "b"]}, ["BertConfig rejected"]),
    ("dtype-unknown", {"dtype": "float1024"}, ["float1024"]),
    ("model-type-gpt2", {"model_type": "gpt2"}, ["model_type='gpt2'"]),
    ("decoder", {"is_decoder": True}, ["is_decoder=True"]),
]


@pytest.mark.parametrize(
    ("fields", "words"),
    [case[1:] for case in HOSTILE_CONFIGS],
    ids=[case[0] for case in HOSTILE_CONFIGS],
)
def test_hostile_config_refused_before_building(
    tiny_checkpoint, tmp_path, monkeypatch, fields, words
):
    directory = checkpoint_copy(tiny_checkpoint, tmp_path / "config")
    config = json.loads((directory / "config.json").read_text())
    config.update(fields)
    (directory / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(bk.BertModel, "__init__", _refuse_to_build)

    with pytest.raises(bk.ConfigError) as error:
        bk.BertModel.from_pretrained(directory)
    assert_explains(error.value, *words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * 100_000 + "]" * 100_000, ["not valid JSON", "RecursionError"]),
        ('{"vocab_size": 51', ["not valid JSON"]),
        ("[1, 2, 3]", ["JSON object"]),
        (b"\xff\xfe{}", ["not valid JSON"]),
    ],
    ids=["nested-too-deep", "cut-short", "not-an-object", "not-utf8"],
)
def test_unreadable_config_json_is_a_config_error(
    tiny_checkpoint, tmp_path, monkeypatch, text, words
):
    directory = checkpoint_copy(tiny_checkpoint, tmp_path / "config")
    path = directory / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setattr(bk.BertModel, "__init__", _refuse_to_build)
    with pytest.raises(bk.ConfigError) as error:
        bk.BertModel.from_pretrained(directory)
    assert_explains(error.value, path, *words)


def test_oversized_config_json_is_not_read(tiny_checkpoint, tmp_path, monkeypatch):
    directory = checkpoint_copy(tiny_checkpoint, tmp_path / "config")
    monkeypatch.setattr(checkpoint_files, "MAX_JSON_BYTES", 100)
    monkeypatch.setattr(bk.BertModel, "__init__", _refuse_to_build)
    with pytest.raises(bk.ConfigError) as error:
        bk.BertModel.from_pretrained(directory)
    assert_explains(error.value, directory / "config.json", "at most 100")


def test_config_field_fuzz(tiny_checkpoint, tmp_path, monkeypatch):
    """Every config.json field set to odd values: each is refused with a
    bert_keras error or reaches the model's constructor, nothing else; a
    seeded sample of those that reach it build, load and run, or are refused."""
    directory = checkpoint_copy(tiny_checkpoint, tmp_path / "config")
    base = json.loads((directory / "config.json").read_text())
    build = bk.BertModel.__init__
    reached, crashes = [], []

    class Reached(Exception):
        pass

    def record(self, *args, **kwargs):
        raise Reached()

    monkeypatch.setattr(bk.BertModel, "__init__", record)
    values = ODD_VALUES + ["", "gelu", [1], {"0": "a"}, 10**12, -(10**12)]
    refused = 0
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # odd token ids warn each time
    try:
        for field in sorted(base):
            for value in values:
                text = json.dumps({**base, field: value})
                (directory / "config.json").write_text(text)
                try:
                    bk.BertModel.from_pretrained(directory)
                except bk.BertKerasError:
                    refused += 1
                except Reached:
                    reached.append((field, value))
                except Exception as error:
                    crashes.append((field, value, repr(error)[:200]))
    finally:
        transformers.logging.set_verbosity(verbosity)

    monkeypatch.setattr(bk.BertModel, "__init__", build)
    sample = random.Random(FUZZ_SEED).sample(reached, 10)
    for field, value in sample:
        (directory / "config.json").write_text(json.dumps({**base, field: value}))
        try:
            model = bk.BertModel.from_pretrained(directory)
            model({"input_ids": np.array([[1, 2, 3]])})
        except bk.BertKerasError:
            pass
        except Exception as error:
            crashes.append((field, value, repr(error)[:200]))
    print(
        f"\n[config fuzz] cases={refused + len(reached)} refused={refused} "
        f"reached the constructor={len(reached)} (built {len(sample)}) "
        f"crashes={len(crashes)}"
    )
    assert not crashes, crashes[:5]


def test_absent_size_field_takes_the_transformers_default(tiny_checkpoint, tmp_path):
    """transformers omits fields equal to its defaults (use_diff), so an absent
    field is the default, as in transformers; a checkpoint that does not fit
    it is refused by name, with both shapes."""
    directory = checkpoint_copy(tiny_checkpoint, tmp_path / "config")
    config = json.loads((directory / "config.json").read_text())
    del config["vocab_size"]
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(bk.CheckpointError) as error:
        bk.BertModel.from_pretrained(directory)
    assert_explains(
        error.value, "embeddings.word_embeddings.weight", "(51, 12)", "(30522, 12)"
    )


def test_keras_archive_with_an_absurd_config_is_refused(tmp_path, monkeypatch):
    """A .keras file rebuilds the model from its config: the same checks run,
    before any layer is built."""
    import zipfile

    from bert_keras.modeling import bert as bert_module

    bk.BertModel(tiny_config(**SMALL)).save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["config"].update(vocab_size=10**7, hidden_size=65_536)
    config["config"]["config"]["num_attention_heads"] = 64
    files["config.json"] = json.dumps(config)
    with zipfile.ZipFile(tmp_path / "hostile.keras", "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)

    monkeypatch.setattr(bert_module, "BertEmbeddings", _refuse_to_build)
    with pytest.raises(bk.ConfigError) as error:
        keras.saving.load_model(tmp_path / "hostile.keras")
    assert_explains(error.value, "vocab_size=10000000", "hidden_size=65536")


def test_unknown_config_keys_survive_a_round_trip(tiny_checkpoint, tmp_path):
    directory = checkpoint_copy(tiny_checkpoint, tmp_path / "extra")
    config = json.loads((directory / "config.json").read_text())
    extra = {"my_project_note": "keep me", "my_nested": {"a": [1, 2.5, None]}}
    (directory / "config.json").write_text(json.dumps({**config, **extra}))

    model = bk.BertModel.from_pretrained(directory)
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert {key: saved[key] for key in extra} == extra
    reloaded = bk.BertModel.from_pretrained(tmp_path / "saved")
    assert reloaded.config.my_project_note == "keep me"
    assert reloaded.config.my_nested == {"a": [1, 2.5, None]}


# --- 6. Atomic saves under SIGKILL ---------------------------------------------------

KILL_TRIALS = 20
KILL_SEED = 6
# Seconds after the child starts saving; a tiny save takes ~5-25 ms, so kills
# land all over the first few saves.
MAX_KILL_DELAY = 0.08
# Imports bert_keras once, then per trial forks a child that loads models A and
# B and saves them in turn into the target directory until it is killed. The
# parent never runs a TensorFlow op, so forking it is safe.
SAVER = r"""
import os
import sys

import bert_keras as bk

print("ready", flush=True)
for line in sys.stdin:
    target, *sources = line.rstrip("\n").split("\t")
    pid = os.fork()
    if pid == 0:
        try:
            models = [bk.BertModel.from_pretrained(source) for source in sources]
            os.write(1, f"saving {os.getpid()}\n".encode())
            count = 0
            while True:
                models[count % len(models)].save_pretrained(target)
                count += 1
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    print("done", status, flush=True)
"""


def versions_of(found, old, new):
    """'A' or 'B' per file (config.json, model.safetensors); fails otherwise."""
    versions = ""
    for name, digest in found.items():
        assert digest in (old[name], new[name]), f"{name} is neither save"
        versions += "A" if digest == old[name] else "B"
    return versions


def digests(directory):
    return {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in ("config.json", "model.safetensors")
    }


class LineReader:
    """Lines of a pipe, with a timeout."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next(self, timeout):
        line = self.lines.get(timeout=timeout)
        assert line is not None, "the saver process died"
        return line


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_during_save_never_loses_the_checkpoint(tmp_path):
    """20 saves killed with SIGKILL after a seeded delay: every time, the
    directory holds the files of one save only (config.json and the weights
    of the same save, never one of each), loads as that save, and nothing
    else visible is left; the next save removes the hidden temporary files a
    kill left.

    A kill after the save's commit point leaves its journal; the next load
    completes the renames it lists before reading anything ("finished"
    below). The two saves differ in weights and in id2label, so a mix would
    load wrong labels silently.
    """
    references = {}
    for seed, name in ((1, "A"), (2, "B")):
        keras.utils.set_random_seed(seed)
        model = bk.BertModel(
            tiny_config(**SMALL, id2label={0: f"{name}0", 1: f"{name}1"})
        )
        model.save_pretrained(tmp_path / f"source{name}")
        # Saved the way the child saves it: after a from_pretrained.
        loaded = bk.BertModel.from_pretrained(tmp_path / f"source{name}")
        loaded.save_pretrained(tmp_path / name)
        references[name] = (digests(tmp_path / name), hf_weights(loaded))
    old, new = references["A"][0], references["B"][0]
    assert all(old[name] != new[name] for name in old)

    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        OMP_NUM_THREADS="1",
        TF_NUM_INTRAOP_THREADS="1",
        TF_NUM_INTEROP_THREADS="1",
        HF_HUB_OFFLINE="1",
    )
    with open(tmp_path / "saver.log", "w") as log:  # its stderr, to debug
        saver = subprocess.Popen(
            [sys.executable, "-c", SAVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
    rng = random.Random(KILL_SEED)
    states, leftovers, targets = [], 0, []
    try:
        output = LineReader(saver.stdout)
        assert output.next(timeout=300) == "ready"
        for trial in range(KILL_TRIALS):
            target = tmp_path / f"trial{trial}"
            shutil.copytree(tmp_path / "A", target)
            targets.append(target)
            sources = [tmp_path / "sourceB", tmp_path / "sourceA"]
            saver.stdin.write("\t".join(map(str, [target, *sources])) + "\n")
            saver.stdin.flush()
            word, pid = output.next(timeout=120).split()
            assert word == "saving"
            time.sleep(rng.uniform(0, MAX_KILL_DELAY))
            os.kill(int(pid), signal.SIGKILL)
            word, status = output.next(timeout=60).split()
            assert word == "done" and os.WIFSIGNALED(int(status))
            assert os.WTERMSIG(int(status)) == signal.SIGKILL, "saver failed"

            names = os.listdir(target)
            visible = sorted(name for name in names if not name.startswith("."))
            hidden = [name for name in names if name.startswith(".")]
            assert visible == ["config.json", "model.safetensors"], names
            journal = checkpoint_writing.JOURNAL_NAME in hidden
            temps = [name for name in hidden if name != checkpoint_writing.JOURNAL_NAME]
            assert all(checkpoint_writing._TEMP_PATTERN.match(name) for name in temps)
            if not journal:  # before the commit, or after the last rename
                versions = versions_of(digests(target), old, new)
                assert versions[0] == versions[1], f"mixed save: {versions}"
            loaded = bk.BertModel.from_pretrained(target)
            # The load finished any committed save: one version, whole.
            assert checkpoint_writing.JOURNAL_NAME not in os.listdir(target)
            versions = versions_of(digests(target), old, new)
            assert versions[0] == versions[1], f"mixed save: {versions}"
            states.append(("finished " if journal else "") + versions[0])
            assert_weights_equal(loaded, references[versions[0]][1])
            label = loaded.config.id2label[0]
            assert label == f"{versions[0]}0", label
            leftovers += len(
                [
                    n
                    for n in os.listdir(target)
                    if checkpoint_writing._TEMP_PATTERN.match(n)
                ]
            )
    finally:
        saver.stdin.close()
        saver.kill()
        saver.wait()
    print(
        f"\n[sigkill saves] trials={KILL_TRIALS}: save A whole="
        f"{sum(s.endswith('A') for s in states)}, save B whole="
        f"{sum(s.endswith('B') for s in states)}, of which finished from the "
        f"journal={sum(s.startswith('finished') for s in states)}; mixed=0; "
        f"hidden temporary files left by kills={leftovers}"
    )

    model = bk.BertModel.from_pretrained(tmp_path / "sourceA")
    for target in targets:
        model.save_pretrained(target)
        assert sorted(os.listdir(target)) == ["config.json", "model.safetensors"]
        assert digests(target) == old


def test_cleanup_spares_the_temp_files_of_a_running_save(tmp_path):
    """A save holds a lock on its temporary files: a cleanup started by a
    concurrent save while it writes leaves them alone."""
    seen = []

    def write(path):
        with open(path, "w") as file:
            file.write("{}")
        checkpoint_writing.remove_abandoned_temp_files(tmp_path, {"config.json"})
        seen.append(os.path.exists(path))

    checkpoint_writing.write_atomically(tmp_path, {"config.json": write})
    assert seen == [True]
    assert os.listdir(tmp_path) == ["config.json"]


def test_next_save_removes_only_abandoned_temp_files(tmp_path):
    """A temporary file nobody holds (its save was killed) is removed by the
    next save; one a running save holds (locked) is left alone, as are other
    hidden files."""
    model = bk.BertModel(tiny_config(**SMALL))
    model.save_pretrained(tmp_path)
    abandoned = tmp_path / ".model.safetensors.abcd1234.tmp"
    abandoned_shard = tmp_path / ".model-00001-of-00002.safetensors.x_y_z_12.tmp"
    in_use = tmp_path / ".config.json.zzzz9999.tmp"
    unrelated = tmp_path / ".notes.txt.abcd1234.tmp"
    for path in (abandoned, abandoned_shard, in_use, unrelated):
        path.write_bytes(b"partial")
    import fcntl

    with open(in_use, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        model.save_pretrained(tmp_path)
        assert sorted(os.listdir(tmp_path)) == sorted(
            ["config.json", "model.safetensors", in_use.name, unrelated.name]
        )
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["config.json", "model.safetensors", unrelated.name]
    )


def interrupted_after_commit(model, directory, monkeypatch, renames_done):
    """Saves `model` into `directory` but fails after `renames_done` of the
    renames that follow the commit point, as a kill there would."""
    real_replace = os.replace
    calls = []

    real_remove = os.remove

    def replace(source, target):
        if os.path.basename(target) != checkpoint_writing.JOURNAL_NAME:
            if len(calls) == renames_done:
                raise OSError("disk gone (injected)")
            calls.append(target)
        real_replace(source, target)

    def remove(path):  # all renames done: fail to remove the journal
        if os.path.basename(path) == checkpoint_writing.JOURNAL_NAME:
            raise OSError("disk gone (injected)")
        real_remove(path)

    monkeypatch.setattr(checkpoint_writing.os, "replace", replace)
    monkeypatch.setattr(checkpoint_writing.os, "remove", remove)
    with pytest.raises(OSError, match="injected"):
        model.save_pretrained(directory)
    monkeypatch.setattr(checkpoint_writing.os, "replace", real_replace)
    monkeypatch.setattr(checkpoint_writing.os, "remove", real_remove)


@pytest.mark.parametrize("renames_done", [0, 1, 2])
def test_a_save_interrupted_after_its_commit_is_finished_by_the_next_load(
    tmp_path, monkeypatch, renames_done
):
    keras.utils.set_random_seed(1)
    old = bk.BertModel(tiny_config(**SMALL, id2label={0: "old0", 1: "old1"}))
    new = bk.BertModel(tiny_config(**SMALL, id2label={0: "new0", 1: "new1"}))
    new.save_pretrained(tmp_path / "reference_new")
    old.save_pretrained(tmp_path / "target")
    interrupted_after_commit(new, tmp_path / "target", monkeypatch, renames_done)
    names = os.listdir(tmp_path / "target")
    assert checkpoint_writing.JOURNAL_NAME in names  # committed, not finished

    loaded = bk.BertModel.from_pretrained(tmp_path / "target")
    assert loaded.config.id2label[0] == "new0"
    assert_weights_equal(loaded, hf_weights(new))
    assert sorted(os.listdir(tmp_path / "target")) == [
        "config.json",
        "model.safetensors",
    ]
    assert digests(tmp_path / "target") == digests(tmp_path / "reference_new")


def test_the_next_save_also_finishes_an_interrupted_one(tmp_path, monkeypatch):
    first = bk.BertModel(tiny_config(**SMALL, id2label={0: "a", 1: "b"}))
    second = bk.BertModel(tiny_config(**SMALL, id2label={0: "c", 1: "d"}))
    first.save_pretrained(tmp_path)
    interrupted_after_commit(second, tmp_path, monkeypatch, renames_done=1)
    first.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]
    assert bk.BertModel.from_pretrained(tmp_path).config.id2label[0] == "a"


@pytest.mark.parametrize(
    "journal",
    ["not json", '{"renames": [["../x.tmp", "config.json"]]}',
     '{"renames": [[".a.12345678.tmp", ".hidden"]]}', '{"other": 1}'],
)  # fmt: skip
def test_a_damaged_journal_is_a_checkpoint_error(tmp_path, journal):
    bk.BertModel(tiny_config(**SMALL)).save_pretrained(tmp_path)
    (tmp_path / checkpoint_writing.JOURNAL_NAME).write_text(journal)
    with pytest.raises(bk.CheckpointError, match="journal"):
        bk.BertModel.from_pretrained(tmp_path)
