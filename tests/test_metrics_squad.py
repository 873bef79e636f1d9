"""The local SQuAD `evaluate` modules against the official evaluation scripts.

Two kinds of checks:

- hand-computed numbers on small made-up questions (normalisation, partial
  overlaps, several gold answers, unanswerable questions, thresholds and the
  best-threshold search);
- bit-for-bit equality with `official_v1` / `official_v2` below on random
  predictions for real SQuAD dev questions (`tests/data`, see SOURCE.md).

`official_v1` and `official_v2` are the REFERENCE: a minimal rewrite of the
computation in the official `evaluate-v1.1.py` and `evaluate-v2.0.py`
(v2.0 run with `--na-prob-file`), taking the dataset in the official JSON
layout, an id -> answer dict and an id -> no-answer probability dict, in the
scripts' own order of operations (v1.1 adds up with `+=`, v2.0 with `sum`).
"""

import collections
import inspect
import json
import os
import random
import re
import string
import warnings

import evaluate
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SQUAD_PATH = os.path.join(REPO_ROOT, "tasks", "metrics", "squad")
SQUAD_V2_PATH = os.path.join(REPO_ROOT, "tasks", "metrics", "squad_v2")
DATA_DIR = os.path.join(REPO_ROOT, "tests", "data")
SEEDS = (0, 1, 2, 3)
# Random question subsets per seed: small sums show last-bit differences.
SUBSETS = 12


# === Reference: the official scripts' computation ===


