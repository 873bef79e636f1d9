"""Nothing a user may share carries an absolute local path (issue 21, item 17).

Each CLI runs with absolute paths for everything it reads; no file it writes
to the output directory (what `--push-to-hub` uploads), nor the plot's title,
may contain one of them.
"""

import os

import pytest

# The CLIs run end to end.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def leaks(out, secrets, titles):
    found = []
    for root, _, names in os.walk(out):
        for name in names:
            data = open(os.path.join(root, name), "rb").read()  # noqa: SIM115
            found += [
                (os.path.relpath(os.path.join(root, name), out), secret)
                for secret in secrets
                if secret.encode() in data
            ]
    found += [("plot title", s) for t in titles for s in secrets if s in t]
    return found


@pytest.fixture
def titles(monkeypatch):
    from tasks import reporting

    seen, plot = [], reporting.plot_curves

    def plot_curves(path, epochs, title):
        seen.append(title)
        return plot(path, epochs, title)

    monkeypatch.setattr(reporting, "plot_curves", plot_curves)
    return seen


def test_glue_outputs_hold_no_absolute_path(tmp_path, tiny_checkpoint, titles):
    from test_glue_cli import write_glue_dir

    from tasks import glue

    (tmp_path / "glue").mkdir()
    data = write_glue_dir(tmp_path / "glue")
    out = tmp_path / "out"
    glue.main(
        ["--task", "sst2", "--model", os.path.abspath(tiny_checkpoint),
         "--data-dir", os.path.abspath(data), "--output-dir", str(out),
         "--epochs", "1", "--batch-size", "8", "--max-seq-length", "32",
         "--verbose", "0"]
    )  # fmt: skip
    assert titles
    secrets = [os.path.abspath(tiny_checkpoint), os.path.abspath(data), ROOT]
    assert not leaks(out, secrets, titles)


def test_squad_outputs_hold_no_absolute_path(tmp_path, tiny_checkpoint, titles):
    from tasks import squad

    sample = os.path.join(ROOT, "tests", "data", "squad_v1_sample.json")
    out = tmp_path / "out"
    squad.main(
        ["--model", os.path.abspath(tiny_checkpoint), "--output-dir", str(out),
         "--train-file", sample, "--eval-file", sample,
         "--max-train-samples", "16", "--max-eval-samples", "8", "--epochs", "1",
         "--batch-size", "8", "--max-seq-length", "96", "--doc-stride", "32",
         "--max-query-length", "32", "--verbose", "0"]
    )  # fmt: skip
    assert titles
    secrets = [os.path.abspath(tiny_checkpoint), sample, ROOT]
    assert not leaks(out, secrets, titles)


def test_pretraining_outputs_hold_no_absolute_path(tmp_path, titles):
    from tasks import pretrain

    corpus = os.path.join(ROOT, "tasks", "data", "wikitext-2-raw", "wiki.valid.raw")
    config = tmp_path / "config.json"
    config.write_text('{"hidden_size": 32, "num_hidden_layers": 1, '
                      '"num_attention_heads": 2, "intermediate_size": 37}')  # fmt: skip
    out = tmp_path / "out"
    pretrain.main(
        ["--corpus", corpus, "--output-dir", str(out), "--vocab-size", "600",
         "--config", str(config), "--max-steps", "2", "--save-steps", "2",
         "--batch-size", "8", "--dupe-factor", "1", "--max-seq-length", "32",
         "--verbose", "0"]
    )  # fmt: skip
    assert titles
    secrets = [corpus, str(config), ROOT]
    # OUT/work holds the run's own working files (data, backups), not a result.
    found = [x for x in leaks(out, secrets, titles) if not x[0].startswith("work")]
    assert not found
