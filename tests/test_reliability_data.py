"""Data files the task CLIs refuse when they are read (issue 21, items 9, 10, 13, 14).

GLUE TSVs and SQuAD JSON with NaN labels, invalid UTF-8, overlong fields,
non-ASCII digits, no examples, v2 questions in v1 mode, duplicate ids or
malformed entries are refused by the readers with an error naming the file and
the line (or the JSON entry), before any training; results files never hold
NaN.
"""

import json
import os

import pytest

from tasks import glue
from tasks import squad
from tasks.glue_tasks import get_task
from tasks.glue_tasks import load_glue
from tasks.glue_tasks import read_tsv
from tasks.reporting import write_json
from tasks.squad_data import SquadFormatError
from tasks.squad_data import read_squad

STSB_HEADER = (
    "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
    "sentence2\tscore"
)


def stsb_row(score, first="A man sleeps.", second="A man rests."):
    return f"0\tg\tf\t2012\t0\tn\tn\t{first}\t{second}\t{score}"


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


# --- GLUE ---------------------------------------------------------------------


@pytest.mark.parametrize("score", ["nan", "NaN", "inf", "-Infinity", "1e400"])
def test_non_finite_glue_labels_are_refused_with_file_and_line(tmp_path, score):
    path = write(
        tmp_path / "STS-B" / "dev.tsv",
        "\n".join([STSB_HEADER, stsb_row("4.5"), stsb_row(score)]) + "\n",
    )
    with pytest.raises(ValueError, match=r"dev\.tsv, line 3: .*not a finite number"):
        read_tsv(path, get_task("stsb"))


def test_a_non_ascii_digit_label_is_a_label_error(tmp_path):
    path = write(tmp_path / "train.tsv", "sentence\tlabel\nfine\t1\nsquared\t²\n")
    with pytest.raises(ValueError, match=r"train\.tsv, line 3: .*label set.*'²'"):
        read_tsv(path, get_task("sst2"))


@pytest.mark.parametrize(
    ("content", "line", "column"),
    [
        (b"sentence\tlabel\nfine\t1\ncaf\xe9 au lait\t1\n", 3, 4),
        (b"\xef\xbb\xbfsentence\tlabel\nfine\t1\nok\t1\n\xff\t0\n", 4, 1),
    ],
)
def test_invalid_utf8_in_a_tsv_names_file_and_line(tmp_path, content, line, column):
    path = write(tmp_path / "train.tsv", content)
    with pytest.raises(
        ValueError,
        match=rf"train\.tsv, line {line}: not valid UTF-8 .*column {column}\b",
    ):
        read_tsv(path, get_task("sst2"))


def test_a_megabyte_field_names_file_and_line(tmp_path):
    path = write(
        tmp_path / "train.tsv",
        "sentence\tlabel\nfine\t1\n" + "x" * 1_000_000 + "\t1\nok\t0\n",
    )
    with pytest.raises(
        ValueError, match=r"train\.tsv, line 3: a field is longer than .* limit"
    ):
        read_tsv(path, get_task("sst2"))


@pytest.mark.parametrize(
    ("task", "content", "found"),
    [
        ("sst2", "", "0 line"),
        ("sst2", "sentence\tlabel\n", "0 line"),
        ("cola", "", "0 line"),
        ("sst2", "sentence\tlabel\nno label here\nnor here\n", r"lines \[2, 3\]"),
        ("rte", "index\tsentence1\tsentence2\tlabel\n0 only one field\n", "line"),
    ],
)
def test_glue_files_without_examples_are_refused(tmp_path, task, content, found):
    path = write(tmp_path / "dev.tsv", content)
    with pytest.raises(ValueError, match=rf"dev\.tsv has no examples: .*{found}"):
        read_tsv(path, get_task(task))


def test_an_evaluation_file_with_one_score_is_refused(tmp_path):
    """Pearson and Spearman are NaN on constant references."""
    rows = [STSB_HEADER, stsb_row("2.0"), stsb_row("2.0", "A dog.", "A cat.")]
    write(tmp_path / "STS-B" / "train.tsv", "\n".join(rows) + "\n")
    write(tmp_path / "STS-B" / "dev.tsv", "\n".join(rows) + "\n")
    splits, _ = load_glue(get_task("stsb"), str(tmp_path), ("train",))
    assert splits["train"]["label"] == [2.0, 2.0]  # training on it is fine
    with pytest.raises(ValueError, match=r"dev\.tsv: every score is 2\.0"):
        load_glue(get_task("stsb"), str(tmp_path), ("train", "dev"))


def test_readable_glue_files_still_load(tmp_path):
    path = write(
        tmp_path / "train.tsv",
        "\ufeffsentence\tlabel\ncafé ²\t1\n" + "y" * 100_000 + "\t0\n",
    )
    dataset, stats = read_tsv(path, get_task("sst2"))
    assert dataset["label"] == [1, 0]
    assert dataset["sentence1"][0] == "café ²"
    assert stats["rows"] == 2