def official_normalize(text):
    text = text.lower()
    text = "".join(char for char in text if char not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def official_v1(dataset, predictions):
    """`evaluate-v1.1.py`: {"exact_match", "f1"}; unanswered questions get 0."""

    def f1_score(prediction, gold):
        prediction_tokens = official_normalize(prediction).split()
        gold_tokens = official_normalize(gold).split()
        common = collections.Counter(prediction_tokens) & collections.Counter(
            gold_tokens
        )
        num_same = sum(common.values())
        if num_same == 0:
            return 0
        precision = 1.0 * num_same / len(prediction_tokens)
        recall = 1.0 * num_same / len(gold_tokens)
        return (2 * precision * recall) / (precision + recall)

    def exact_match_score(prediction, gold):
        return official_normalize(prediction) == official_normalize(gold)

    exact_match = f1 = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                golds = [answer["text"] for answer in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match += max(exact_match_score(prediction, g) for g in golds)
                f1 += max(f1_score(prediction, g) for g in golds)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def official_v2(dataset, predictions, na_probs, na_prob_thresh=1.0):
    """`evaluate-v2.0.py --na-prob-file ... --na-prob-thresh ...` output."""

    def get_tokens(text):
        return official_normalize(text).split() if text else []

    def compute_exact(gold, prediction):
        return int(official_normalize(gold) == official_normalize(prediction))

    def compute_f1(gold, prediction):
        gold_tokens, prediction_tokens = get_tokens(gold), get_tokens(prediction)
        common = collections.Counter(gold_tokens) & collections.Counter(
            prediction_tokens
        )
        num_same = sum(common.values())
        if len(gold_tokens) == 0 or len(prediction_tokens) == 0:
            return int(gold_tokens == prediction_tokens)
        if num_same == 0:
            return 0
        precision = 1.0 * num_same / len(prediction_tokens)
        recall = 1.0 * num_same / len(gold_tokens)
        return (2 * precision * recall) / (precision + recall)

    qas = [qa for a in dataset for p in a["paragraphs"] for qa in p["qas"]]
    has_ans = {}
    for qa in qas:
        has_ans[qa["id"]] = bool(qa["answers"])
    exact_raw, f1_raw = {}, {}
    for qa in qas:
        golds = [a["text"] for a in qa["answers"] if official_normalize(a["text"])]
        golds = golds or [""]
        prediction = predictions[qa["id"]]  # the script stops on missing ones
        exact_raw[qa["id"]] = max(compute_exact(g, prediction) for g in golds)
        f1_raw[qa["id"]] = max(compute_f1(g, prediction) for g in golds)

    def apply_threshold(scores):
        thresholded = {}
        for qid, score in scores.items():
            if na_probs[qid] > na_prob_thresh:
                thresholded[qid] = float(not has_ans[qid])
            else:
                thresholded[qid] = score
        return thresholded

    exact, f1 = apply_threshold(exact_raw), apply_threshold(f1_raw)
    out = {
        "exact": 100.0 * sum(exact.values()) / len(exact),
        "f1": 100.0 * sum(f1.values()) / len(f1),
        "total": len(exact),
    }
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [k for k, v in has_ans.items() if v == wanted]
        if qids:
            out[f"{prefix}_exact"] = 100.0 * sum(exact[k] for k in qids) / len(qids)
            out[f"{prefix}_f1"] = 100.0 * sum(f1[k] for k in qids) / len(qids)
            out[f"{prefix}_total"] = len(qids)

    def find_best_thresh(scores):
        cur_score = sum(1 for k in has_ans if not has_ans[k])
        best_score, best_thresh = cur_score, 0.0
        for qid in sorted(na_probs, key=lambda k: na_probs[k]):
            if qid not in scores:
                continue
            if has_ans[qid]:
                diff = scores[qid]
            else:
                diff = -1 if predictions[qid] else 0
            cur_score += diff
            if cur_score > best_score:
                best_score, best_thresh = cur_score, na_probs[qid]
        return 100.0 * best_score / len(scores), best_thresh

    out["best_exact"], out["best_exact_thresh"] = find_best_thresh(exact_raw)
    out["best_f1"], out["best_f1_thresh"] = find_best_thresh(f1_raw)
    return out


# === Helpers ===


@pytest.fixture(scope="module")
def squad():
    return evaluate.load(SQUAD_PATH)


@pytest.fixture(scope="module")
def squad_v2():
    return evaluate.load(SQUAD_V2_PATH)


def load_sample(name):
    with open(os.path.join(DATA_DIR, name), encoding="utf-8") as handle:
        return json.load(handle)["data"]


def questions(dataset):
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield paragraph["context"], qa


def reference(question_id, *texts):
    """A reference in the Hub layout (answer_start is not scored)."""
    return {
        "id": question_id,
        "answers": {"text": list(texts), "answer_start": [0] * len(texts)},
    }


def hub_references(dataset):
    return [
        {
            "id": qa["id"],
            "answers": {
                "text": [answer["text"] for answer in qa["answers"]],
                "answer_start": [answer["answer_start"] for answer in qa["answers"]],
            },
        }
        for _, qa in questions(dataset)
    ]


def as_dataset(references):
    """Hub-layout references -> the official JSON layout, for the reference."""
    qas = [
        {"id": r["id"], "answers": [{"text": text} for text in r["answers"]["text"]]}
        for r in references
    ]
    return [{"paragraphs": [{"qas": qas}]}]


def compute_v1(module, answers, references):
    predictions = [
        {"id": question_id, "prediction_text": text}
        for question_id, text in answers.items()
    ]
    return module.compute(predictions=predictions, references=references)


def compute_v2(module, answers, probabilities, references, **kwargs):
    predictions = [
        {
            "id": question_id,
            "prediction_text": text,
            "no_answer_probability": probabilities[question_id],
        }
        for question_id, text in answers.items()
    ]
    return module.compute(predictions=predictions, references=references, **kwargs)


def random_answer(rng, context, qa):
    """A prediction of a random kind: gold, altered gold, overlap, noise, ""."""
    golds = [answer["text"] for answer in qa["answers"]]
    kind = rng.randrange(8)
    words = context.split()
    if kind == 0 and golds:
        return rng.choice(golds)
    if kind == 1 and golds:
        gold = rng.choice(golds)
        variants = (
            gold.upper(),
            f"The {gold}.",
            f"  {gold} ,\t",
            f"a {gold} (an answer)",
            gold.replace(" ", "  "),
        )
        return rng.choice(variants)
    if kind == 2 and qa["answers"]:
        # The gold span widened or cut by a few words on either side: overlaps.
        answer = rng.choice(qa["answers"])
        before = context[: answer["answer_start"]].split()
        after = context[answer["answer_start"] + len(answer["text"]) :].split()
        middle = answer["text"].split()
        left, right = rng.randint(0, 3), rng.randint(0, 3)
        span = before[len(before) - left :] if left else []
        span += middle[rng.randint(0, len(middle) - 1) :] + after[:right]
        return " ".join(span)
    if kind == 3:
        start = rng.randrange(len(words))
        return " ".join(words[start : start + rng.randint(1, 8)])
    if kind == 4 and qa.get("plausible_answers"):
        return rng.choice(qa["plausible_answers"])["text"]
    if kind == 5:
        return rng.choice(["", "", "the", " ", "."])
    return " ".join(rng.sample(words, rng.randint(1, 4)))


def random_answers(rng, dataset):
    return {
        qa["id"]: random_answer(rng, context, qa) for context, qa in questions(dataset)
    }


def random_subsets(rng, references):
    """All references, then SUBSETS random samples of 1 to all, in random order."""
    yield references
    for _ in range(SUBSETS):
        size = rng.choice([1, 2, 3, rng.randint(1, len(references))])
        yield rng.sample(references, size)


def random_probability(rng):
    if rng.random() < 0.5:
        return rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])  # ties
    return rng.random()


