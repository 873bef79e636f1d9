"""Issue 21, items 8 and 11: unusable tokenizers and nonsense flags are refused.

Every flag of `tasks.glue`, `tasks.squad` and `tasks.pretrain` that would give
a run without meaning is an argparse error (exit 2) naming it, before any
work; a tokenizer that cannot encode ordinary text (the 5-token placeholder
transformers builds for a directory without tokenizer files) is refused when
it is loaded, before any training.
"""

import os

import pytest
from conftest import tiny_config

import bert_keras as bk
from tasks import glue
from tasks import pretrain
from tasks import squad

SQUAD_SAMPLE = os.path.join(os.path.dirname(__file__), "data", "squad_v1_sample.json")
CORPUS = (
    "The people said that this was a good time to go home .\n"
    "They ate bread and fish by the sea .\n"
    "It was cold , and the wind blew all night .\n"
    "\n"
    "A small town lies on the river .\n"
    "Its old bridge was built of stone .\n"
    "Many visitors come in the summer to see it .\n"
) * 3


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory):
    """A model directory's config.json (512 positions): enough for parse_args."""
    path = tmp_path_factory.mktemp("config_only")
    tiny_config(max_position_embeddings=512).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def bare_model(tmp_path_factory):
    """A saved tiny model with 16 positions and no tokenizer files."""
    path = tmp_path_factory.mktemp("no_tokenizer")
    config = tiny_config(max_position_embeddings=16, num_labels=2)
    bk.BertModel(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue")
    (root / "SST-2").mkdir()
    rows = ["sentence\tlabel"] + ["a fine film\t1", "dull\t0"] * 2
    for split in ("train", "dev"):
        (root / "SST-2" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return str(root)


def refused(parse, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def case_id(cases):
    return [" ".join(extra) for extra, _ in cases]


# --- Item 11: every flag is checked up front ---------------------------------

GLUE_BAD = [
    (["--max-seq-length", "1"], "--max-seq-length"),
    (["--max-seq-length", "2"], "--max-seq-length"),
    (["--task", "mrpc", "--max-seq-length", "3"], "needs at least 5"),
    (["--task", "mrpc", "--max-seq-length", "4"], "needs at least 5"),
    (["--max-seq-length", "513"], "max_position_embeddings=512"),
    (["--learning-rate=-2e-5"], "--learning-rate"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--learning-rate", "inf"], "--learning-rate"),
    (["--weight-decay", "-0.01"], "--weight-decay"),
    (["--weight-decay", "nan"], "--weight-decay"),
    (["--warmup-ratio", "nan"], "--warmup-ratio"),
    (["--warmup-ratio", "1.5"], "--warmup-ratio"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--eval-batch-size", "-1"], "--eval-batch-size"),
    (["--max-train-samples", "0"], "--max-train-samples"),
    (["--max-eval-samples", "0"], "--max-eval-samples"),
    (["--seed", "-1"], "--seed"),
    (["--collective-timeout", "nan"], "--collective-timeout"),
]


@pytest.mark.parametrize("extra,named", GLUE_BAD, ids=case_id(GLUE_BAD))
def test_glue_refuses_nonsense_flags(extra, named, config_dir, tmp_path, capsys):
    argv = ["--task", "sst2", "--model", config_dir, "--output-dir", str(tmp_path)]
    err = refused(glue.parse_args, [*argv, *extra], capsys)
    assert named in err and "Received" in err


SQUAD_BAD = [
    (["--max-answer-length", "0"], "--max-answer-length"),
    (["--n-best-size", "0"], "--n-best-size"),
    (["--doc-stride", "0"], "--doc-stride"),
    (["--max-query-length", "0"], "--max-query-length"),
    (["--null-score-diff-threshold", "nan"], "--null-score-diff-threshold"),
    (["--max-eval-samples", "0"], "--max-eval-samples"),
    (["--max-train-samples", "0"], "--max-train-samples"),
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--weight-decay", "-1"], "--weight-decay"),
    # 16 question tokens + 3 special + a context longer than the 16 stride.
    (["--max-seq-length", "35"], "needs at least 36"),
    (["--doc-stride", "45"], "--doc-stride 45"),
    (["--max-seq-length", "600"], "max_position_embeddings=512"),
]


@pytest.mark.parametrize("extra,named", SQUAD_BAD, ids=case_id(SQUAD_BAD))
def test_squad_refuses_nonsense_flags(extra, named, config_dir, tmp_path, capsys):
    argv = [
        "--model", config_dir, "--output-dir", str(tmp_path), "--eval-file",
        "dev.json", "--max-seq-length", "64", "--max-query-length", "16",
        "--doc-stride", "16",
    ]  # fmt: skip
    err = refused(squad.parse_args, [*argv, *extra], capsys)
    assert named in err and "Received" in err


PRETRAIN_BAD = [
    (["--num-shards", "0"], "--num-shards"),
    (["--num-shards", "3"], "--num-shards 3"),
    (["--max-predictions-per-seq", "0"], "--max-predictions-per-seq"),
    (["--max-seq-length", "3"], "--max-seq-length"),
    (["--max-seq-length", "4"], "needs at least 5"),
    (["--max-seq-length", "1024"], "max_position_embeddings=512"),
    (["--config", '{"max_position_embeddings": 16}'], "max_position_embeddings=16"),
    (["--masked-lm-prob", "0"], "--masked-lm-prob"),
    (["--masked-lm-prob", "1.5"], "--masked-lm-prob"),
    (["--masked-lm-prob", "nan"], "--masked-lm-prob"),
    (["--short-seq-prob", "-0.1"], "--short-seq-prob"),
    (["--short-seq-prob", "nan"], "--short-seq-prob"),
    (["--dupe-factor", "0"], "--dupe-factor"),
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--learning-rate=-1e-4"], "--learning-rate"),
    (["--weight-decay", "-0.01"], "--weight-decay"),
    (["--warmup-steps", "-1"], "--warmup-steps"),
    (["--warmup-steps", "11"], "--warmup-steps"),
    (["--save-steps", "3"], "--save-steps 3"),
    (["--save-steps", "20"], "--save-steps 20"),
    (["--seed", "-5"], "--seed"),
    (["--vocab-size", "5"], "--vocab-size"),
    (["--data-wait", "nan"], "--data-wait"),
    (["--collective-timeout", "-1"], "--collective-timeout"),
    (["--line-by-line"], "--line-by-line"),
    (["--max-seq-length", "4"], "--max-seq-length 4"),
    (["--mlm-only", "--max-seq-length", "2"], "--max-seq-length 2"),
]


@pytest.mark.parametrize("extra,named", PRETRAIN_BAD, ids=case_id(PRETRAIN_BAD))
def test_pretrain_refuses_nonsense_flags(extra, named, tmp_path, capsys):
    argv = [
        "--corpus", "corpus.txt", "--output-dir", str(tmp_path), "--vocab-size",
        "100", "--max-steps", "10", "--save-steps", "5", "--batch-size", "8",
    ]  # fmt: skip
    err = refused(pretrain.parse_args, [*argv, *extra], capsys)
    assert named in err and "Received" in err


def test_sensible_flags_are_still_accepted(config_dir, tmp_path):
    out = ["--output-dir", str(tmp_path)]
    for task in ("sst2", "mrpc", "stsb"):
        glue.parse_args(["--task", task, "--model", config_dir, *out])
    glue.parse_args(
        ["--task", "mrpc", "--model", config_dir, *out, "--max-seq-length", "5",
         "--warmup-ratio", "0", "--weight-decay", "0", "--max-eval-samples", "1"]
    )  # fmt: skip
    squad.parse_args(["--model", config_dir, *out, "--eval-file", "dev.json"])
    pretrain.parse_args(["--corpus", "c.txt", *out, "--vocab-size", "8000"])
    args = pretrain.parse_args(
        ["--corpus", "c.txt", *out, "--tokenizer", "t", "--max-seq-length", "5",
         "--masked-lm-prob", "1", "--short-seq-prob", "0", "--max-steps", "6",
         "--save-steps", "3", "--config", config_dir]
    )  # fmt: skip
    assert args.warmup_steps == 0
    args = pretrain.parse_args(
        ["--corpus", "c.txt", *out, "--model", config_dir, "--mlm-only",
         "--line-by-line", "--max-seq-length", "3"]
    )  # fmt: skip
    assert args.mlm_only and args.line_by_line and args.model == config_dir


def test_pretrain_model_takes_no_config_and_no_second_vocabulary(
    config_dir, tmp_path, capsys
):
    out = ["--corpus", "c.txt", "--output-dir", str(tmp_path), "--model", config_dir]
    err = refused(pretrain.parse_args, [*out, "--config", config_dir], capsys)
    assert "--config and --model" in err and "Received" in err
    err = refused(pretrain.parse_args, [*out, "--vocab-size", "100"], capsys)
    assert "not allowed with argument" in err


# --- Item 11: --max-seq-length against the model, before any work -----------


def test_glue_max_seq_length_beyond_the_model_is_refused_before_work(
    bare_model, glue_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = [
        "--task", "sst2", "--model", bare_model, "--data-dir", glue_dir,
        "--output-dir", str(out), "--max-seq-length", "32", "--verbose", "0",
    ]  # fmt: skip
    err = refused(glue.main, argv, capsys)
    assert "--max-seq-length 32" in err and "max_position_embeddings=16" in err
    assert not out.exists()


def test_squad_max_seq_length_beyond_the_model_is_refused_before_work(
    bare_model, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = [
        "--model", bare_model, "--output-dir", str(out), "--eval-file", "dev.json",
        "--max-seq-length", "40", "--max-query-length", "8", "--doc-stride", "8",
    ]  # fmt: skip
    err = refused(squad.main, argv, capsys)
    assert "--max-seq-length 40" in err and "max_position_embeddings=16" in err
    assert not out.exists()


def test_pretrain_max_seq_length_beyond_the_config_is_refused_before_work(
    bare_model, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = [
        "--corpus", "corpus.txt", "--output-dir", str(out), "--vocab-size", "100",
        "--config", bare_model, "--max-seq-length", "32",
    ]  # fmt: skip
    err = refused(pretrain.main, argv, capsys)
    assert "--max-seq-length 32" in err and "max_position_embeddings=16" in err
    assert "--config" in err
    assert not out.exists()


# --- Item 8: a tokenizer that cannot encode text -----------------------------


def test_the_placeholder_tokenizer_is_refused_and_real_ones_pass(
    bare_model, tokenizer, tmp_path
):
    from tasks.cli import load_tokenizer
    from tasks.pretrain_vocab import train_wordpiece

    # What transformers builds for a directory without tokenizer files.
    placeholder = bk.AutoTokenizer.from_pretrained(bare_model)
    assert len(placeholder) == 5
    with pytest.raises(ValueError) as error:
        load_tokenizer(bare_model, "--model")
    message = str(error.value)
    assert "--model" in message and bare_model in message
    assert "vocabulary of 5 tokens" in message and "tokenizer.json" in message

    # A real vocabulary and a small one trained on a tiny corpus both pass.
    tokenizer.save_pretrained(tmp_path / "real")
    assert load_tokenizer(str(tmp_path / "real"), "--model").vocab == tokenizer.vocab
    small = train_wordpiece(CORPUS.splitlines(), vocab_size=60)
    small.save_pretrained(tmp_path / "small")
    assert len(load_tokenizer(str(tmp_path / "small"), "--tokenizer")) == len(small)


def test_glue_refuses_a_model_without_tokenizer_files(bare_model, glue_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="--model .*vocabulary of 5 tokens"):
        glue.main(
            ["--task", "sst2", "--model", bare_model, "--data-dir", glue_dir,
             "--output-dir", str(out), "--max-seq-length", "16", "--epochs", "1",
             "--batch-size", "2", "--verbose", "0"]
        )  # fmt: skip
    assert not (out / "model.safetensors").exists()


def test_squad_refuses_a_model_without_tokenizer_files(bare_model, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="--model .*vocabulary of 5 tokens"):
        squad.main(
            ["--model", bare_model, "--output-dir", str(out), "--eval-file",
             SQUAD_SAMPLE, "--max-eval-samples", "4", "--max-seq-length", "16",
             "--max-query-length", "4", "--doc-stride", "4", "--verbose", "0"]
        )  # fmt: skip
    assert not (out / "results.json").exists()


def test_pretrain_refuses_a_tokenizer_dir_without_tokenizer_files(bare_model, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="--tokenizer .*vocabulary of 5 tokens"):
        pretrain.main(
            ["--corpus", str(corpus), "--output-dir", str(out), "--tokenizer",
             bare_model, "--config", bare_model, "--max-seq-length", "16",
             "--max-steps", "2", "--save-steps", "2", "--batch-size", "4",
             "--num-shards", "2", "--dupe-factor", "1", "--verbose", "0"]
        )  # fmt: skip
    assert not (out / "model.safetensors").exists()
    assert not (out / "work" / "instances.json").exists()
