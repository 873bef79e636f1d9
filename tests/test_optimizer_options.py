"""create_optimizer's options: gradient accumulation, layer-wise learning-rate
decay, the CLIs' schedule in a plain `compile()`, and their flags."""

import argparse
import json
import math
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import bert_keras as bk
from bert_keras.training.optimization import AdamW
from bert_keras.training.optimization import UpdateCountSchedule
from bert_keras.training.optimization import WarmupLinearDecay
from bert_keras.training.optimization import count_updates
from bert_keras.training.optimization import create_optimizer
from bert_keras.training.optimization import layer_lr_multiplier
from tasks import cli
from tasks import glue
from tests.conftest import tiny_config
from tests.test_glue_cli import run as run_glue
from tests.test_glue_cli import write_glue_dir

ROWS, SEQ = 16, 10


def schedule_of(optimizer):
    """The learning-rate schedule an optimizer's config holds."""
    return keras.saving.deserialize_keras_object(
        optimizer.get_config()["learning_rate"]
    )


def classification_data(config, seed=0):
    rs = np.random.RandomState(seed)
    ids = rs.randint(5, config.vocab_size, (ROWS, SEQ)).astype("int32")
    return ids, rs.randint(0, config.num_labels, ROWS).astype("int32")


def train(batch_size, accumulation, *, clipnorm, epochs=2, eager=False, **options):
    """Weights of a tiny classifier after `epochs` over ROWS rows, and its
    optimizer."""
    config = tiny_config("BertForSequenceClassification")
    keras.utils.set_random_seed(3)
    model = bk.BertForSequenceClassification(config)
    ids, labels = classification_data(config)
    updates = count_updates(ROWS // batch_size * epochs, accumulation)
    model.compile(
        optimizer=create_optimizer(
            1e-2,
            total_steps=updates,
            warmup_steps=1,
            weight_decay=0.1,
            clipnorm=clipnorm,
            gradient_accumulation_steps=accumulation,
            **options,
        ),
        run_eagerly=eager,
    )
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"input_ids": ids}, {"labels": labels})
    ).batch(batch_size)
    model.fit(dataset, epochs=epochs, verbose=0)
    weights = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
    return weights, model.optimizer


def initial_weights():
    config = tiny_config("BertForSequenceClassification")
    keras.utils.set_random_seed(3)
    model = bk.BertForSequenceClassification(config)
    model(classification_data(config)[0][:1])
    return np.concatenate([v.numpy().ravel() for v in model.trainable_variables])


# Eager training: the same arithmetic, several times faster than tracing a
# tiny model; graph mode is in the MirroredStrategy test's subprocess.
@pytest.mark.parametrize(
    ("accumulation", "clipnorm"), [(2, None), (4, 0.05)], ids=["2", "4-clipped"]
)
def test_accumulated_micro_batches_update_like_one_large_batch(accumulation, clipnorm):
    large, large_optimizer = train(8, None, clipnorm=clipnorm, eager=True)
    small = 8 // accumulation
    accumulated, optimizer = train(small, accumulation, clipnorm=clipnorm, eager=True)
    np.testing.assert_allclose(accumulated, large, atol=1e-5, rtol=0)
    # Same number of updates, counted by both optimizers.
    assert int(optimizer.iterations) == int(large_optimizer.iterations) == 4
    # Not trivially equal: training moved the weights, and the same small
    # batches without accumulation end elsewhere.
    assert np.abs(large - initial_weights()).max() > 1e-2
    unaccumulated, _ = train(small, None, clipnorm=clipnorm, eager=True)
    assert np.abs(unaccumulated - large).max() > 1e-3


def test_schedule_counts_updates_not_micro_batches():
    optimizer = create_optimizer(
        1.0, total_steps=4, warmup_steps=2, gradient_accumulation_steps=3
    )
    assert isinstance(schedule_of(optimizer), UpdateCountSchedule)
    variable = keras.Variable(np.ones(3, "float32"))
    rates, updates = [], []
    for _ in range(12):
        rates.append(float(optimizer.learning_rate))
        optimizer.apply([np.full(3, 0.5, "float32")], [variable])
        updates.append(int(optimizer.iterations))
    # WarmupLinearDecay(1, 4, 2) at updates 0, 1, 2, 3: 0, 0.5, 1, 0.5.
    np.testing.assert_allclose(rates, np.repeat([0.0, 0.5, 1.0, 0.5], 3), atol=1e-7)
    assert updates == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4]


def test_count_updates():
    assert count_updates(30, 4) == 7
    assert count_updates(30, None) == count_updates(30, 1) == 30
    assert count_updates(3, 4) == 1


