"""TFLite and ONNX exports of the id-input signature, and the export CLI.

Each tiny model is converted once per module (`exports`); every check runs
the converted file (LiteRT interpreter, onnxruntime) against the Keras model
on the same right-padded ids, within 1e-4. The SavedModel side is tested in
the SavedModel's own tests.
"""

import os

import numpy as np
import pytest
from conftest import max_abs_diff
from conftest import perturb_keras
from conftest import random_inputs
from conftest import tiny_config

import bert_keras as bk
from bert_keras.errors import ConfigError
from bert_keras.serving import onnx as onnx_export
from bert_keras.serving import tflite as tflite_export
from bert_keras.serving.savedmodel import id_input_signature

MAX_LENGTH = 16
# Real tokens per row: full, half, [CLS] x [SEP].
LENGTHS = (16, 9, 3)
ATOL = 1e-4
CLASSES = (
    "BertModel",
    "BertForSequenceClassification",
    "BertForQuestionAnswering",
    "BertForMultipleChoice",
)
CHOICES = 2


@pytest.fixture(scope="module")
def models():
    built = {}
    for name in CLASSES:
        model = getattr(bk, name)(tiny_config(name))
        built[name] = perturb_keras(model, seed=len(built))
    return built


@pytest.fixture(scope="module")
def exports(models):
    """`{(class name, format): runner}`, converted on first use."""
    cache = {}

    def get(name, form):
        if (name, form) not in cache:
            model = models[name]
            if form == "onnx":
                proto = onnx_export.convert_to_onnx(model, max_length=MAX_LENGTH)
                session = onnx_export.onnx_session(proto)
                cache[name, form] = lambda x: _onnx_outputs(session, x)
            else:
                flatbuffer = tflite_export.convert_to_tflite(
                    model, max_length=MAX_LENGTH, int8=form == "tflite_int8"
                )
                runner = tflite_export.tflite_runner(flatbuffer)
                cache[name, form] = lambda x, run=runner: run(**x)
                cache[name, form + "_bytes"] = len(flatbuffer)
        return cache[name, form]

    get.cache = cache
    return get


def _onnx_outputs(session, inputs):
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs)))


def _inputs(batch=3, seed=0, choices=None):
    """int32 ids (batch, MAX_LENGTH), or (batch, choices, MAX_LENGTH)."""
    rows = batch * (choices or 1)
    lengths = [LENGTHS[row % len(LENGTHS)] for row in range(rows)]
    inputs = random_inputs(
        tiny_config(), batch=rows, seq=MAX_LENGTH, lengths=lengths, seed=seed
    )
    shape = (batch, choices, MAX_LENGTH) if choices else (batch, MAX_LENGTH)
    return {
        name: value.astype(np.int32).reshape(shape) for name, value in inputs.items()
    }


def _assert_matches_keras(model, outputs, inputs, atol=ATOL):
    expected = model(inputs, training=False)
    assert sorted(outputs) == sorted(expected)
    for name, value in expected.items():
        diff = max_abs_diff(outputs[name], value)
        assert diff <= atol, f"{name}: max abs diff {diff:.3g} > {atol}"


# Sequence classification's ONNX export is checked through the CLI below.
@pytest.mark.parametrize(
    "name, form",
    [
        ("BertModel", "onnx"),
        ("BertModel", "tflite"),
        ("BertForSequenceClassification", "tflite"),
        ("BertForQuestionAnswering", "onnx"),
        ("BertForMultipleChoice", "onnx"),
    ],
)
def test_id_model_matches_keras(models, exports, name, form):
    run = exports(name, form)
    choices = CHOICES if name == "BertForMultipleChoice" else None
    for batch, seed in ((3, 0), (1, 1)):  # the batch is dynamic
        inputs = _inputs(batch, seed, choices)
        _assert_matches_keras(models[name], run(inputs), inputs)


def test_tflite_int8_is_smaller_and_close(models, exports):
    name = "BertForSequenceClassification"
    run = exports(name, "tflite_int8")
    exports(name, "tflite")
    inputs = _inputs()
    float32_bytes = exports.cache[name, "tflite_bytes"]
    assert exports.cache[name, "tflite_int8_bytes"] < 0.7 * float32_bytes
    expected = models[name](inputs, training=False)["logits"]
    diff = max_abs_diff(run(inputs)["logits"], expected)
    # Quantized weights: not the float32 bound, but close on these logits.
    assert 0 < diff <= 0.05, diff


