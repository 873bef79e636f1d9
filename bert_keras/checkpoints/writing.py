"""Writing checkpoint files atomically: the old save or the new one, never a mix.

Every file is written to a hidden temporary name in the target directory,
flushed and fsynced. Then a journal naming all of them is written (the commit
point) and the files are renamed over the final names. A crash before the
journal leaves the previous files untouched (and temporary files that the next
save removes); a crash after it is finished by the next load or save, which
completes the renames the journal lists. Shards are named like transformers'
(model-00001-of-00003.safetensors).

Saves into one directory take turns: each holds an exclusive `flock` on the
directory itself for its whole length, and a load holds a shared one, so two
saves never interleave their files and a load never reads half of a save.
"""

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
import time

try:
    import fcntl
except ImportError:  # Windows: abandoned temporary files are only ignored
    fcntl = None

import numpy as np
import safetensors.numpy

from bert_keras.checkpoints.files import SAFE_WEIGHTS_INDEX_NAME
from bert_keras.checkpoints.files import SAFE_WEIGHTS_NAME
from bert_keras.errors import CheckpointError

# Written shards are named like transformers': model-00001-of-00003.safetensors.
_SHARD_PATTERN = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
# Temporary files of write_atomically, as tempfile.mkstemp names them: hidden,
# and ending in .tmp so that no loader takes one for a checkpoint file.
_TEMP_PATTERN = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp$")
# Written once every file of a save is staged, removed once all are renamed:
# while it exists the directory holds a committed save whose renames a kill
# interrupted (`finish_interrupted_save` completes them).
JOURNAL_NAME = ".bert_keras-save-journal.json"
# Files a transformers tokenizer may write: a save with a tokenizer replaces
# them all, so no file of an earlier tokenizer changes how the new one loads.
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "chat_template.jinja",
        "chat_template.json",
    }
)
# Directories this thread holds locked: a save calls helpers that lock too.
_held = threading.local()
logger = logging.getLogger(__name__)
_SIZE_UNITS = {
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "B": 1,
}


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
        # Serialized here and written into our own (locked) temporary file:
        # `save_file` would stage through a temporary file of its own, which a
        # kill would leave behind where no cleanup knows it.
        data = safetensors.numpy.save(ordered, metadata={"format": "pt"})
        with open(path, "wb") as file:
            file.write(data)

    return write


def bytes_writer(data):
    """Returns `write(path)` saving `data` (bytes) as is."""

    def write(path):
        with open(path, "wb") as file:
            file.write(data)

    return write


def text_writer(text):
    """Returns `write(path)` saving `text` as UTF-8."""

    def write(path):
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)

    return write


def write_atomically(directory, writers, remove=()):
    """Writes several files so that the directory holds all old or all new ones.

    Each file is first written to a temporary file in `directory` and
    fsynced. When every write succeeded, a journal listing them is written
    and fsynced (the commit point), the files are moved into place with
    `os.replace`, and the journal is removed. On an error before the commit
    the temporary files are removed and the previous files are untouched. A
    process killed before the commit leaves hidden temporary files, which no
    loader reads and the next save removes; killed after it, it leaves the
    journal, and the next load or save completes the renames
    (`finish_interrupted_save`), so no one ever reads one file of each save.
    The files in `remove` go at the same commit: a kill never leaves a file of
    the earlier save beside the new ones. The whole save holds the
    directory's exclusive lock (`directory_lock`), so saves take turns.

    Args:
        directory: str, an existing directory.
        writers: dict `{file_name: write(path)}`.
        remove: file names of an earlier save that this one replaces
            (missing ones are skipped).

    Returns:
        list of the final paths, in the order of `writers`.

    Example:

    >>> import os
    >>> os.makedirs("out")
    >>> write_atomically("out", {"config.json": text_writer("{}")})
    ['out/config.json']
    """
    with directory_lock(directory):
        return _write_atomically(directory, writers, sorted(set(remove) - set(writers)))