def cli_args(*flags):
    parser = argparse.ArgumentParser()
    cli.add_training_arguments(
        parser, epochs=3, batch_size=8, eval_batch_size=8, learning_rate=3e-5,
        max_seq_length=32,
    )  # fmt: skip
    return parser, parser.parse_args(list(flags))


@pytest.mark.parametrize("accumulation", [1, 3])
def test_compile_with_create_optimizer_gets_the_cli_schedule(accumulation):
    _, args = cli_args("--gradient-accumulation-steps", str(accumulation))
    batches = 25
    cli_optimizer, total_steps = cli.training_optimizer(args, batches)
    assert total_steps == 3 * batches // accumulation
    # What a plain compile() user writes, following the create_optimizer docs.
    model = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification")
    )
    model.compile(
        optimizer=create_optimizer(
            3e-5,
            total_steps=count_updates(3 * batches, accumulation),
            warmup_ratio=0.1,
            gradient_accumulation_steps=accumulation,
        )
    )
    user = model.optimizer
    expected = WarmupLinearDecay(3e-5, total_steps, math.ceil(0.1 * total_steps))
    variables = {id(user): keras.Variable(np.ones(2, "float32"))}
    variables[id(cli_optimizer)] = keras.Variable(np.ones(2, "float32"))
    for micro_batch in range(3 * batches):
        update = micro_batch // accumulation
        for optimizer in (user, cli_optimizer):
            assert float(optimizer.learning_rate) == pytest.approx(
                float(expected(update)), rel=1e-6, abs=1e-12
            ), micro_batch
            optimizer.apply([np.zeros(2, "float32")], [variables[id(optimizer)]])
    assert int(user.iterations) == int(cli_optimizer.iterations) == total_steps
    for name in ("weight_decay", "global_clipnorm", "epsilon", "beta_1", "beta_2"):
        assert getattr(user, name) == getattr(cli_optimizer, name)


def test_training_flags_parse_and_are_checked(capsys, tmp_path):
    parser, args = cli_args()
    assert args.gradient_accumulation_steps == 1 and args.layer_lr_decay == 1.0
    optimizer, _ = cli.training_optimizer(args, 10)
    assert optimizer.gradient_accumulation_steps is None
    assert optimizer.layer_lr_decay is None
    parser, args = cli_args(
        "--gradient-accumulation-steps", "4", "--layer-lr-decay", "0.8"
    )
    optimizer, total_steps = cli.training_optimizer(args, 10, num_layers=2)
    assert optimizer.gradient_accumulation_steps == 4 and total_steps == 7
    assert optimizer.layer_lr_decay == 0.8 and optimizer.num_layers == 2
    for flags in (
        ("--gradient-accumulation-steps", "0"),
        ("--layer-lr-decay", "0"),
        ("--layer-lr-decay", "1.5"),
        ("--layer-lr-decay", "nan"),
    ):
        parser, args = cli_args(*flags)
        args.model = str(tmp_path)  # no config.json: no position check
        with pytest.raises(SystemExit):
            cli.check_training_arguments(parser, args)
        error = capsys.readouterr().err
        assert f"{flags[0]} must be" in error
        assert f"Received: {' '.join(flags)}" in error
    parser, args = cli_args("--layer-lr-decay", "1")
    args.model = str(tmp_path)
    cli.check_training_arguments(parser, args)


def test_layer_multipliers_follow_the_layer_numbering():
    d = 0.5
    assert layer_lr_multiplier("embeddings/word_embeddings/embeddings", d, 3) == d**3
    assert layer_lr_multiplier("bert/embeddings/LayerNorm/gamma", d, 3) == d**3
    assert layer_lr_multiplier("encoder/layer_0/attention/query/kernel", d, 3) == d**2
    assert layer_lr_multiplier("encoder/layer_1/output/dense/bias", d, 3) == d
    assert layer_lr_multiplier("encoder/layer_2/output/dense/bias", d, 3) == 1.0
    for head in ("pooler/dense/kernel", "classifier/kernel", "cls/predictions/bias"):
        assert layer_lr_multiplier(head, d, 3) == 1.0


def one_step(layer_lr_decay, seed=0):
    """A tiny classifier's variables before and after one update with known
    gradients, and the optimizer."""
    config = tiny_config("BertForSequenceClassification")
    keras.utils.set_random_seed(seed)
    model = bk.BertForSequenceClassification(config)
    model(classification_data(config)[0][:1])
    variables = model.trainable_variables
    rs = np.random.RandomState(seed)
    grads = [rs.normal(size=v.shape).astype("float32") for v in variables]
    before = [v.numpy() for v in variables]
    optimizer = create_optimizer(
        1e-3, weight_decay=0.1, clipnorm=None, layer_lr_decay=layer_lr_decay
    )
    optimizer.apply(grads, variables)
    return variables, before, grads, optimizer