def test_bk_export_writes_each_format(models, tmp_path):
    model = models["BertModel"]
    inputs = _inputs()
    path = bk.export(model, tmp_path / "m.tflite", format="tflite", max_length=16)
    assert str(path).endswith("m.tflite")
    runner = tflite_export.tflite_runner((tmp_path / "m.tflite").read_bytes())
    _assert_matches_keras(model, runner(**inputs), inputs)
    with pytest.raises(ConfigError, match="Unknown export format.*'torchscript'"):
        bk.export(model, tmp_path / "x", format="torchscript")
    with pytest.raises(ConfigError, match="takes token ids, not strings"):
        bk.export(model, tmp_path / "m.onnx", format="onnx", tokenizer=object())
    assert not (tmp_path / "x").exists() and not (tmp_path / "m.onnx").exists()


def test_id_signature_shapes(models):
    model = models["BertModel"]
    specs = id_input_signature(model, MAX_LENGTH)
    assert [spec.name for spec in specs] == [
        "input_ids",
        "token_type_ids",
        "attention_mask",
    ]
    assert [spec.shape.as_list() for spec in specs] == [[None, MAX_LENGTH]] * 3
    dynamic = id_input_signature(model, None)
    assert dynamic[0].shape.as_list() == [None, None]


@pytest.mark.parametrize("max_length", [0, 65, 16.0, True])
def test_max_length_out_of_range_is_refused(models, max_length):
    with pytest.raises(ConfigError, match="max_length"):
        id_input_signature(models["BertModel"], max_length)


def test_tflite_refuses_a_dynamic_sequence_length(models):
    with pytest.raises(ConfigError, match="fixed sequence length"):
        tflite_export.convert_to_tflite(models["BertModel"], max_length=None)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, models, tokenizer):
    """A tiny classifier saved with the real MiniLM tokenizer (the CLI's input)."""
    directory = str(tmp_path_factory.mktemp("checkpoint"))
    models["BertForSequenceClassification"].save_pretrained(
        directory, tokenizer=tokenizer
    )
    return directory


def test_cli_exports_onnx_beside_its_tokenizer(models, checkpoint, tmp_path):
    from tasks import export

    output = str(tmp_path / "onnx")
    argv = ["--model", checkpoint, "--output", output, "--format", "onnx"]
    result = export.main([*argv, "--max-length", str(MAX_LENGTH)])
    assert result["architecture"] == "BertForSequenceClassification"
    assert os.path.isfile(os.path.join(output, "tokenizer.json"))
    session = onnx_export.onnx_session(os.path.join(output, "model.onnx"))
    model = models["BertForSequenceClassification"]
    for batch, seed in ((3, 0), (1, 1)):
        inputs = _inputs(batch, seed)
        outputs = _onnx_outputs(session, inputs)
        _assert_matches_keras(model, outputs, inputs)
    argv += ["--max-length", str(MAX_LENGTH)]
    with pytest.raises(SystemExit):  # a second export does not overwrite
        export.parse_args(argv)
    assert export.parse_args([*argv, "--overwrite"]).overwrite


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--format", "onnx", "--int8"], "--int8 quantizes TFLite models only"),
        (["--format", "tflite", "--text-pair"], "--text-pair"),
        (["--format", "onnx", "--max-length", "2"], "at least 3"),
        (["--format", "onnx", "--max-length", "65"], "max_position_embeddings (64)"),
        (["--format", "keras"], "invalid choice"),
    ],
)
def test_cli_refuses_bad_flags(checkpoint, tmp_path, capsys, flags, message):
    from tasks import export

    with pytest.raises(SystemExit) as error:
        export.parse_args(["--model", checkpoint, "--output", str(tmp_path), *flags])
    assert error.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_overwrite_never_removes_what_is_not_a_savedmodel(
    checkpoint, tmp_path, capsys
):
    from tasks import export

    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit):
        export.parse_args(
            ["--model", checkpoint, "--output", str(tmp_path)]
            + ["--format", "savedmodel", "--max-length", "16", "--overwrite"]
        )
    assert "not a SavedModel" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").exists()


def test_cli_refuses_a_directory_without_config(tmp_path, capsys):
    from tasks import export

    with pytest.raises(SystemExit):
        export.parse_args(
            ["--model", str(tmp_path), "--output", str(tmp_path / "out")]
            + ["--format", "onnx"]
        )
    assert "config.json" in capsys.readouterr().err
