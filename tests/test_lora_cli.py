"""LoRA in the task CLIs (tasks/lora_cli.py): flags, outputs and resume.

A `tasks.glue` run with --lora-rank writes an ordinary checkpoint to OUT (the
adapters merged) and a PEFT adapter to OUT/adapter that opens on the base
model in `peft` with the merged model's logits; bad flags are refused when
parsed; a resumed LoRA run continues with its adapters.
"""

import argparse
import json
import os

import keras
import numpy as np
import pytest
import safetensors.numpy
from conftest import tiny_config

import bert_keras as bk
from bert_keras.training.callbacks import ResumableCheckpoint
from tasks import glue
from tasks import lora_cli
from tasks import squad
from tests.test_glue_cli import write_glue_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SQUAD_SAMPLE = os.path.join(ROOT, "tests", "data", "squad_v1_sample.json")


def glue_args(tiny_checkpoint, *extra):
    return glue.parse_args(
        ["--task", "sst2", "--model", tiny_checkpoint, "--output-dir", "out",
         "--max-seq-length", "32", *extra]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--lora-rank", "0"], "--lora-rank must be at least 1"),
        (["--lora-rank", "two"], "invalid int value"),
        (["--lora-rank", "8", "--lora-alpha", "0"], "--lora-alpha must be"),
        (["--lora-rank", "8", "--lora-alpha", "nan"], "--lora-alpha must be"),
        (["--lora-rank", "8", "--lora-dropout", "1"], "in [0, 1)"),
        (["--lora-alpha", "16"], "--lora-alpha only apply with --lora-rank"),
        (["--lora-target-modules", "query"], "without --lora-rank"),
        (["--lora-rank", "8", "--lora-target-modules", ".*query"], "not regexes"),
        (["--lora-rank", "8", "--lora-target-modules", ","], "module names"),
        (["--lora-rank", "8", "--lora-target-modules", "all-linear", "key"], "alone"),
    ],
)
def test_bad_lora_flags_are_refused_when_parsed(
    tiny_checkpoint, extra, fragment, capsys
):
    with pytest.raises(SystemExit):
        glue_args(tiny_checkpoint, *extra)
    error = capsys.readouterr().err
    assert fragment in error
    assert "Received:" in error or "invalid" in error


def test_lora_on_an_evaluation_only_squad_run_is_refused(tiny_checkpoint, capsys):
    argv = ["--model", tiny_checkpoint, "--output-dir", "out", "--max-seq-length",
            "64", "--doc-stride", "16", "--max-query-length", "16",
            "--eval-file"]  # fmt: skip
    with pytest.raises(SystemExit):
        squad.parse_args([*argv, SQUAD_SAMPLE, "--lora-rank", "8"])
    assert "only evaluates" in capsys.readouterr().err
    args = squad.parse_args([*argv, SQUAD_SAMPLE, "--train-file", SQUAD_SAMPLE,
                             "--lora-rank", "4"])  # fmt: skip
    assert (args.lora_rank, args.lora_alpha) == (4, 8)


def test_lora_flags_get_peft_s_defaults(tiny_checkpoint):
    off = glue_args(tiny_checkpoint)
    assert [getattr(off, name) for name in lora_cli.LORA_FLAGS] == [None] * 4
    assert lora_cli.lora_hyperparameters(off) == {}
    args = glue_args(tiny_checkpoint, "--lora-rank", "8")
    assert lora_cli.lora_hyperparameters(args) == {
        "lora_rank": 8,
        "lora_alpha": 8,  # PEFT's LoraConfig default, not the rank
        "lora_target_modules": ["query", "value"],
        "lora_dropout": 0.0,
    }
    args = glue_args(tiny_checkpoint, "--lora-rank", "8", "--lora-alpha", "16",
                     "--lora-target-modules", "query,key", "value", "key")  # fmt: skip
    assert args.lora_alpha == 16 and isinstance(args.lora_alpha, int)
    assert args.lora_target_modules == ["query", "key", "value"]
    args = glue_args(tiny_checkpoint, "--lora-rank", "2", "--lora-alpha", "0.5",
                     "--lora-target-modules", "all-linear")  # fmt: skip
    assert args.lora_alpha == 0.5
    assert args.lora_target_modules == ["query", "key", "value", "dense"]
    assert lora_cli.base_model_name(tiny_checkpoint) == os.path.basename(
        tiny_checkpoint
    )
    assert lora_cli.base_model_name("google-bert/bert-base-uncased") == (
        "google-bert/bert-base-uncased"
    )