def _write_atomically(directory, writers, remove):
    finish_interrupted_save(directory)
    remove_abandoned_temp_files(directory, set(writers))
    staged, handles, committed = [], [], False
    try:
        for name, write in writers.items():
            handle, temp_path = tempfile.mkstemp(
                prefix=f".{name}.", suffix=".tmp", dir=directory
            )
            handles.append(handle)
            _lock(handle)
            staged.append((temp_path, os.path.join(directory, name)))
            try:
                write(temp_path)
                with open(temp_path, "rb+") as file:
                    os.fsync(file.fileno())
            except OSError as error:
                raise _save_failed(directory, name, error) from error
            os.chmod(temp_path, 0o644)
        try:
            _write_journal(directory, staged, remove)
        except OSError as error:
            raise _save_failed(directory, JOURNAL_NAME, error) from error
        committed = True
        _apply(directory, [(temp, final) for temp, final in staged], remove)
        os.remove(os.path.join(directory, JOURNAL_NAME))
    except BaseException:
        if not committed:  # after the commit, the journal finishes the save
            for temp_path, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(temp_path)
        raise
    finally:
        for handle in handles:  # releases the locks
            os.close(handle)
    _fsync_directory(directory)
    return [final_path for _, final_path in staged]


def _save_failed(directory, name, error):
    """The OSError of a failed write, saying that nothing was changed."""
    return type(error)(
        error.errno,
        f"Saving into {directory} failed while writing {name} "
        f"({error.strerror or error}). Nothing was changed: the directory holds "
        "the previous save, whole. Free some space (or fix the permissions) and "
        "save again, or save into another directory",
    )


def _apply(directory, renames, remove):
    """The committed part of a save: renames, then removals, made durable."""
    for temp_path, final_path in renames:
        if os.path.exists(temp_path):  # a concurrent finisher may have moved it
            with contextlib.suppress(FileNotFoundError):
                os.replace(temp_path, final_path)
    for name in remove:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, name))
    _fsync_directory(directory)


@contextlib.contextmanager
def directory_lock(directory, shared=False):
    """Holds a lock on `directory` itself: exclusive to save, shared to load.

    Saves into one directory take turns, and a load waits for a running save
    to finish, so it reads one whole save. A thread that already holds the
    directory does not lock it again. Where locks are unavailable (Windows,
    some network filesystems) this does nothing.

    Args:
        directory: str, an existing directory.
        shared: bool; True for readers, which may hold it together.

    Example:

    >>> import os
    >>> os.makedirs("out")
    >>> with directory_lock("out", shared=True):
    ...     pass
    """
    key = os.path.realpath(directory)
    held = getattr(_held, "directories", None)
    if held is None:
        held = _held.directories = set()
    if fcntl is None or key in held:
        yield
        return
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:  # a directory this platform cannot open: no lock
        yield
        return
    held.add(key)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info(f"Waiting for another save into {directory} to finish")
            start = time.monotonic()
            with contextlib.suppress(OSError):
                fcntl.flock(handle, mode)
            logger.info(f"Waited {time.monotonic() - start:.1f} s for {directory}")
        except OSError:  # a filesystem without locks: go on unlocked
            pass
        yield
    finally:
        held.discard(key)
        os.close(handle)  # releases the lock