def shuffled(rng, mapping):
    items = list(mapping.items())
    rng.shuffle(items)
    return dict(items)


# === Normalisation ===


@pytest.mark.parametrize("metric_name", ("squad", "squad_v2"))
@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Denver Broncos", "denver broncos"),
        ("  Denver\t\nBroncos  ", "denver broncos"),
        ("DENVER BRONCOS!", "denver broncos"),
        ("a cat, an apple and the dog", "cat apple and dog"),
        ("another theory: atheism", "another theory atheism"),  # whole words only
        ("Levi's Stadium", "levis stadium"),
        ("the-end", "theend"),  # punctuation goes first, then articles
        ("A.D. 1066", "ad 1066"),
        ("a_b", "ab"),
        ("The the THE a an", ""),
        ("", ""),
        ("São Paulo, Brasil", "são paulo brasil"),
        ("ΑΘΗΝΑ (Athens)", "αθηνα athens"),
        ("“quoted” — dash", "“quoted” — dash"),  # only ASCII punctuation
        ("non\u00a0breaking", "non breaking"),
        ("é the é", "é é"),
    ],
)
def test_normalize_answer(request, metric_name, text, expected):
    module = inspect.getmodule(type(request.getfixturevalue(metric_name)))
    assert module.normalize_answer(text) == expected
    assert official_normalize(text) == expected


# === SQuAD v1.1: hand-computed ===


@pytest.mark.parametrize(
    "prediction, golds, exact, f1",
    [
        ("Denver Broncos", ["Denver Broncos"], 1, 1.0),
        ("the Denver Broncos!", ["Denver Broncos"], 1, 1.0),
        ("denver   BRONCOS", ["Denver Broncos"], 1, 1.0),
        # precision 1, recall 1/2
        ("Broncos", ["Denver Broncos"], 0, 2 / 3),
        # the best gold: precision 1/3 and recall 1 against "Broncos"
        ("Denver Broncos team", ["Carolina Panthers", "Broncos"], 0, 0.5),
        ("Panthers", ["Carolina Panthers", "Panthers"], 1, 1.0),
        # repeated tokens count once per match: "cat cat" vs "cat"
        ("the cat cat", ["a cat"], 0, 2 / 3),
        # the best gold is the second one
        ("Santa Clara, California", ["Santa Clara", "Santa Clara, California"], 1, 1),
        ("Levi's Stadium in Santa Clara", ["Levi's Stadium"], 0, 4 / 7),
        ("Rouen", ["Paris"], 0, 0.0),
        ("", ["Paris"], 0, 0.0),
        # both normalise to "": exact match, yet no shared token (official quirk)
        ("the", ["An"], 1, 0.0),
        ("São Paulo", ["são paulo"], 1, 1.0),
    ],
)
def test_v1_single_question(squad, prediction, golds, exact, f1):
    scores = compute_v1(squad, {"q": prediction}, [reference("q", *golds)])
    assert scores == pytest.approx({"exact_match": 100.0 * exact, "f1": 100.0 * f1})
    assert scores == official_v1(
        as_dataset([reference("q", *golds)]), {"q": prediction}
    )


