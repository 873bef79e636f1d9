"""Training under MirroredStrategy over two logical CPUs equals one device."""

import json
import subprocess
import sys
import textwrap

import pytest

# Two training runs in subprocesses.
pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    if sys.argv[1] == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np, bert_keras as bk
    keras.utils.set_random_seed(5)
    config = bk.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=20, hidden_dropout_prob=0,
        attention_probs_dropout_prob=0)
    strategy = (tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")])
        if sys.argv[1] == "mirrored" else tf.distribute.get_strategy())
    rs = np.random.RandomState(0)
    ids = rs.randint(5, 50, (16, 12)).astype("int32")
    # Very uneven numbers of masked tokens per row: the MLM mean must be over
    # the global batch's tokens, not a mean of per-replica means.
    labels = np.where(rs.rand(16, 12) < np.linspace(0.05, 0.9, 16)[:, None],
                      ids, -100)
    nsp = rs.randint(0, 2, 16)
    with strategy.scope():
        model = bk.BertForPreTraining(config)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    ds = tf.data.Dataset.from_tensor_slices(
        ({"input_ids": ids}, {"labels": labels, "next_sentence_label": nsp})
    ).batch(8)
    history = model.fit(ds, epochs=4, verbose=0).history
    print("RESULT", json.dumps({"replicas": strategy.num_replicas_in_sync,
                                "loss": history["loss"]}))
    """
)


def run(mode):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT ") :])


def test_mirrored_strategy_gives_the_single_device_loss_curve():
    single, mirrored = run("default"), run("mirrored")
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    for a, b in zip(single["loss"], mirrored["loss"]):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a))
    assert single["loss"][-1] < single["loss"][0]