def _write_journal(directory, staged, remove):
    entries = [
        [os.path.basename(temp), os.path.basename(final)] for temp, final in staged
    ]
    handle, temp_path = tempfile.mkstemp(
        prefix=f"{JOURNAL_NAME}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump({"renames": entries, "remove": list(remove)}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, os.path.join(directory, JOURNAL_NAME))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp_path)
        raise
    _fsync_directory(directory)


def finish_interrupted_save(directory):
    """Completes a save that was killed after its commit point.

    If `directory` holds a save journal and no live process is still writing
    that save, the renames and removals it lists are done and the journal is
    removed, so the directory holds exactly the files of that save. Does
    nothing when there is no journal.

    Raises:
        CheckpointError: the journal is unreadable, or the directory cannot be
            written while a journal says a save is unfinished.

    Example:

    >>> finish_interrupted_save("out")
    """
    path = os.path.join(directory, JOURNAL_NAME)
    if not os.path.isfile(path):
        return
    try:
        with open(path, encoding="utf-8") as file:
            journal = json.load(file)
        pairs = [(str(temp), str(final)) for temp, final in journal["renames"]]
        remove = [str(name) for name in journal.get("remove", [])]
    except FileNotFoundError:
        return  # another process finished it meanwhile
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"{path} records an interrupted save but cannot be read ({error}). "
            "Expected the JSON journal bert_keras writes while saving. To fix, "
            "save the model into this directory again, or delete the journal "
            "and check the files by hand."
        ) from error
    for temp, final in [*pairs, *(("", name) for name in remove)]:
        if os.sep in temp + final or "/" in temp + final or final.startswith("."):
            raise CheckpointError(
                f"{path} names a file outside its directory or a hidden target. "
                "Expected plain file names written by bert_keras. Delete the "
                f"journal and re-save. Received: {temp!r} -> {final!r}"
            )
    temps = [os.path.join(directory, temp) for temp, _ in pairs]
    if any(_held_by_a_live_save(temp) for temp in temps):
        return  # the save is still running; it finishes itself
    try:
        renames = [
            (temp, os.path.join(directory, final))
            for temp, (_, final) in zip(temps, pairs)
        ]
        _apply(directory, renames, remove)
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    except OSError as error:
        raise CheckpointError(
            f"{directory} holds a save that was interrupted after it was "
            f"committed, and finishing it failed ({error}). Expected a writable "
            "directory. To fix, make it writable and load again, or save the "
            "model into it again."
        ) from error
    _fsync_directory(directory)


def _held_by_a_live_save(path):
    """True while a running save holds its lock on this temporary file."""
    if fcntl is None:
        return False
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not _lock(handle)
    finally:
        os.close(handle)


def remove_abandoned_temp_files(directory, names=()):
    """Deletes the temporary files of saves that were killed mid-write.

    A process killed inside `write_atomically` (SIGKILL, power loss) leaves
    its hidden `.<name>.<random>.tmp` files behind; loaders never read them,
    but they hold a model's worth of disk. Each save locks its temporary
    files until they are moved into place, so a file nobody holds a lock on
    belongs to a dead save, while a concurrent save's files are left alone.
    Without `fcntl` (Windows) nothing is deleted.

    Args:
        directory: str, a checkpoint directory.
        names: final file names whose temporary files may be deleted, besides
            the weight files (`model.safetensors`, its index and shards).

    Example:

    >>> import os
    >>> os.makedirs("out")
    >>> remove_abandoned_temp_files("out", {"config.json"})
    """
    if fcntl is None:
        return
    names = set(names) | {SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, JOURNAL_NAME[1:]}
    for entry in os.listdir(directory):
        match = _TEMP_PATTERN.match(entry)
        if not match or not (
            match.group(1) in names or _SHARD_PATTERN.match(match.group(1))
        ):
            continue
        path = os.path.join(directory, entry)
        if os.path.exists(path) and not _held_by_a_live_save(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


def _lock(handle):
    """Takes an exclusive lock on an open file; False if held elsewhere."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by another process, or no locks on this filesystem
        return False
    return True


def stale_files(directory, written_names, tokenizer=False):
    """Files of an earlier save that a save writing `written_names` replaces.

    Weight files (an old single file would shadow new shards, old shards
    would outlive a single file) and, when the save has a tokenizer, every
    tokenizer file it does not write (an old `special_tokens_map.json` would
    change how the new tokenizer loads).
    """
    stale = []
    for name in os.listdir(directory):
        is_weights = name in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME) or (
            _SHARD_PATTERN.match(name)
        )
        if (is_weights or (tokenizer and name in TOKENIZER_FILES)) and (
            name not in written_names
        ):
            stale.append(name)
    return stale


def _fsync_directory(directory):
    # Makes the renames durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