# --- results.json -------------------------------------------------------------


def test_write_json_refuses_nan_and_names_the_key(tmp_path):
    import numpy as np

    path = tmp_path / "results.json"
    for payload, key in [
        ({"eval_pearson": float("nan"), "eval_spearmanr": 0.5}, "eval_pearson"),
        ({"epochs": [{"epoch": 1, "val_loss": np.float32("inf")}]}, "val_loss"),
        ([{"epoch": 1, "val_pearson": np.float64("nan")}], "val_pearson"),
    ]:
        with pytest.raises(ValueError, match=rf"non-finite.*{key} = (nan|inf)"):
            write_json(str(path), payload)
        assert not os.listdir(tmp_path)  # nothing written, no temp file

    write_json(str(path), {"f1": np.float32(0.5), "steps": np.int64(3), "x": None})

    def strict(constant):
        raise AssertionError(f"{constant} in results.json")

    assert json.loads(path.read_text(), parse_constant=strict) == {
        "f1": 0.5,
        "steps": 3,
        "x": None,
    }


# --- SQuAD --------------------------------------------------------------------

CONTEXT = "The Eiffel Tower is in Paris. It was finished in 1889."


def qa(qid, answers=(("Paris", 23),), **extra):
    return {
        "id": qid,
        "question": "Where is it?",
        "answers": [{"text": t, "answer_start": s} for t, s in answers],
        **extra,
    }


def squad_json(path, qas, context=CONTEXT, raw=None):
    payload = raw or {"data": [{"title": "T", "paragraphs": [
        {"context": context, "qas": qas}]}]}  # fmt: skip
    return write(path, json.dumps(payload))


def test_a_v2_file_in_v1_mode_is_refused_naming_the_flag(tmp_path):
    path = squad_json(
        tmp_path / "dev.json",
        [qa("a"), qa("b", (), is_impossible=True), qa("c", ())],
    )
    with pytest.raises(
        SquadFormatError,
        match=r"dev\.json: 2 of 3 .*no answer.*qas\[1\] \(id 'b'\).*"
        r"--version-2-with-negative",
    ):
        read_squad(path)
    dataset, stats = read_squad(path, version_2_with_negative=True)
    assert stats["unanswerable"] == 2 and len(dataset) == 3


def test_a_training_file_without_answers_is_refused(tmp_path):
    path = squad_json(tmp_path / "train.json", [qa("a", (), is_impossible=True)])
    with pytest.raises(SquadFormatError, match=r"train\.json: none of .* answer"):
        read_squad(path, version_2_with_negative=True, train=True)
    read_squad(path, version_2_with_negative=True)  # evaluation: fine


def test_duplicate_question_ids_are_refused(tmp_path):
    path = squad_json(tmp_path / "dev.json", [qa("a"), qa("b"), qa("a")])
    with pytest.raises(
        SquadFormatError, match=r"qas\[2\] \(id 'a'\) repeats the id of .*qas\[0\]"
    ):
        read_squad(path)


BAD_ENTRIES = {
    "answers as a dict": (
        [{"id": "a", "question": "Q?", "answers": {"text": ["Paris"],
                                                    "answer_start": [23]}}],
        CONTEXT, r"qas\[0\] \(id 'a'\) has a wrong `answers`",
    ),
    "question not an object": (
        [qa("a"), "Where is it?"], CONTEXT, r"qas\[1\] is not a JSON object"
    ),
    "numeric context": ([qa("a")], 1889, r"paragraphs\[0\] has a wrong `context`"),
    "null question": (
        [{"id": "a", "question": None, "answers": []}], CONTEXT,
        r"qas\[0\] \(id 'a'\) has no `question`",
    ),
    "answer not an object": (
        [{"id": "a", "question": "Q?", "answers": ["Paris"]}], CONTEXT,
        r"qas\[0\] \(id 'a'\) answers\[0\] is not a JSON object",
    ),
    "string is_impossible": (
        [qa("a", is_impossible="false")], CONTEXT, "`is_impossible` that is not",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_ENTRIES))
def test_malformed_squad_entries_are_format_errors(tmp_path, case):
    qas, context, message = BAD_ENTRIES[case]
    path = squad_json(tmp_path / "dev.json", qas, context)
    with pytest.raises(SquadFormatError, match=r"dev\.json: data\[0\].*" + message):
        read_squad(path)


@pytest.mark.parametrize(
    "payload",
    [
        {"data": []},
        {"data": [{"title": "T", "paragraphs": []}]},
        {"data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": []}]}]},
        {"data": [{"paragraphs": [{"context": "", "qas": [qa("a")]}]}]},
    ],
)
def test_squad_files_without_questions_are_refused(tmp_path, payload):
    path = squad_json(tmp_path / "dev.json", None, raw=payload)
    with pytest.raises(SquadFormatError, match=r"dev\.json has no questions"):
        read_squad(path)