def test_v1_averages_over_questions(squad):
    references = [
        reference("q1", "Denver Broncos", "Broncos"),
        reference("q2", "Levi's Stadium"),
        reference("q3", "February 7, 2016"),
        reference("q4", "gold"),
    ]
    answers = {
        "q1": "The Broncos",  # exact, F1 1
        "q2": "the Levi's Stadium, in California",  # F1 2/3: p 1/2, r 1
        "q3": "7 February",  # F1 4/5: p 1, r 2/3
        "q4": "golden",  # 0
    }
    scores = compute_v1(squad, answers, references)
    assert scores["exact_match"] == 25.0
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 4 / 5 + 0) / 4)
    assert list(scores) == ["exact_match", "f1"]
    assert all(isinstance(value, float) for value in scores.values())


@pytest.mark.parametrize("metric_name", ("squad", "squad_v2"))
@pytest.mark.parametrize(
    "prediction, gold, f1",
    [
        # 1 of 5 tokens each way: the official (2 p r) / (p + r) rounds to
        # 20.000000000000004, not 20.0 (= 100 * 2 * 1 / (5 + 5)).
        (
            "Warsaw Old Town market square",
            "the Royal Castle of Warsaw, Poland",
            20.000000000000004,
        ),
        # p 1/2, r 1/5: 28.571428571428577, not 100 * 2 / 7.
        ("Vistula river", "river in the centre of Poland", 28.571428571428577),
    ],
)
def test_f1_rounds_like_the_official_formula(
    request, metric_name, prediction, gold, f1
):
    references = [reference("q", gold)]
    if metric_name == "squad":
        scores = compute_v1(
            request.getfixturevalue("squad"), {"q": prediction}, references
        )
    else:
        module = request.getfixturevalue("squad_v2")
        scores = compute_v2(module, {"q": prediction}, {"q": 0.0}, references)
    assert scores["f1"] == f1


def test_v1_unanswered_question_scores_zero_with_warning(squad):
    references = [reference("q1", "Paris"), reference("q2", "Rouen")]
    # Same length as the references; "q1" twice, the last one counts.
    predictions = [
        {"id": "q1", "prediction_text": "Rouen"},
        {"id": "q1", "prediction_text": "Paris"},
    ]
    with pytest.warns(UserWarning, match=r"1 question\(s\) have no prediction.*'q2'"):
        scores = squad.compute(predictions=predictions, references=references)
    assert scores == {"exact_match": 50.0, "f1": 50.0}
    assert scores == official_v1(as_dataset(references), {"q1": "Paris"})


