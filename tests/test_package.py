"""Packaging promises: importing bert_keras is side-effect free and offline."""

import subprocess
import sys
import textwrap

import pytest
from conftest import CLASS_NAMES

import bert_keras as bk


def test_public_surface_is_exported():
    for name in bk.__all__:
        assert hasattr(bk, name), name
    for name in CLASS_NAMES:
        assert name in bk.__all__
    assert issubclass(bk.InputError, ValueError)
    assert issubclass(bk.CheckpointNotFoundError, OSError)


@pytest.mark.slow
def test_import_sets_nothing_global_and_reaches_no_network():
    # A fresh interpreter with every socket connection turned into an error.
    script = textwrap.dedent(
        """
        import os, socket, sys
        def refuse(*args, **kwargs):
            raise RuntimeError(f"network access during import: {args}")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        env_before = dict(os.environ)
        import keras
        policy_before = keras.config.dtype_policy().name
        floatx_before = keras.config.floatx()
        import bert_keras
        assert keras.config.dtype_policy().name == policy_before
        assert keras.config.floatx() == floatx_before
        changed = {k for k in set(os.environ) | set(env_before)
                   if os.environ.get(k) != env_before.get(k)}
        assert not changed, changed
        # transformers takes seconds to import and imports torch when
        # installed: both wait until a tokenizer or config is used.
        heavy = sorted({"transformers", "torch", "datasets"} & set(sys.modules))
        assert not heavy, heavy
        assert bert_keras.BertConfig.__module__.startswith("transformers")
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