def test_layer_lr_decay_scales_each_layers_first_update():
    d = 0.7
    variables, before, grads, optimizer = one_step(d)
    expected_multiplier = {"embeddings": d**2, "layer_0": d, "layer_1": 1.0}
    seen = set()
    for variable, w, g in zip(variables, before, grads):
        part = variable.path.split("/")[0]
        if part == "encoder":
            part = variable.path.split("/")[1]
        multiplier = expected_multiplier.get(part, 1.0)
        seen.add(multiplier)
        lr = 1e-3 * multiplier
        decays = not any(n in variable.path for n in ("bias", "gamma", "beta"))
        # Adam's first step: m = 0.1 g, v = 0.001 g^2, bias-corrected, epsilon
        # added to the corrected sqrt(v) (PyTorch's AdamW).
        m, v = 0.1 * g, 0.001 * g * g
        step = lr / (1 - 0.9) * m / (np.sqrt(v / (1 - 0.999)) + 1e-6)
        expected = w * (1 - lr * 0.1 * decays) - step
        np.testing.assert_allclose(
            variable.numpy(), expected, rtol=0, atol=2e-7, err_msg=variable.path
        )
    assert seen == {d**2, d, 1.0}


def test_layer_lr_decay_of_one_is_the_plain_optimizer():
    with_one, _, _, _ = one_step(1.0)
    plain, _, _, optimizer = one_step(None)
    assert optimizer.layer_lr_decay is None
    for a, b in zip(with_one, plain):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_layer_lr_decay_rejects_factors_outside_zero_one():
    with pytest.raises(ValueError, match="layer_lr_decay"):
        create_optimizer(layer_lr_decay=1.5)
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        create_optimizer(gradient_accumulation_steps=0)