def test_v1_ignores_predictions_for_unknown_ids(squad):
    predictions = [
        {"id": "q1", "prediction_text": "Paris"},
        {"id": "elsewhere", "prediction_text": "Rouen"},
    ]
    references = [reference("q1", "Paris"), reference("q1", "Paris")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = squad.compute(predictions=predictions, references=references)
    # A repeated reference id counts twice, as in the official script.
    assert scores == {"exact_match": 100.0, "f1": 100.0}


def test_v1_question_without_gold_answer_raises(squad):
    with pytest.raises(ValueError, match="squad_v2.*Received: id='q2'"):
        compute_v1(
            squad, {"q1": "a", "q2": "b"}, [reference("q1", "a"), reference("q2")]
        )


def test_v1_empty_inputs_raise(squad):
    with pytest.raises(ValueError, match="at least one"):
        squad.compute(predictions=[], references=[])


# === SQuAD v1.1: real questions against the official computation ===


@pytest.mark.parametrize("seed", SEEDS)
def test_v1_random_predictions_match_official(squad, seed):
    rng = random.Random(seed)
    dataset = load_sample("squad_v1_sample.json")
    answers = random_answers(rng, dataset)
    scores = compute_v1(squad, shuffled(rng, answers), hub_references(dataset))
    assert scores == official_v1(dataset, answers)  # bit for bit
    assert 0 < scores["exact_match"] < scores["f1"] < 100
    for references in random_subsets(rng, hub_references(dataset)):
        subset = {r["id"]: answers[r["id"]] for r in references}
        scores = compute_v1(squad, shuffled(rng, subset), references)
        assert scores == official_v1(as_dataset(references), subset)


def test_v1_gold_predictions_score_100(squad):
    dataset = load_sample("squad_v1_sample.json")
    answers = {qa["id"]: qa["answers"][-1]["text"] for _, qa in questions(dataset)}
    scores = compute_v1(squad, answers, hub_references(dataset))
    assert scores == {"exact_match": 100.0, "f1": 100.0}


def test_v1_incremental_batches_match_single_compute(squad):
    dataset = load_sample("squad_v1_sample.json")
    answers = random_answers(random.Random(5), dataset)
    references = hub_references(dataset)
    predictions = [{"id": k, "prediction_text": v} for k, v in answers.items()]
    for start in range(0, len(references), 100):
        squad.add_batch(
            predictions=predictions[start : start + 100],
            references=references[start : start + 100],
        )
    assert squad.compute() == official_v1(dataset, answers)


# === SQuAD v2.0: hand-computed ===

V2_REFERENCES = [
    reference("a1", "Rollo", "Rollo of Normandy"),
    reference("a2", "10th century"),
    reference("n1"),
    reference("n2"),
]
V2_ANSWERS = {
    "a1": "rollo",  # exact
    "a2": "the 10th and 11th centuries",  # F1 1/3: precision 1/4, recall 1/2
    "n1": "",  # right: no answer
    "n2": "Normandy",  # wrong: answers an unanswerable question
}
V2_PROBABILITIES = {"a1": 0.2, "a2": 0.7, "n1": 0.9, "n2": 0.8}


@pytest.mark.parametrize(
    "threshold, exact, f1, has_answer, no_answer",
    [
        # Nobody abstains: a1 1, a2 0 (F1 1/3), n1 1, n2 0.
        (1.0, 50.0, 100 * (1 + 1 / 3 + 1) / 4, (50.0, 100 * (1 + 1 / 3) / 2), 50.0),
        # n1 and n2 abstain: NoAns all right.
        (0.75, 75.0, 100 * (1 + 1 / 3 + 2) / 4, (50.0, 100 * (1 + 1 / 3) / 2), 100.0),
        # a2 abstains too and loses its F1.
        (0.5, 75.0, 75.0, (50.0, 50.0), 100.0),
        # Strictly greater: a1 (0.2) still answers.
        (0.2, 75.0, 75.0, (50.0, 50.0), 100.0),
        (0.0, 50.0, 50.0, (0.0, 0.0), 100.0),
    ],
)
def test_v2_thresholds(squad_v2, threshold, exact, f1, has_answer, no_answer):
    scores = compute_v2(
        squad_v2,
        V2_ANSWERS,
        V2_PROBABILITIES,
        V2_REFERENCES,
        no_answer_threshold=threshold,
    )
    expected = {
        "exact": exact,
        "f1": f1,
        "total": 4,
        "HasAns_exact": has_answer[0],
        "HasAns_f1": has_answer[1],
        "HasAns_total": 2,
        "NoAns_exact": no_answer,
        "NoAns_f1": no_answer,
        "NoAns_total": 2,
        # Abstain from 2 unanswerable (score 2); answering a1 (0.2) makes 3;
        # n2 (0.8) costs 1. Exact: a2 adds 0, best 3 at 0.2. F1: a2 (0.7) adds
        # 1/3, best 3 1/3 at 0.7.
        "best_exact": 75.0,
        "best_exact_thresh": 0.2,
        "best_f1": 100 * (3 + 1 / 3) / 4,
        "best_f1_thresh": 0.7,
    }
    assert scores == pytest.approx(expected)
    assert list(scores) == list(expected)
    assert isinstance(scores["total"], int)
    assert scores == official_v2(
        as_dataset(V2_REFERENCES), V2_ANSWERS, V2_PROBABILITIES, threshold
    )


@pytest.mark.parametrize(
    "prediction, golds, exact, f1",
    [
        ("", [], 1, 1),  # no answer to an unanswerable question: F1 1
        ("   ", [], 1, 1),
        ("the", [], 1, 1),  # normalises to ""
        ("Normandy", [], 0, 0),
        ("", ["Normandy"], 0, 0),
        ("Normandy", ["The"], 0, 0),  # a gold that normalises to "" means ""
        ("", ["The"], 1, 1),
        ("an", ["The", "Rollo"], 0, 0),  # "The" is dropped; "Rollo" remains
        ("in Normandy, France", ["Normandy", "Normandy France"], 0, 0.8),
        ("the 11th and 12th century", ["11th century"], 0, 2 / 3),
    ],
)
def test_v2_single_question(squad_v2, prediction, golds, exact, f1):
    references = [reference("q", *golds)]
    scores = compute_v2(squad_v2, {"q": prediction}, {"q": 0.5}, references)
    assert scores["exact"] == pytest.approx(100.0 * exact)
    assert scores["f1"] == pytest.approx(100.0 * f1)
    prefix = "HasAns" if golds else "NoAns"
    assert scores[f"{prefix}_exact"] == scores["exact"]
    assert scores[f"{prefix}_total"] == 1
    assert scores == official_v2(as_dataset(references), {"q": prediction}, {"q": 0.5})


def test_v2_keys_only_for_present_kinds(squad_v2):
    answerable = compute_v2(squad_v2, {"q": "x"}, {"q": 0.0}, [reference("q", "x")])
    assert "HasAns_total" in answerable and "NoAns_total" not in answerable
    # The Hub module's own example.
    assert answerable == {
        "exact": 100.0,
        "f1": 100.0,
        "total": 1,
        "HasAns_exact": 100.0,
        "HasAns_f1": 100.0,
        "HasAns_total": 1,
        "best_exact": 100.0,
        "best_exact_thresh": 0.0,
        "best_f1": 100.0,
        "best_f1_thresh": 0.0,
    }
    unanswerable = compute_v2(squad_v2, {"q": ""}, {"q": 0.3}, [reference("q")])
    assert "NoAns_total" in unanswerable and "HasAns_total" not in unanswerable
    # Abstaining everywhere already scores 1; answering "" keeps it: no gain.
    assert unanswerable["best_exact"] == 100.0
    assert unanswerable["best_exact_thresh"] == 0.0


def test_v2_best_threshold_ties_follow_prediction_order(squad_v2):
    # Both at 0.5. Right answer first: the running score peaks at 2 of 2
    # between the two (a threshold no real cut reaches); the official search
    # reports it all the same.
    references = [reference("a", "Rollo"), reference("n")]
    probabilities = {"a": 0.5, "n": 0.5}
    answers = {"a": "Rollo", "n": "Normandy"}
    right_first = compute_v2(squad_v2, answers, probabilities, references)
    assert (right_first["best_exact"], right_first["best_exact_thresh"]) == (
        100.0,
        0.5,
    )
    wrong_first = {"n": "Normandy", "a": "Rollo"}
    scores = compute_v2(squad_v2, wrong_first, probabilities, references)
    assert (scores["best_exact"], scores["best_exact_thresh"]) == (50.0, 0.0)
    for ordered in (answers, wrong_first):
        # The official script takes the tie order from its probability file.
        ordered_probabilities = {key: probabilities[key] for key in ordered}
        assert compute_v2(
            squad_v2, ordered, ordered_probabilities, references
        ) == official_v2(as_dataset(references), ordered, ordered_probabilities)


def test_v2_answering_unanswerable_costs_even_if_normalised_empty(squad_v2):
    # "The" scores exact 1 on the unanswerable question, yet the official
    # search counts any non-empty text as an answer and subtracts 1: the best
    # score it finds (50) is below the score at the default threshold (100).
    references = [reference("n"), reference("a", "Rollo")]
    answers = {"n": "The", "a": "Rollo"}
    probabilities = {"n": 0.4, "a": 0.6}
    scores = compute_v2(squad_v2, answers, probabilities, references)
    assert scores["exact"] == 100.0
    assert (scores["best_exact"], scores["best_exact_thresh"]) == (50.0, 0.0)
    assert scores == official_v2(as_dataset(references), answers, probabilities)


def test_v2_probabilities_are_not_rounded_to_float32(squad_v2):
    # The Hub module stores them as float32 (0.1 -> 0.10000000149011612), which
    # also flips `0.1 > 0.1`; the official script keeps the JSON float64.
    references = [reference("a", "Rollo"), reference("n")]
    answers = {"a": "Rollo", "n": ""}
    probabilities = {"a": 0.1, "n": 0.3}
    scores = compute_v2(
        squad_v2, answers, probabilities, references, no_answer_threshold=0.1
    )
    assert scores["best_exact_thresh"] == 0.1
    assert scores["HasAns_exact"] == 100.0  # 0.1 > 0.1 is false: a answers


def test_v2_unanswered_question_scores_zero_with_warning(squad_v2):
    references = [reference("a", "Rollo"), reference("n")]
    predictions = [
        {"id": "a", "prediction_text": "Paris", "no_answer_probability": 0.9},
        {"id": "a", "prediction_text": "Rollo", "no_answer_probability": 0.3},
    ]
    with pytest.warns(UserWarning, match=r"1 question\(s\) have no prediction.*'n'"):
        scores = squad_v2.compute(predictions=predictions, references=references)
    # "n" counts in the totals with 0 everywhere, even in the threshold search.
    assert scores == {
        "exact": 50.0,
        "f1": 50.0,
        "total": 2,
        "HasAns_exact": 100.0,
        "HasAns_f1": 100.0,
        "HasAns_total": 1,
        "NoAns_exact": 0.0,
        "NoAns_f1": 0.0,
        "NoAns_total": 1,
        "best_exact": 50.0,
        "best_exact_thresh": 0.3,
        "best_f1": 50.0,
        "best_f1_thresh": 0.3,
    }


def test_v2_repeated_reference_id_counts_once(squad_v2):
    # As in the official script's dicts: first position, last answers.
    references = [reference("q", "Rollo"), reference("x", "y"), reference("q")]
    answers = {"q": "", "x": "y"}
    probabilities = {"q": 0.5, "x": 0.5}
    scores = compute_v2(
        squad_v2, {**answers, "z": "w"}, {**probabilities, "z": 0.1}, references
    )
    assert scores["total"] == 2 and scores["NoAns_total"] == 1
    assert scores["exact"] == 100.0
    assert scores == official_v2(as_dataset(references), answers, probabilities)


@pytest.mark.parametrize("threshold", ("0.5", None, True, [0.5]))
def test_v2_threshold_must_be_a_number(squad_v2, threshold):
    with pytest.raises(ValueError, match="no_answer_threshold must be a number"):
        compute_v2(
            squad_v2,
            V2_ANSWERS,
            V2_PROBABILITIES,
            V2_REFERENCES,
            no_answer_threshold=threshold,
        )


def test_v2_missing_probability_raises(squad_v2):
    with pytest.raises(ValueError, match="no_answer_probability"):
        squad_v2.compute(
            predictions=[
                {"id": "q", "prediction_text": "x", "no_answer_probability": None}
            ],
            references=[reference("q", "x")],
        )


def test_v2_empty_inputs_raise(squad_v2):
    with pytest.raises(ValueError, match="at least one"):
        squad_v2.compute(predictions=[], references=[])


# === SQuAD v2.0: real questions against the official computation ===


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("threshold", (1.0, 0.5, 0.3))
def test_v2_random_predictions_match_official(squad_v2, seed, threshold):
    rng = random.Random(seed)
    dataset = load_sample("squad_v2_sample.json")
    # The prediction order is the order ties in probability are broken in.
    answers = shuffled(rng, random_answers(rng, dataset))
    probabilities = {question_id: random_probability(rng) for question_id in answers}
    all_references = hub_references(dataset)
    scores = compute_v2(
        squad_v2, answers, probabilities, all_references, no_answer_threshold=threshold
    )
    expected = official_v2(dataset, answers, probabilities, threshold)
    assert scores == expected  # bit for bit
    assert list(scores) == list(expected)
    assert scores["HasAns_total"] == 96 and scores["NoAns_total"] == 112
    for references in random_subsets(rng, all_references):
        subset = shuffled(rng, {r["id"]: answers[r["id"]] for r in references})
        subset_probabilities = {key: probabilities[key] for key in subset}
        scores = compute_v2(
            squad_v2,
            subset,
            subset_probabilities,
            references,
            no_answer_threshold=threshold,
        )
        expected = official_v2(
            as_dataset(references), subset, subset_probabilities, threshold
        )
        assert scores == expected
        assert list(scores) == list(expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_v2_on_v1_questions_match_official(squad_v2, seed):
    rng = random.Random(seed)
    dataset = load_sample("squad_v1_sample.json")
    answers = random_answers(rng, dataset)
    probabilities = {question_id: rng.random() for question_id in answers}
    for references in random_subsets(rng, hub_references(dataset)):
        subset = {r["id"]: answers[r["id"]] for r in references}
        scores = compute_v2(squad_v2, subset, probabilities, references)
        assert scores == official_v2(as_dataset(references), subset, probabilities)
        assert "NoAns_total" not in scores


def test_v2_perfect_predictions(squad_v2):
    dataset = load_sample("squad_v2_sample.json")
    answers = {
        qa["id"]: qa["answers"][0]["text"] if qa["answers"] else ""
        for _, qa in questions(dataset)
    }
    # Any threshold in [0.2, 0.9) separates the two kinds perfectly.
    probabilities = {
        qa["id"]: 0.2 if qa["answers"] else 0.9 for _, qa in questions(dataset)
    }
    scores = compute_v2(squad_v2, answers, probabilities, hub_references(dataset))
    assert scores["exact"] == scores["f1"] == scores["best_exact"] == 100.0
    assert scores["best_exact_thresh"] == 0.2


# === Loading and module info ===


@pytest.mark.parametrize(
    "relative_path, name",
    (("tasks/metrics/squad", "squad"), ("tasks/metrics/squad_v2", "squad_v2")),
)
def test_loads_by_path_relative_to_repo_root(monkeypatch, relative_path, name):
    monkeypatch.chdir(REPO_ROOT)
    module = evaluate.load(relative_path)
    assert module.name == name


def test_info(squad, squad_v2):
    answers = {"text": ["string"], "answer_start": ["int32"]}
    for module, prediction_keys in (
        (squad, {"id", "prediction_text"}),
        (squad_v2, {"id", "prediction_text", "no_answer_probability"}),
    ):
        assert set(module.features["predictions"]) == prediction_keys
        assert set(module.features["references"]) == {"id", "answers"}
        reference_answers = module.features["references"]["answers"]
        assert {
            key: [feature.feature.dtype] for key, feature in reference_answers.items()
        } == answers
        assert "SQuAD" in module.description and "SQuAD" in module.citation
        assert "Rajpurkar" in module.citation
        assert "predictions" in module.inputs_description
        assert "references" in module.inputs_description
    assert squad_v2.features["predictions"]["no_answer_probability"].dtype == "float64"
    assert "no_answer_threshold" in squad_v2.inputs_description
