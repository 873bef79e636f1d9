"""Framework set-up inside a measured process: threads, dtype policy, no torch."""

import sys


def set_tf_threads(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)


def keras_policy(precision):
    import keras

    keras.config.set_dtype_policy(
        "mixed_bfloat16" if precision == "bf16" else "float32"
    )


def hide_torch():
    """Makes this process see no `torch`, as on a TensorFlow user's machine.

    bert_keras installs without PyTorch, but this venv has it for the PyTorch
    peer, and transformers (which bert_keras imports for `BertConfig`) loads
    torch whenever `importlib.util.find_spec` finds it, memory a TensorFlow
    user's process does not have. Here `find_spec` reports torch missing and
    importing it fails, as if it were not installed.
    """
    import importlib.abc
    import importlib.util

    def is_torch(name):
        return name == "torch" or name.startswith("torch.")

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if is_torch(name):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    find_spec = importlib.util.find_spec

    def find_spec_without_torch(name, package=None):
        return None if is_torch(name) else find_spec(name, package)

    importlib.util.find_spec = find_spec_without_torch
    sys.meta_path.insert(0, NoTorch())
