"""SQuAD: reading, windows, post-processing and the CLI end to end."""

import json
import os

import numpy as np
import pytest
from conftest import assert_outputs_close
from conftest import torch_outputs
from test_observe import tensorboard_scalars

import bert_keras as bk
from tasks import squad
from tasks.squad_data import SquadFormatError
from tasks.squad_data import count_unlocated
from tasks.squad_data import eval_features
from tasks.squad_data import read_squad
from tasks.squad_data import train_features
from tasks.squad_postprocess import postprocess


def squad_file(path, paragraphs, version="1.1"):
    payload = {"version": version, "data": [{"title": "T", "paragraphs": paragraphs}]}
    path.write_text(json.dumps(payload))
    return str(path)


def paragraph(context, qas):
    return {"context": context, "qas": qas}


def qa(qid, question, answers=(), impossible=False):
    return {
        "id": qid,
        "question": question,
        "answers": [{"text": t, "answer_start": s} for t, s in answers],
        "is_impossible": impossible,
    }


CONTEXT = "The Eiffel Tower is in Paris. It was finished in 1889 by Gustave Eiffel."


def test_read_counts_misaligned_and_missing_context(tmp_path):
    path = squad_file(
        tmp_path / "s.json",
        [
            paragraph(CONTEXT, [
                qa("a", "Where is it?", [("Paris", 23)]),
                qa("b", "When?", [("1889", 0)]),  # answer_start points elsewhere
                qa("c", "Who?", impossible=True),
            ]),
            paragraph("", [qa("d", "Anything?", [("x", 0)])]),
        ],
    )  # fmt: skip
    dataset, stats = read_squad(path, version_2_with_negative=True)
    assert stats["questions"] == 4
    assert stats["misaligned_answers"] == 1
    assert stats["questions_without_context"] == 1
    assert stats["unanswerable"] == 1
    assert dataset["id"] == ["a", "b", "c"]  # nothing else dropped
    assert dataset["answers"][2] == {"text": [], "answer_start": []}


