"""`tasks.pretrain` refuses nonsense (issue 21, items 5, 9, 14 and 16).

A rerun into an existing output directory resumes only with the settings and
files it was made with; a corpus that gives next-sentence prediction nothing
to learn is refused before any training; --config mistakes name the flag; the
WordPiece vocabulary is the same in every run and every process.
"""

import hashlib
import json
import os
import random
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {
    "hidden_size": 24,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}
WORDS = (
    "the a people said that this was good time to go home and eat river city "
    "king song album game ship war year team film band music north south old"
).split()


def write_corpus(path, documents=8, sentences=5, seed=0):
    """BERT format: a sentence per line, a blank line between documents."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(documents):
            for _ in range(sentences):
                words = rng.choices(WORDS, k=rng.randint(4, 9))
                handle.write(" ".join(words).capitalize() + " .\n")
            handle.write("\n")
    return str(path)


def flags(corpus, out, *extra):
    return [
        "--corpus", str(corpus), "--output-dir", str(out), "--vocab-size", "90",
        "--config", json.dumps(TINY), "--max-steps", "2", "--save-steps", "1",
        "--batch-size", "4", "--num-shards", "2", "--dupe-factor", "1",
        "--max-seq-length", "24", "--max-predictions-per-seq", "4",
        "--verbose", "0", *extra,
    ]  # fmt: skip


def refusal(capsys, argv):
    """Runs the CLI, which must refuse; returns the text of its refusal."""
    from tasks import pretrain

    with pytest.raises((ValueError, SystemExit, OSError)) as caught:
        pretrain.main(argv)
    return f"{caught.value} {capsys.readouterr().err}"


def replace(argv, flag, value):
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def test_a_rerun_with_other_settings_or_files_is_refused(tmp_path, capsys):
    """Item 5: the tokenizer, instances and checkpoint of another run are not reused."""
    from tasks import pretrain
    from tasks.pretrain_vocab import train_wordpiece

    corpus = write_corpus(tmp_path / "corpus.txt")
    tokenizer_dir = tmp_path / "tokenizer"
    with open(corpus, encoding="utf-8") as handle:
        train_wordpiece(handle, 90).save_pretrained(tokenizer_dir)
    out = tmp_path / "out"
    command = replace(flags(corpus, out), "--vocab-size", "90")
    command[command.index("--vocab-size")] = "--tokenizer"
    command[command.index("--tokenizer") + 1] = str(tokenizer_dir)
    assert pretrain.main(command)["steps"] == 2
    made = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    changes = {
        "--max-steps was 2, is 4": replace(command, "--max-steps", "4"),
        "--max-seq-length was 24, is 32": replace(command, "--max-seq-length", "32"),
        "--config": replace(
            command, "--config", json.dumps({**TINY, "intermediate_size": 41})
        ),
    }
    for expected, argv in changes.items():
        message = refusal(capsys, argv)
        assert expected in message and "new or empty --output-dir" in message

    # The same paths, other contents.
    with open(corpus, "a", encoding="utf-8") as handle:
        handle.write("One more document .\nWith two sentences .\n")
    message = refusal(capsys, command)
    assert "--corpus" in message and "corpus.txt" in message
    write_corpus(corpus)  # the original text again

    with open(corpus, encoding="utf-8") as handle:
        train_wordpiece(handle, 70).save_pretrained(tokenizer_dir)
    message = refusal(capsys, command)
    assert "--tokenizer" in message and "tokenizer.json" in message
    with open(corpus, encoding="utf-8") as handle:
        train_wordpiece(handle, 90).save_pretrained(tokenizer_dir)

    # No refusal touched the run; the same command still resumes it.
    assert {p: p.stat().st_mtime_ns for p in made} == made
    results = pretrain.main(command)
    assert results["steps"] == 2 and results["steps_this_run"] == 0


def test_an_unfinished_preparation_is_redone_with_the_new_corpus(tmp_path):
    """Item 5: a tokenizer left by a run killed while preparing is not reused."""
    from tasks import pretrain

    corpus = write_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "out"
    args = pretrain.parse_args(flags(corpus, out))
    work = str(out / "work")
    # A kill after the tokenizer was saved, before the instances were done.
    stale = write_corpus(tmp_path / "stale.txt")
    with open(stale, encoding="utf-8") as handle:
        text = handle.read().replace("river", "zzz")
    with open(stale, "w", encoding="utf-8") as handle:
        handle.write(text)
    pretrain.prepare_data(pretrain.parse_args(flags(stale, out)), work)
    os.remove(os.path.join(work, "instances.json"))

    pretrain.prepare_data(args, work, pretrain.check_run_settings(args, work))
    saved = json.loads((out / "work" / "tokenizer" / "tokenizer.json").read_text())
    vocab = saved["model"]["vocab"]
    assert "river" in vocab and "zzz" not in vocab
    assert json.loads((out / "work" / "run.json").read_text())["corpus_contents"]
    assert pretrain.check_run_settings(args, work)  # the same run: accepted

    # Data of a run that recorded no settings (an older version) is not reused.
    os.remove(os.path.join(work, "run.json"))
    with pytest.raises(SystemExit, match="settings were not recorded"):
        pretrain.check_run_settings(args, work)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "no text"),
        ("\n\n\n", "no text"),
        ("Just one line of text .\n", "single document"),
        (
            "".join(f"Sentence {i} of the only document .\n" for i in range(40)),
            "single document",
        ),
        # Documents of one sentence: sentence B always from another document.
        ("".join(f"Lonely sentence {i} .\n\n" for i in range(12)), "true continuation"),
    ],
    ids=["empty", "blank-lines", "one-line", "no-document-breaks", "one-sentence-docs"],
)
def test_a_corpus_without_usable_pairs_is_refused(tmp_path, capsys, text, expected):
    """Item 9: no run trains on no data or on pairs of one NSP class."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    message = refusal(capsys, flags(corpus, out))
    assert expected in message and "corpus.txt" in message
    assert "blank line between documents" in message
    assert not (out / "results.json").exists()
    assert not (out / "model.safetensors").exists()
    assert not (out / "work" / "instances.json").exists()