def test_invalid_utf8_in_squad_json_names_the_line(tmp_path):
    content = b"""{"data": [{"title": "T",
  "paragraphs": [{"context": "The Eiffel Tower is in Paris.",
    "qas": [{"id": "a", "question": "Where?",
      "answers": [{"text": "Par\xe9s", "answer_start": 23}]}]}]}]}
"""
    path = write(tmp_path / "dev.json", content)
    with pytest.raises(
        SquadFormatError, match=r"dev\.json, line 4: not valid UTF-8 .*column 32\b"
    ):
        read_squad(path)


# --- CLIs refuse before training ----------------------------------------------


def glue_command(model, data_dir, out, task="sst2", *extra):
    return ["--task", task, "--model", model, "--data-dir", str(data_dir),
            "--output-dir", str(out), "--epochs", "1", "--batch-size", "2",
            "--max-seq-length", "16", "--verbose", "0", *extra]  # fmt: skip


STSB_OK = "\n".join([STSB_HEADER, stsb_row("4.5"), stsb_row("0.5")]) + "\n"


@pytest.mark.parametrize(
    ("task", "train", "dev", "message"),
    [
        ("sst2", "sentence\tlabel\n", "sentence\tlabel\nok\t1\n", r"train\.tsv has no"),
        ("sst2", "sentence\tlabel\nok\t1\n", "", r"dev\.tsv has no examples"),
        ("stsb", STSB_OK, STSB_OK + stsb_row("nan"), r"dev\.tsv, line 4: .*finite"),
    ],
)
def test_glue_cli_refuses_bad_files_before_training(
    tiny_checkpoint, tmp_path, task, train, dev, message
):
    folder = tmp_path / "glue" / get_task(task).directory
    write(folder / "train.tsv", train)
    write(folder / "dev.tsv", dev)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        glue.main(glue_command(tiny_checkpoint, tmp_path / "glue", out, task))
    assert not (out / "model.safetensors").exists()
    assert not (out / "results.json").exists()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:An input array is constant")
def test_glue_cli_with_a_nan_metric_fails_and_writes_no_nan(tiny_checkpoint, tmp_path):
    """Two equal dev scores: the Pearson correlation is NaN; the run must fail."""
    rows = [STSB_HEADER] + [
        stsb_row(score, f"A man sleeps {i}.", "A man rests.")
        for i, score in enumerate(("2.5", "2.5", "0.5", "4.0"))
    ]
    write(tmp_path / "glue" / "STS-B" / "train.tsv", "\n".join(rows) + "\n")
    write(tmp_path / "glue" / "STS-B" / "dev.tsv", "\n".join(rows) + "\n")
    out = tmp_path / "out"
    command = glue_command(
        tiny_checkpoint, tmp_path / "glue", out, "stsb", "--max-eval-samples", "2"
    )
    with pytest.raises(ValueError, match=r"non-finite.*pearson = nan"):
        glue.main(command)
    for root, _, files in os.walk(out):
        for name in files:
            if name.endswith(".json"):
                text = open(os.path.join(root, name), encoding="utf-8").read()
                assert "NaN" not in text, name
    assert not (out / "results.json").exists()


def test_squad_cli_refuses_a_v2_file_in_v1_mode_before_training(
    tiny_checkpoint, tmp_path
):
    path = squad_json(
        tmp_path / "train.json", [qa("a"), qa("b", (), is_impossible=True)]
    )
    out = tmp_path / "out"
    with pytest.raises(SquadFormatError, match="--version-2-with-negative"):
        squad.main(
            ["--model", tiny_checkpoint, "--output-dir", str(out),
             "--train-file", path, "--eval-file", path, "--epochs", "1",
             "--max-seq-length", "64", "--max-query-length", "16",
             "--doc-stride", "16", "--verbose", "0"]
        )  # fmt: skip
    assert not (out / "model.safetensors").exists()
    assert not (out / "results.json").exists()


def test_squad_cli_refuses_a_hub_v2_dataset_in_v1_mode(
    tiny_checkpoint, tmp_path, monkeypatch
):
    import datasets

    def load_dataset(name, split):
        return datasets.Dataset.from_dict(
            {"id": ["a", "b"], "title": ["T", "T"], "context": [CONTEXT] * 2,
             "question": ["Where?", "Who?"],
             "answers": [{"text": ["Paris"], "answer_start": [23]},
                         {"text": [], "answer_start": []}]}
        )  # fmt: skip

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    out = tmp_path / "out"
    with pytest.raises(SquadFormatError, match="1 of 2 .*--version-2-with-negative"):
        squad.main(
            ["--model", tiny_checkpoint, "--output-dir", str(out),
             "--dataset", "rajpurkar/squad_v2", "--epochs", "1",
             "--max-seq-length", "64", "--max-query-length", "16",
             "--doc-stride", "16", "--verbose", "0"]
        )  # fmt: skip
    assert not (out / "model.safetensors").exists()