@pytest.mark.slow
def test_glue_lora_run_writes_merged_checkpoint_and_peft_adapter(
    tiny_checkpoint, tmp_path
):
    import peft
    import torch
    import transformers

    (tmp_path / "glue").mkdir()
    data = write_glue_dir(tmp_path / "glue")
    out = tmp_path / "out"
    results = glue.main(
        ["--task", "sst2", "--model", tiny_checkpoint, "--data-dir", data,
         "--output-dir", str(out), "--epochs", "2", "--batch-size", "4",
         "--max-seq-length", "32", "--verbose", "0", "--learning-rate", "1e-2",
         "--mixed-precision", "--lora-rank", "4", "--lora-alpha", "8",
         "--lora-dropout", "0.1"]
    )  # fmt: skip
    assert results["hyperparameters"]["lora_rank"] == 4
    saved = json.loads((out / "results.json").read_text())
    assert saved["hyperparameters"]["lora_target_modules"] == ["query", "value"]
    assert not (out / "backup").exists()

    # OUT: an ordinary checkpoint, the adapters merged.
    merged, info = transformers.BertForSequenceClassification.from_pretrained(
        out, output_loading_info=True
    )
    assert not any(info.values()), info
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == os.path.basename(tiny_checkpoint)
    assert (config["r"], config["lora_alpha"], config["task_type"]) == (4, 8, "SEQ_CLS")

    # Only the adapted kernels and the new classifier differ from the base.
    base = safetensors.numpy.load_file(
        os.path.join(tiny_checkpoint, "model.safetensors")
    )
    tuned = safetensors.numpy.load_file(out / "model.safetensors")
    changed = sorted(
        key
        for key in tuned
        if key.startswith("bert.")
        and not np.array_equal(tuned[key], base[key[len("bert.") :]])
    )
    assert changed == [
        f"bert.encoder.layer.{i}.attention.self.{name}.weight"
        for i in range(2)
        for name in ("query", "value")
    ]

    # OUT/adapter on the base model in PEFT: the merged model's logits.
    torch_base = transformers.BertForSequenceClassification.from_pretrained(
        tiny_checkpoint, num_labels=2
    )
    adapted = peft.PeftModel.from_pretrained(torch_base, out / "adapter").eval()
    merged.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["an absolute joy", "dull and flat , a tedious mess"],
                      padding=True, return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        expected = merged(**batch).logits.numpy()
        got = adapted(**batch).logits.numpy()
    assert np.abs(got - expected).max() <= 1e-4
    # The adapters trained (B starts at zero).
    adapter = safetensors.numpy.load_file(out / "adapter" / "adapter_model.safetensors")
    assert all(np.abs(v).max() > 0 for k, v in adapter.items() if "lora_B" in k)


def _lora_run(backup_dir, model=None, weights=None):
    """A tiny classifier with LoRA, compiled, and its resume callbacks."""
    if model is None:
        model = bk.BertForSequenceClassification(
            tiny_config("BertForSequenceClassification")
        )
        model.set_weights(weights)
    args = argparse.Namespace(
        lora_rank=2, lora_alpha=4, lora_target_modules=["query"], lora_dropout=0.0
    )
    checkpoint = ResumableCheckpoint(backup_dir, keep=1)
    callbacks = lora_cli.apply_lora(model, args, [checkpoint])
    # Eager: the tiny fits compile slower than they run.
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    return model, callbacks, checkpoint


def _lora_values(model):
    """Each LoRA layer's kernel as used (W + s A B), A and B."""
    return [
        np.array(value)
        for dense in bk.lora_state(model).layers.values()
        for value in (dense.kernel, dense.lora_kernel_a, dense.lora_kernel_b)
    ]


def test_a_resumed_lora_run_gets_its_adapters_back(tmp_path):
    """Keras' LoRA Dense backs up W + s A B, and zeroes A and B on load.

    Without the LoRA variables in the backup (`ResumableCheckpoint`), the
    resumed run would hold the trained adapters folded into its frozen
    kernels and zero adapters (which get zero gradients), and OUT/adapter
    would lose the epochs before the kill.
    """
    ids = np.random.RandomState(0).randint(1, 99, (8, 7))
    x = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    y = np.arange(8) % 2
    fit = dict(batch_size=4, shuffle=False, verbose=0)
    killed = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification")
    )
    base = killed.get_weights()
    base_by_path = {v.path: np.array(v) for v in killed.weights}
    killed, callbacks, _ = _lora_run(tmp_path, model=killed)
    killed.fit(x, y, epochs=1, callbacks=callbacks, **fit)  # then killed
    assert sorted(os.listdir(tmp_path / "epoch-000001")) == [
        "lora_variables.npz",
        "model.weights.h5",
        "training_metadata.json",
    ]
    trained = _lora_values(killed)
    assert np.abs(trained[2]).max() > 0  # B moved from zero

    # The same command again, with 1 epoch: it resumes after it, trains none.
    resumed, callbacks, checkpoint = _lora_run(tmp_path, weights=base)
    resumed.fit(x, y, epochs=1, callbacks=callbacks, **fit)
    assert checkpoint.restored_epoch == 1
    for ours, expected in zip(_lora_values(resumed), trained, strict=True):
        np.testing.assert_allclose(ours, expected, atol=1e-6)
    # The frozen weights are the base's (their kernel is not W + s A B).
    frozen = [v for v in resumed.weights if not v.trainable]
    assert len(frozen) > 10
    for variable in frozen:
        np.testing.assert_array_equal(np.array(variable), base_by_path[variable.path])