@pytest.mark.parametrize("wikitext", [False, True], ids=["bert-format", "wikitext"])
def test_invalid_utf8_in_the_corpus_names_the_file_and_line(tmp_path, capsys, wikitext):
    """Item 14: a Latin-1 byte in the corpus was a bare UnicodeDecodeError."""
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus)
    lines = corpus.read_bytes().split(b"\n")
    lines[6] = b"Caf\xe9 au lait was good ."
    if wikitext:
        lines.insert(0, b" = Title = ")
    corpus.write_bytes(b"\n".join(lines))
    out = tmp_path / "out"
    message = refusal(capsys, flags(corpus, out))
    line = 8 if wikitext else 7
    assert f"corpus.txt, line {line}: not valid UTF-8" in message, message
    assert "iconv" in message
    assert not (out / "work" / "instances.json").exists()


def test_dupe_factor_zero_is_refused(tmp_path, capsys):
    """Item 9: --dupe-factor 0 made 0 instances, "0 steps" and exit 0."""
    corpus = write_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "out"
    message = refusal(capsys, replace(flags(corpus, out), "--dupe-factor", "0"))
    assert "--dupe-factor" in message
    assert not (out / "results.json").exists()


def test_instances_hold_both_next_sentence_labels(tmp_path):
    """Item 9: a usable corpus keeps both NSP classes, and the baseline says so."""
    from tasks import pretrain

    corpus = write_corpus(tmp_path / "corpus.txt")
    work = str(tmp_path / "work")
    pretrain.prepare_data(pretrain.parse_args(flags(corpus, tmp_path)), work)
    stats = json.loads((tmp_path / "work" / "instances.json").read_text())
    assert 0 < stats["random_next_instances"] < stats["instances"]
    assert 0.5 <= stats["nsp_baseline_accuracy"] < 1


@pytest.mark.parametrize("case", ["missing-path", "dir-without-config", "not-json"])
def test_config_mistakes_name_the_flag_and_the_file(tmp_path, capsys, case):
    """Item 14: not a JSON decode error, and refused before any data work."""
    corpus = write_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "out"
    if case == "missing-path":
        value, expected = str(tmp_path / "conf.jsn"), ["no such file", "JSON string"]
    elif case == "dir-without-config":
        (tmp_path / "checkpoint").mkdir()
        value, expected = str(tmp_path / "checkpoint"), ["without a config.json"]
    else:
        (tmp_path / "config.json").write_text('{"hidden_size": 24,\n "x": }\n')
        value = str(tmp_path / "config.json")
        expected = ["config.json is not valid JSON", "line 2"]
    message = refusal(capsys, replace(flags(corpus, out), "--config", value))
    for part in ["--config", value, *expected]:
        assert part in message, (part, message)
    assert not (out / "work" / "tokenizer").exists()


TRAIN_IN_A_PROCESS = """
import hashlib, json, sys
from tests.test_reliability_pretrain import tie_corpus
from tasks.pretrain_vocab import train_wordpiece
vocab = train_wordpiece(tie_corpus(), 700).get_vocab()
print(hashlib.sha256(json.dumps(vocab, sort_keys=True).encode()).hexdigest())
"""


def tie_corpus():
    """Random words, each one twice: many pairs and pieces of equal count."""
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [
        "".join(rng.choice(letters) for _ in range(rng.randint(3, 8)))
        for _ in range(1500)
    ]
    return [" ".join(words[i : i + 10]) for i in range(0, len(words), 10)] * 2


def test_wordpiece_vocabulary_is_the_same_in_every_run_and_process():
    """Item 16: ties between equally frequent pairs are broken by their text."""
    from tasks.pretrain_vocab import train_wordpiece

    digests = set()
    for _ in range(4):
        vocab = train_wordpiece(tie_corpus(), 700).get_vocab()
        assert len(vocab) == 700
        digests.add(hashlib.sha256(json.dumps(vocab, sort_keys=True).encode()))
    digests = {d.hexdigest() for d in digests}
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-c", TRAIN_IN_A_PROCESS], cwd=ROOT, text=True,
            capture_output=True, timeout=300,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "random",
                 "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        digests.add(run.stdout.split()[-1])
    assert len(digests) == 1, digests