def test_keras_file_round_trip_keeps_the_options(tmp_path):
    config = tiny_config("BertForSequenceClassification")
    model = bk.BertForSequenceClassification(config)
    model.compile(
        optimizer=create_optimizer(
            1e-3,
            total_steps=10,
            warmup_steps=2,
            gradient_accumulation_steps=2,
            layer_lr_decay=0.8,
        )
    )
    ids, labels = classification_data(config)
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"input_ids": ids}, {"labels": labels})
    ).batch(4)
    model.run_eagerly = True  # faster than tracing, for a few tiny steps
    model.fit(dataset.take(3), epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    loaded.run_eagerly = True
    optimizer = loaded.optimizer
    assert type(optimizer) is AdamW
    assert optimizer.gradient_accumulation_steps == 2
    assert optimizer.layer_lr_decay == 0.8
    assert optimizer.no_decay_names == ("bias", "gamma", "beta")
    schedule = schedule_of(optimizer)
    assert isinstance(schedule, UpdateCountSchedule) and schedule.steps == 2
    assert isinstance(schedule.schedule, WarmupLinearDecay)
    assert schedule.schedule.total_steps == 10
    # Saved mid-accumulation (3 micro-batches): both go on the same way.
    assert int(optimizer._iterations) == 3 and int(optimizer.iterations) == 1
    model.fit(dataset.skip(3), epochs=1, verbose=0)
    loaded.fit(dataset.skip(3), epochs=1, verbose=0)
    for a, b in zip(model.trainable_variables, loaded.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np, bert_keras as bk
    from bert_keras.training.optimization import create_optimizer
    config = bk.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=20, hidden_dropout_prob=0,
        attention_probs_dropout_prob=0, num_labels=3)
    rs = np.random.RandomState(0)
    ids = rs.randint(5, 50, (16, 12)).astype("int32")
    labels = rs.randint(0, 3, 16)

    def train(strategy, batch_size, accumulation):
        keras.utils.set_random_seed(5)
        with strategy.scope():
            model = bk.BertForSequenceClassification(config)
            model.compile(optimizer=create_optimizer(
                1e-2, total_steps=4, warmup_steps=1, weight_decay=0.1,
                clipnorm=0.05, gradient_accumulation_steps=accumulation))
        ds = tf.data.Dataset.from_tensor_slices(
            ({"input_ids": ids}, {"labels": labels})).batch(batch_size)
        model.fit(ds, epochs=2, verbose=0)
        return [float(x) for v in model.trainable_variables
                for x in v.numpy().ravel()]

    mirrored = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")])
    print("RESULT", json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "single_large": train(tf.distribute.get_strategy(), 8, None),
        "single_accumulated": train(tf.distribute.get_strategy(), 4, 2),
        "mirrored_large": train(mirrored, 8, None),
        "mirrored_accumulated": train(mirrored, 4, 2),
    }))
    """
)


@pytest.mark.slow
def test_accumulation_under_mirrored_strategy_updates_like_one_large_batch():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    weights = {k: np.asarray(v) for k, v in json.loads(line[7:]).items()}
    assert weights.pop("replicas").item() == 2
    large = weights["single_large"]
    # Clipping (0.05) is active: it applies to the replicas' summed gradient
    # (Keras alone clips each replica's part; bert_keras' AdamW sums first).
    np.testing.assert_allclose(weights["mirrored_large"], large, atol=1e-5, rtol=0)
    for run in ("single_accumulated", "mirrored_accumulated"):
        np.testing.assert_allclose(weights[run], large, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    return write_glue_dir(tmp_path_factory.mktemp("glue"))


@pytest.mark.slow
def test_glue_cli_flags_reach_the_optimizer(
    tiny_checkpoint, glue_dir, tmp_path, monkeypatch
):
    built = {}
    original = glue.training_optimizer

    def recording(args, batches_per_epoch, num_layers=None):
        built["optimizer"], built["total_steps"] = original(
            args, batches_per_epoch, num_layers
        )
        return built["optimizer"], built["total_steps"]

    monkeypatch.setattr(glue, "training_optimizer", recording)
    results = run_glue(
        "sst2", tiny_checkpoint, glue_dir, tmp_path,
        "--gradient-accumulation-steps", "2", "--layer-lr-decay", "0.9",
    )  # fmt: skip
    optimizer = built["optimizer"]
    assert optimizer.gradient_accumulation_steps == 2
    assert optimizer.layer_lr_decay == 0.9 and optimizer.num_layers == 2
    # 24 rows, batches of 4, 2 epochs: 12 micro-batches, 6 updates.
    assert built["total_steps"] == 6
    assert results["steps"] == results["planned_steps"] == 6
    assert results["hyperparameters"]["gradient_accumulation_steps"] == 2
    assert results["hyperparameters"]["layer_lr_decay"] == 0.9


@pytest.mark.slow
@pytest.mark.serial
def test_glue_cli_accumulating_on_two_workers_matches_one_process(tmp_path, tokenizer):
    """Accumulation and layer decay under MultiWorkerMirroredStrategy."""
    from tests.test_multiworker import close
    from tests.test_multiworker import glue_argv
    from tests.test_multiworker import run_cli_both_ways

    config = bk.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=37, max_position_embeddings=128,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    checkpoint = str(tmp_path / "checkpoint")
    bk.BertModel(config).save_pretrained(checkpoint, tokenizer=tokenizer)
    (tmp_path / "glue").mkdir()
    data = write_glue_dir(tmp_path / "glue")
    flags = ("--gradient-accumulation-steps", "2", "--layer-lr-decay", "0.8")
    one, two = run_cli_both_ways(
        lambda out, *extra: glue_argv(checkpoint, data, out, *flags, *extra),
        tmp_path,
    )
    assert two["replicas"] == 2 and one["replicas"] == 1
    assert two["steps"] == one["steps"] == one["planned_steps"]
    for a, b in zip(one["epochs"], two["epochs"], strict=True):
        for key in ("loss", "val_loss", "val_accuracy"):
            assert close(a[key], b[key]), (key, a, b)


@pytest.mark.slow
def test_squad_cli_flags_reach_the_optimizer(tiny_checkpoint, tmp_path, monkeypatch):
    from tasks import squad
    from tests.test_squad import SAMPLES

    built = []
    original = squad.training_optimizer
    monkeypatch.setattr(
        squad,
        "training_optimizer",
        lambda *args: built.append(original(*args)) or built[-1],
    )
    results = squad.main(
        ["--model", tiny_checkpoint, "--output-dir", str(tmp_path),
         "--train-file", f"{SAMPLES}/squad_v1_sample.json",
         "--max-train-samples", "40", "--epochs", "2", "--batch-size", "4",
         "--max-seq-length", "96", "--doc-stride", "32",
         "--max-query-length", "32", "--verbose", "0",
         "--gradient-accumulation-steps", "3", "--layer-lr-decay", "0.5"]
    )  # fmt: skip
    (optimizer, total_steps) = built[0]
    assert optimizer.gradient_accumulation_steps == 3
    assert optimizer.layer_lr_decay == 0.5 and optimizer.num_layers == 2
    assert results["steps"] == results["planned_steps"] == total_steps
    assert results["hyperparameters"]["gradient_accumulation_steps"] == 3