def test_malformed_json_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [ {"paragraphs": ')
    with pytest.raises(SquadFormatError, match="bad.json is not valid JSON"):
        read_squad(str(bad))
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"articles": []}')
    with pytest.raises(SquadFormatError, match="no top-level `data`"):
        read_squad(str(wrong))


def test_train_windows_locate_answers_and_point_at_cls_otherwise(tokenizer):
    filler = " ".join(f"word{i}" for i in range(150))
    context = f"{filler} The answer is Gustave Eiffel. {filler}"
    start = context.index("Gustave Eiffel")
    examples = {
        "question": ["Who?", "Nobody?"],
        "context": [context, context],
        "answers": [
            {"text": ["Gustave Eiffel"], "answer_start": [start]},
            {"text": [], "answer_start": []},
        ],
    }
    features = train_features(tokenizer, examples, max_seq_length=64, doc_stride=16)
    windows = len(features["input_ids"])
    assert windows > 4  # the long context needs several windows
    found = 0
    for i in range(windows):
        s, e = features["start_positions"][i], features["end_positions"][i]
        if features["example_index"][i] == 1 or s == 0:
            assert s == e == 0
            continue
        found += 1
        text = tokenizer.decode(features["input_ids"][i][s : e + 1])
        assert text == "gustave eiffel"
    assert found >= 1
    assert count_unlocated(features, 2) == 0


def test_unlocated_answers_are_counted(tokenizer):
    examples = {
        "question": ["When?"],
        "context": [CONTEXT],
        "answers": [{"text": ["1889"], "answer_start": [0]}],  # misaligned
    }
    features = train_features(tokenizer, examples, max_seq_length=64, doc_stride=16)
    assert count_unlocated(features, 1) == 1


def brute_force(offsets_per_window, starts, ends, max_answer_length):
    best = None
    for offsets, s_logits, e_logits in zip(offsets_per_window, starts, ends):
        for s in range(len(offsets)):
            for e in range(s, min(len(offsets), s + max_answer_length)):
                if offsets[s] is None or offsets[e] is None:
                    continue
                score = s_logits[s] + e_logits[e]
                if best is None or score > best[0]:
                    best = (score, offsets[s][0], offsets[e][1])
    return best


@pytest.mark.parametrize("seed", range(20))
def test_postprocess_equals_brute_force_over_all_spans(tokenizer, seed):
    rs = np.random.RandomState(seed)
    words = [f"w{rs.randint(1000)}" for _ in range(rs.randint(20, 120))]
    context = " ".join(words)
    examples = {"id": ["q"], "context": [context], "question": ["What is it?"]}
    features = eval_features(tokenizer, examples, max_seq_length=48, doc_stride=16)
    n, length = len(features["input_ids"]), 48
    starts = rs.randn(n, length).astype(np.float32)
    ends = rs.randn(n, length).astype(np.float32)
    max_answer_length = int(rs.randint(1, 12))
    predictions, nbest, _ = postprocess(
        examples, features, starts, ends,
        n_best_size=length, max_answer_length=max_answer_length,
    )  # fmt: skip
    offsets = list(features["offset_mapping"])
    cut = [s[: len(o)] for s, o in zip(starts, offsets)]
    cut_e = [e[: len(o)] for e, o in zip(ends, offsets)]
    score, first, last = brute_force(offsets, cut, cut_e, max_answer_length)
    assert predictions["q"] == context[first:last]
    assert nbest["q"][0]["score"] == pytest.approx(score, rel=1e-6)
    assert sum(e["probability"] for e in nbest["q"]) == pytest.approx(1.0)


def test_postprocess_v2_null_threshold():
    examples = {"id": ["q"], "context": ["abc def"]}
    features = {"example_id": ["q"], "offset_mapping": [[None, (0, 3), (4, 7), None]]}
    starts = np.array([[5.0, 1.0, 0.0, 0.0]])
    ends = np.array([[5.0, 0.0, 1.0, 0.0]])
    kwargs = {"version_2_with_negative": True}
    predictions, _, odds = postprocess(examples, features, starts, ends, **kwargs)
    assert predictions["q"] == "" and odds["q"] == pytest.approx(10.0 - 2.0)
    predictions, _, _ = postprocess(
        examples, features, starts, ends, null_score_diff_threshold=9.0, **kwargs
    )
    assert predictions["q"] == "abc def"


SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.mark.slow
def test_cli_trains_evaluates_and_saves_what_transformers_reproduces(
    tiny_checkpoint, tmp_path
):
    import transformers

    results = squad.main(
        ["--model", tiny_checkpoint, "--output-dir", str(tmp_path),
         "--train-file", f"{SAMPLES}/squad_v1_sample.json",
         "--eval-file", f"{SAMPLES}/squad_v1_sample.json",
         "--max-train-samples", "40", "--max-eval-samples", "30",
         "--epochs", "1", "--batch-size", "8", "--max-seq-length", "96",
         "--doc-stride", "32", "--max-query-length", "32", "--verbose", "0",
         "--logging-steps", "4", "--eval-steps", "0.5"]
    )  # fmt: skip
    for name in ("config.json", "model.safetensors", "predictions.json",
                 "nbest_predictions.json", "results.json", "README.md",
                 "training_curves.png", "trainer_state.json", "all_results.json",
                 "eval_results.json", "train_results.json"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    # Step logs and EM/F1 evaluations (--eval-steps 0.5: twice) in TensorBoard.
    steps = results["steps"]
    scalars = tensorboard_scalars(tmp_path / "runs")
    logged = list(range(4, steps + 1, 4)) + ([steps] if steps % 4 else [])
    assert [step for step, _ in scalars["train/loss"]] == logged
    assert [step for step, _ in scalars["train/learning_rate"]] == logged
    middle = -(-steps // 2)
    evaluated = [step for step in (middle, 2 * middle) if step <= steps]
    for tag in ("eval/f1", "eval/exact_match"):
        assert [step for step, _ in scalars[tag]] == evaluated, tag
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    evaluations = [row for row in state["log_history"] if "eval_f1" in row]
    assert [row["eval_f1"] for row in evaluations] == pytest.approx(
        [value for _, value in scalars["eval/f1"]]
    )
    assert state["best_metric"] == max(row["eval_f1"] for row in evaluations)
    assert state["metric_for_best_model"] == results["metric_for_best_model"]
    both = json.loads((tmp_path / "all_results.json").read_text())
    assert both["eval_f1"] == pytest.approx(results["f1"])
    assert {"eval_exact_match", "train_loss", "train_runtime"} <= set(both)
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert len(predictions) == 30 == results["eval_examples"]
    assert 0 <= results["f1"] <= 100 and "exact_match" in results
    assert results["data"]["train"]["answers_not_in_any_window"] == 0

    ours = bk.BertForQuestionAnswering.from_pretrained(str(tmp_path))
    theirs = transformers.AutoModelForQuestionAnswering.from_pretrained(str(tmp_path))
    theirs.eval()
    batch = bk.AutoTokenizer.from_pretrained(str(tmp_path))(
        ["Where is it?"], [CONTEXT], return_tensors="np"
    )
    assert_outputs_close(
        ours(dict(batch)),
        torch_outputs(theirs, batch),
        keys=("start_logits", "end_logits"),
    )


def test_cli_evaluates_v2_without_training(tiny_checkpoint, tmp_path):
    results = squad.main(
        ["--model", tiny_checkpoint, "--output-dir", str(tmp_path),
         "--eval-file", f"{SAMPLES}/squad_v2_sample.json",
         "--version-2-with-negative", "--max-eval-samples", "40",
         "--max-seq-length", "96", "--doc-stride", "32", "--max-query-length", "32",
         "--verbose", "0"]
    )  # fmt: skip
    assert {"exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1"} <= set(results)
    assert (tmp_path / "null_odds.json").is_file()
    # Evaluation only: transformers' eval files, no training ones.
    evaluation = json.loads((tmp_path / "eval_results.json").read_text())
    assert evaluation["eval_f1"] == pytest.approx(results["f1"])
    assert evaluation["eval_samples"] == 40
    assert not (tmp_path / "train_results.json").exists()
    assert not (tmp_path / "trainer_state.json").exists()
    assert len(json.loads((tmp_path / "predictions.json").read_text())) == 40


@pytest.mark.slow
def test_long_questions_are_cut_and_counted(tokenizer, tiny_checkpoint, tmp_path):
    path = squad_file(
        tmp_path / "long.json",
        [paragraph(CONTEXT, [qa("a", "what " * 200 + "?", [("Paris", 23)]),
                             qa("b", "Where?", [("Paris", 23)])])],
    )  # fmt: skip
    results = squad.main(
        ["--model", tiny_checkpoint, "--output-dir", str(tmp_path / "out"),
         "--train-file", path, "--eval-file", path, "--epochs", "1",
         "--max-seq-length", "64", "--max-query-length", "16",
         "--doc-stride", "16", "--verbose", "0"]
    )  # fmt: skip
    assert results["data"]["train"]["questions_truncated"] == 1
    assert results["data"]["eval"]["questions_truncated"] == 1
    assert results["eval_examples"] == 2


def test_windows_without_room_for_context_are_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(SystemExit):
        squad.parse_args(
            ["--model", tiny_checkpoint, "--output-dir", str(tmp_path),
             "--eval-file", "x.json", "--max-seq-length", "64",
             "--max-query-length", "64"]
        )  # fmt: skip
