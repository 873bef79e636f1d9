"""Saves that hold every file, and saves and loads that take turns.

Issue 21, items 1 and 2. `save_pretrained(dir, tokenizer=...)` writes config,
weights and tokenizer files as one atomic save: a full disk at any of its
files leaves the previous save whole. Two processes saving into one directory
serialize, and a load during a save reads one whole save.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import tiny_config

import bert_keras as bk
from bert_keras.checkpoints import writing

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def make_tokenizer(marker, words):
    """A WordPiece tokenizer whose vocabulary names `marker` (A or B)."""
    import transformers

    vocab = [*SPECIALS, f"marker{marker.lower()}"]
    vocab += [f"{marker.lower()}word{i}" for i in range(words)]
    tokenizer = transformers.BertTokenizerFast(
        vocab={w: i for i, w in enumerate(vocab)}
    )
    return tokenizer


def make_source(root, marker, seed, words, max_shard_size=None):
    """Saves model + tokenizer `marker`, loads and re-saves them, as a test
    process would: the re-saved directory is what any later save writes."""
    keras.utils.set_random_seed(seed)
    tokenizer = make_tokenizer(marker, words)
    config = tiny_config(
        vocab_size=len(tokenizer),
        hidden_size=4,
        num_attention_heads=2,
        num_hidden_layers=1,
        intermediate_size=4,
        max_position_embeddings=16,
        num_labels=2,
        id2label={0: f"{marker}0", 1: f"{marker}1"},
    )
    bk.BertModel(config).save_pretrained(
        root / f"first{marker}", tokenizer=tokenizer, max_shard_size=max_shard_size
    )
    model = bk.BertModel.from_pretrained(root / f"first{marker}")
    tokenizer = bk.AutoTokenizer.from_pretrained(root / f"first{marker}")
    model.save_pretrained(
        root / marker, tokenizer=tokenizer, max_shard_size=max_shard_size
    )
    return root / marker


def digests(directory):
    """sha256 of every visible file; hidden (temporary) files listed apart."""
    found, hidden = {}, []
    for name in sorted(os.listdir(directory)):
        if name.startswith("."):
            hidden.append(name)
            continue
        with open(os.path.join(directory, name), "rb") as file:
            found[name] = hashlib.sha256(file.read()).hexdigest()
    return found, hidden


def which_save(directory, sources):
    """'A' or 'B' when `directory` holds exactly that save's files, else a
    description of the mix."""
    found, hidden = digests(directory)
    for marker, source in sources.items():
        if found == digests(source)[0] and not hidden:
            return marker
    return f"mixed: {found} hidden={hidden}"


def check_whole_and_loadable(directory, expected):
    """The model and the tokenizer in `directory` are both save `expected`."""
    model = bk.BertModel.from_pretrained(directory)
    tokenizer = bk.AutoTokenizer.from_pretrained(directory)
    assert model.config.id2label[0] == f"{expected}0"
    assert f"marker{expected.lower()}" in tokenizer.get_vocab()


def child_env():
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [os.path.dirname(TESTS_DIR), os.environ.get("PYTHONPATH", "")]
        ),
        TF_CPP_MIN_LOG_LEVEL="3",
        OMP_NUM_THREADS="1",
        TF_NUM_INTRAOP_THREADS="1",
        TF_NUM_INTEROP_THREADS="1",
        HF_HUB_OFFLINE="1",
    )


# Runs as root of its own user and mount namespace (`unshare`): mounts a
# tmpfs of each size in turn, puts save A in it, and saves B over it.
FULL_DISK = textwrap.dedent(
    r"""
    import json, os, shutil, subprocess, sys

    import bert_keras as bk

    mount, source_a, source_b, shard, *sizes = sys.argv[1:]
    model = bk.BertModel.from_pretrained(source_b)
    tokenizer = bk.AutoTokenizer.from_pretrained(source_b)
    for size in sizes:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "none", mount],
                       check=True)
        try:
            target = os.path.join(mount, "model")
            shutil.copytree(source_a, target)
            try:
                model.save_pretrained(target, tokenizer=tokenizer,
                                      max_shard_size=int(shard))
                outcome = "saved"
            except Exception as error:  # noqa: BLE001 - reported and checked
                outcome = f"{type(error).__name__}: {error}"
            state = {}
            for name in sorted(os.listdir(target)):
                with open(os.path.join(target, name), "rb") as file:
                    state[name] = file.read().hex()
            print(json.dumps({"size": int(size), "outcome": outcome, "files": state}),
                  flush=True)
        finally:
            subprocess.run(["umount", mount], check=True)
    """
)


def can_mount_a_tmpfs(tmp_path):
    """True when this user may mount a tmpfs in its own namespace."""
    if shutil.which("unshare") is None:
        return False
    point = tmp_path / "probe"
    point.mkdir()
    probe = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "none",
            str(point),
        ],
        capture_output=True,
    )
    return probe.returncode == 0


def test_a_full_disk_at_any_file_of_a_save_keeps_the_previous_save(tmp_path):
    """A real full filesystem (a tmpfs of each size from "save A barely fits"
    to "save B fits too") fails save B at each of its files in turn: config,
    every weight shard, the tokenizer files, the journal. Every time, the
    directory holds exactly save A (same bytes, no temporary file left) and the
    error says so; once B fits, exactly save B."""
    if not can_mount_a_tmpfs(tmp_path):
        pytest.skip("needs `unshare` with user namespaces to mount a tmpfs")
    shard = 12_000
    sources = {
        "A": make_source(tmp_path, "A", 1, words=100, max_shard_size=shard),
        "B": make_source(tmp_path, "B", 2, words=1500, max_shard_size=shard),
    }
    page = 4096
    pages = {  # tmpfs counts whole pages per file
        marker: sum(-(-os.path.getsize(source / name) // page) for name in names)
        for marker, source in sources.items()
        for names in [os.listdir(source)]
    }
    sizes = [(pages["A"] + extra) * page for extra in range(pages["B"] + 2)]
    mount = tmp_path / "mount"
    mount.mkdir()
    run = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            sys.executable,
            "-c",
            FULL_DISK,
            str(mount),
            str(sources["A"]),
            str(sources["B"]),
            str(shard),
            *map(str, sizes),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    wanted = {
        marker: {
            name: (source / name).read_bytes().hex() for name in os.listdir(source)
        }
        for marker, source in sources.items()
    }
    failed_at, outcomes = set(), []
    for line in run.stdout.splitlines():
        row = json.loads(line)
        state = "A" if row["files"] == wanted["A"] else None
        state = "B" if row["files"] == wanted["B"] else state
        outcomes.append((row["size"] // page, row["outcome"], state))
    wrong = [
        (pages_, outcome[:120], sorted(rows["files"]))
        for (pages_, outcome, state), rows in zip(
            outcomes, map(json.loads, run.stdout.splitlines())
        )
        if state != ("B" if outcome == "saved" else "A")
    ]
    assert not wrong, f"{len(wrong)} of {len(outcomes)} sizes: {wrong}"
    for _, outcome, _ in outcomes:
        if outcome != "saved":
            assert outcome.startswith("OSError") and "Nothing was changed" in outcome
            failed_at.add(outcome.split("while writing ")[1].split(" ")[0])
    assert len(outcomes) == len(sizes)
    # The disk filled at every kind of file of the save, the tokenizer's too.
    names = {name for name in wanted["B"] if name.startswith("model-")}
    assert failed_at >= {"config.json", "tokenizer.json", *names}, outcomes
    assert outcomes[-1][1] == "saved", outcomes


def test_an_oserror_at_each_file_of_a_save_keeps_the_previous_save(
    tmp_path, monkeypatch
):
    """An OSError injected at the k-th file written, for every k (config,
    weights, each tokenizer file): the save raises, the directory keeps save A
    byte for byte with no temporary file, and it still loads as A."""
    sources = {
        "A": make_source(tmp_path, "A", 1, words=40),
        "B": make_source(tmp_path, "B", 2, words=50),
    }
    model = bk.BertModel.from_pretrained(sources["B"])
    tokenizer = bk.AutoTokenizer.from_pretrained(sources["B"])
    files_in_a_save = len(os.listdir(sources["B"]))
    assert files_in_a_save >= 4  # config, weights, two tokenizer files
    for failing in range(files_in_a_save):
        target = tmp_path / f"target{failing}"
        shutil.copytree(sources["A"], target)
        monkeypatch.setattr("builtins.open", failing_open(target, failing))
        with pytest.raises(OSError, match="Nothing was changed"):
            model.save_pretrained(target, tokenizer=tokenizer)
        monkeypatch.undo()
        assert which_save(target, sources) == "A"
        check_whole_and_loadable(target, "A")
    model.save_pretrained(tmp_path / "target0", tokenizer=tokenizer)
    assert which_save(tmp_path / "target0", sources) == "B"


def failing_open(directory, failing):
    """`open` that fails the `failing`-th (from 0) file opened for writing in
    `directory` with ENOSPC."""
    real_open, opened = open, []

    def open_(path, mode="r", *args, **kwargs):
        if "w" in mode and str(directory) in str(path):
            opened.append(path)
            if len(opened) == failing + 1:
                raise OSError(28, "No space left on device (injected)")
        return real_open(path, mode, *args, **kwargs)

    return open_


def test_a_tokenizer_save_replaces_the_old_tokenizer_files(tmp_path):
    """An earlier tokenizer's files that the new one does not write (here a
    `special_tokens_map.json` naming another unknown token) are removed with
    the same commit, so the directory loads as the new tokenizer."""
    source = make_source(tmp_path, "B", 2, words=30)
    target = tmp_path / "target"
    shutil.copytree(source, target)
    (target / "special_tokens_map.json").write_text(
        json.dumps({"unk_token": "bworrd0"}), encoding="utf-8"
    )
    (target / "vocab.txt").write_text("stale\n", encoding="utf-8")
    model = bk.BertModel.from_pretrained(source)
    tokenizer = bk.AutoTokenizer.from_pretrained(source)
    written = model.save_pretrained(target, tokenizer=tokenizer)
    assert which_save(target, {"B": source}) == "B"
    assert sorted(os.path.basename(path) for path in written) == sorted(
        os.listdir(source)
    )
    # A save without a tokenizer leaves the tokenizer files alone.
    model.save_pretrained(target)
    assert which_save(target, {"B": source}) == "B"


# Two savers (A and B, 20 saves each) and a loader, forked from one process
# once bert_keras is imported, all started together.
CONCURRENT = textwrap.dedent(
    r"""
    import contextlib, os, sys, time, traceback

    import bert_keras as bk
    from bert_keras.checkpoints import writing

    target, source_a, source_b, rounds = sys.argv[1:]
    lock = getattr(writing, "directory_lock", None)

    def save(source):
        model = bk.BertModel.from_pretrained(source)
        tokenizer = bk.AutoTokenizer.from_pretrained(source)
        os.write(1, b"ready\n")
        while not os.path.exists(target + ".go"):
            time.sleep(0.01)
        for _ in range(int(rounds)):
            model.save_pretrained(target, tokenizer=tokenizer)

    def load():
        os.write(1, b"ready\n")
        while not os.path.exists(target + ".go"):
            time.sleep(0.01)
        loads = 0
        while not os.path.exists(target + ".stop") or loads < 3:
            model = bk.BertModel.from_pretrained(target)
            marker = model.config.id2label[0][0]
            reference = bk.BertModel.from_pretrained(
                source_a if marker == "A" else source_b
            )
            for mine, theirs in zip(model.weights, reference.weights):
                if not (mine.numpy() == theirs.numpy()).all():
                    raise AssertionError(f"config of {marker}, weights {mine.path}")
            with lock(target, shared=True) if lock else contextlib.nullcontext():
                model = bk.BertModel.from_pretrained(target)
                tokenizer = bk.AutoTokenizer.from_pretrained(target)
            marker = model.config.id2label[0][0]
            if f"marker{marker.lower()}" not in tokenizer.get_vocab():
                raise AssertionError(f"config of {marker}, the other tokenizer")
            loads += 1
        os.write(1, f"loads {loads}\n".encode())

    jobs = {}
    for role in (lambda: save(source_a), lambda: save(source_b), load):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                role()
            except BaseException:
                traceback.print_exc()
                code = 1
            os._exit(code)
        jobs[pid] = role
    pids = list(jobs)
    codes = {}
    for pid in pids[:2]:
        codes[pid] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    open(target + ".stop", "w").close()
    codes[pids[2]] = os.waitstatus_to_exitcode(os.waitpid(pids[2], 0)[1])
    print("exit codes", *codes.values(), flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_two_processes_saving_into_one_directory_take_turns(tmp_path):
    """Two processes save A and B into one directory 20 times each while a
    third loads it: no save raises (no journal or temp file of one save is
    taken by the other), every load is one whole save (config, weights and,
    under the shared lock, the tokenizer of the same save), and the directory
    ends holding exactly one of them."""
    sources = {
        "A": make_source(tmp_path, "A", 1, words=300),
        "B": make_source(tmp_path, "B", 2, words=320),
    }
    target = tmp_path / "target"
    shutil.copytree(sources["A"], target)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CONCURRENT,
            str(target),
            str(sources["A"]),
            str(sources["B"]),
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        for _ in range(3):
            assert child.stdout.readline().strip() == "ready"
        (tmp_path / "target.go").touch()
        out, err = child.communicate(timeout=600)
    finally:
        child.kill()
    assert "exit codes 0 0 0" in out, err[-4000:]
    assert int(out.split("loads ")[1].split()[0]) >= 3
    state = which_save(target, sources)
    assert state in ("A", "B"), state
    check_whole_and_loadable(target, state)


def test_directory_lock_is_exclusive_for_saves_and_shared_for_loads(tmp_path):
    """Loads share the lock; a save waits for them; a thread holding the lock
    may save into the directory without waiting for itself."""
    import fcntl

    with writing.directory_lock(tmp_path, shared=True):
        handle = os.open(tmp_path, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: fine
            fcntl.flock(handle, fcntl.LOCK_UN)
            with pytest.raises(BlockingIOError):
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(handle)
    with writing.directory_lock(tmp_path):
        written = writing.write_atomically(
            tmp_path, {"config.json": writing.text_writer("{}")}
        )
    assert [os.path.basename(path) for path in written] == ["config.json"]
    assert np.array_equal(sorted(os.listdir(tmp_path)), ["config.json"])
