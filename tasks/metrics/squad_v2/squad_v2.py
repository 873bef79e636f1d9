"""SQuAD v2.0 metric for `evaluate`, loadable offline by path.

Gives the numbers of the official SQuAD v2.0 evaluation script
(`evaluate-v2.0.py`, with `--na-prob-file` for the best-threshold scores) and
takes the inputs of the Hub's `evaluate-metric/squad_v2` module. Unanswerable
questions have no gold answer; the only right answer to them is the empty
string, and a prediction counts as "no answer" when it is empty or when its
no-answer probability exceeds `no_answer_threshold`.

The normalisation is the same as in `tasks/metrics/squad`; it is repeated here
because `evaluate` loads each module as a standalone script.

Example:

```python
import evaluate

squad_v2 = evaluate.load("tasks/metrics/squad_v2")
squad_v2.compute(
    predictions=[
        {"id": "q1", "prediction_text": "France", "no_answer_probability": 0.1},
        {"id": "q2", "prediction_text": "", "no_answer_probability": 0.9},
    ],
    references=[
        {"id": "q1", "answers": {"text": ["France"], "answer_start": [159]}},
        {"id": "q2", "answers": {"text": [], "answer_start": []}},
    ],
)
# {'exact': 100.0, 'f1': 100.0, 'total': 2, 'HasAns_exact': 100.0, ...}
```
"""

import collections
import numbers
import re
import string
import warnings

import datasets
import evaluate

_CITATION = """\
@inproceedings{rajpurkar2018know,
  title={Know What You Don't Know: Unanswerable Questions for {SQuAD}},
  author={Rajpurkar, Pranav and Jia, Robin and Liang, Percy},
  booktitle={Proceedings of the 56th Annual Meeting of the Association for Computational Linguistics (Volume 2: Short Papers)},
  pages={784--789},
  year={2018}
}
"""  # noqa: E501

_DESCRIPTION = """\
The official score of SQuAD v2.0 (Stanford Question Answering Dataset,
https://rajpurkar.github.io/SQuAD-explorer/), which adds to the answerable
questions of SQuAD v1.1 over 50,000 unanswerable ones written to look like them:
a system must answer when the paragraph holds the answer and abstain otherwise.
Answers are normalised as in SQuAD v1.1 (lower-cased; ASCII punctuation, the
articles "a", "an" and "the" and extra whitespace removed); exact match and
token F1 take the best gold answer, and an unanswerable question is answered
correctly only by the empty string (exact match 1 and F1 1). Scores are
reported over all questions, the answerable ones (HasAns) and the unanswerable
ones (NoAns), together with the best scores over all no-answer thresholds,
exactly as the official `evaluate-v2.0.py` script does.
"""

_KWARGS_DESCRIPTION = """
Computes the SQuAD v2.0 scores.
Args:
    predictions: list of dicts, one per answered question:
        "id" (str): the question id, as in the references;
        "prediction_text" (str): the predicted answer, "" for no answer;
        "no_answer_probability" (float): the model's probability that the
            question has no answer.
    references: list of dicts, one per question:
        "id" (str): the question id;
        "answers": dict of the gold answers, "text" (list of str, empty for an
            unanswerable question) and "answer_start" (list of int, not used
            for scoring); the layout of the Hub's `squad_v2` dataset.
    no_answer_threshold (float, default 1.0): a prediction whose
        no_answer_probability is greater than this counts as "no answer",
        whatever its text (the official script's --na-prob-thresh).
Returns: a dict:
    "exact", "f1" (float, 0-100): exact match and F1 over all questions,
        with the threshold applied;
    "total" (int): the number of questions;
    "HasAns_exact", "HasAns_f1", "HasAns_total": the same over the
        answerable questions, present only when there are some;
    "NoAns_exact", "NoAns_f1", "NoAns_total": the same over the unanswerable
        questions, present only when there are some;
    "best_exact", "best_f1" (float, 0-100): the best exact match and F1 over
        all thresholds on no_answer_probability;
    "best_exact_thresh", "best_f1_thresh" (float): the thresholds reaching them
        (0.0 when no threshold beats abstaining on every question).
A question whose id has no prediction scores 0 everywhere and counts in the
totals (the official script stops on it with a KeyError; this module warns).
Predictions for ids that are not in the references are ignored; with repeated
prediction ids, the last one counts.
Examples:

    >>> squad_v2 = evaluate.load("tasks/metrics/squad_v2")
    >>> predictions = [
    ...     {"id": "q1", "prediction_text": "France", "no_answer_probability": 0.1},
    ...     {"id": "q2", "prediction_text": "Rollo", "no_answer_probability": 0.6},
    ... ]
    >>> references = [
    ...     {"id": "q1", "answers": {"text": ["France"], "answer_start": [159]}},
    ...     {"id": "q2", "answers": {"text": [], "answer_start": []}},
    ... ]
    >>> squad_v2.compute(predictions=predictions, references=references)
    {'exact': 50.0, 'f1': 50.0, 'total': 2, 'HasAns_exact': 100.0, 'HasAns_f1': 100.0, 'HasAns_total': 1, 'NoAns_exact': 0.0, 'NoAns_f1': 0.0, 'NoAns_total': 1, 'best_exact': 100.0, 'best_exact_thresh': 0.1, 'best_f1': 100.0, 'best_f1_thresh': 0.1}
    >>> squad_v2.compute(
    ...     predictions=predictions, references=references, no_answer_threshold=0.5
    ... )["exact"]
    100.0
"""  # noqa: E501

_PUNCTUATION = frozenset(string.punctuation)
# Whole words only: "another" and "theory" keep their letters.
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Ids of unanswered questions quoted in the warning.
_MAX_IDS_SHOWN = 5


def normalize_answer(text):
    """Lower-cases, then drops ASCII punctuation, articles and extra spaces."""
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction_tokens, gold_tokens):
    """Token F1; 1 or 0 when either side is empty (no answer), as officially.

    Returns an int for the 0 and empty cases, a float otherwise: the types the
    official script sums, so the totals are bit-identical to its output.
    """
    if not prediction_tokens or not gold_tokens:
        return int(prediction_tokens == gold_tokens)
    shared = collections.Counter(gold_tokens) & collections.Counter(prediction_tokens)
    num_shared = sum(shared.values())
    if num_shared == 0:
        return 0
    precision = num_shared / len(prediction_tokens)
    recall = num_shared / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def score_question(prediction, gold_answers):
    """(exact match as 0/1, token F1) of one prediction: the best over golds."""
    prediction = normalize_answer(prediction)
    prediction_tokens = prediction.split()
    golds = [normalize_answer(gold) for gold in gold_answers]
    exact = max(int(gold == prediction) for gold in golds)
    f1 = max(token_f1(prediction_tokens, gold.split()) for gold in golds)
    return exact, f1


def apply_threshold(raw_scores, has_answer, probabilities, threshold):
    """Per-question scores once questions above the threshold abstain.

    An abstention scores 1.0 on an unanswerable question, 0.0 otherwise; a
    question without a prediction scores 0. Keys follow `has_answer`.
    """
    scores = {}
    for question_id, answerable in has_answer.items():
        if question_id not in raw_scores:
            scores[question_id] = 0
        elif probabilities[question_id] > threshold:
            scores[question_id] = float(not answerable)
        else:
            scores[question_id] = raw_scores[question_id]
    return scores


def average(exact_scores, f1_scores, question_ids, prefix=""):
    total = len(question_ids)
    # Built-in `sum` over the official order, as the official script does.
    return {
        f"{prefix}exact": 100.0 * sum(exact_scores[i] for i in question_ids) / total,
        f"{prefix}f1": 100.0 * sum(f1_scores[i] for i in question_ids) / total,
        f"{prefix}total": total,
    }


def best_threshold(raw_scores, prediction_texts, probabilities, has_answer):
    """(best score in percent, threshold) over all no-answer thresholds.

    The official search: start by abstaining everywhere, which scores the
    unanswerable questions, then answer the questions one at a time in
    increasing order of no-answer probability (ties in prediction order),
    keeping the first running score that beats all before it. Answering an
    unanswerable question costs 1 whenever the raw prediction text is not
    empty, even if it normalises to "" (e.g. "The").
    """
    score = sum(1 for question_id in raw_scores if not has_answer[question_id])
    best_score, threshold = score, 0.0
    for question_id in sorted(probabilities, key=probabilities.__getitem__):
        if question_id not in raw_scores:
            continue  # a prediction for an id that is not in the references
        if has_answer[question_id]:
            score += raw_scores[question_id]
        elif prediction_texts[question_id]:
            score -= 1
        if score > best_score:
            best_score, threshold = score, probabilities[question_id]
    return 100.0 * best_score / len(has_answer), threshold


def warn_unanswered(question_ids):
    shown = ", ".join(repr(i) for i in question_ids[:_MAX_IDS_SHOWN])
    more = "" if len(question_ids) <= _MAX_IDS_SHOWN else ", ..."
    warnings.warn(
        f"{len(question_ids)} question(s) have no prediction and score 0: "
        f"{shown}{more}. Pass one prediction per reference id to score them.",
        UserWarning,
        stacklevel=4,
    )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SquadV2(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {
                        "id": datasets.Value("string"),
                        "prediction_text": datasets.Value("string"),
                        # float64, not the Hub's float32: the official script
                        # compares and reports the probabilities unrounded.
                        "no_answer_probability": datasets.Value("float64"),
                    },
                    "references": {
                        "id": datasets.Value("string"),
                        "answers": datasets.Sequence(
                            {
                                "text": datasets.Value("string"),
                                "answer_start": datasets.Value("int32"),
                            }
                        ),
                    },
                }
            ),
            codebase_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references, no_answer_threshold=1.0):
        if isinstance(no_answer_threshold, bool) or not isinstance(
            no_answer_threshold, numbers.Real
        ):
            raise ValueError(
                "no_answer_threshold must be a number, the no-answer "
                "probability above which a prediction counts as no answer. "
                f"Received: no_answer_threshold={no_answer_threshold!r}"
            )
        if len(references) == 0:
            raise ValueError(
                "SQuAD scores need at least one prediction and reference. "
                "Received: 0 predictions and 0 references"
            )
        prediction_texts = {}
        probabilities = {}
        for prediction in predictions:
            if prediction["no_answer_probability"] is None:
                raise ValueError(
                    "Every SQuAD v2.0 prediction needs a no_answer_probability "
                    "(use 0.0 when the model gives none). Received: "
                    f"{prediction!r}"
                )
            prediction_texts[prediction["id"]] = prediction["prediction_text"]
            probabilities[prediction["id"]] = prediction["no_answer_probability"]

        # Question id -> its gold answers. Like the official script's dicts, a
        # repeated id keeps its first position and its last answers.
        has_answer = {}
        gold_answers = {}
        for reference in references:
            texts = reference["answers"]["text"]
            has_answer[reference["id"]] = bool(texts)
            # Golds that normalise to "" (e.g. "The") count as no answer.
            gold_answers[reference["id"]] = [
                text for text in texts if normalize_answer(text)
            ] or [""]

        raw_exact = {}
        raw_f1 = {}
        for question_id in has_answer:
            if question_id in prediction_texts:
                raw_exact[question_id], raw_f1[question_id] = score_question(
                    prediction_texts[question_id], gold_answers[question_id]
                )
        unanswered = [i for i in has_answer if i not in raw_exact]
        if unanswered:
            warn_unanswered(unanswered)

        exact = apply_threshold(
            raw_exact, has_answer, probabilities, no_answer_threshold
        )
        f1 = apply_threshold(raw_f1, has_answer, probabilities, no_answer_threshold)
        scores = average(exact, f1, list(has_answer))
        answerable = [i for i, has in has_answer.items() if has]
        unanswerable = [i for i, has in has_answer.items() if not has]
        if answerable:
            scores.update(average(exact, f1, answerable, prefix="HasAns_"))
        if unanswerable:
            scores.update(average(exact, f1, unanswerable, prefix="NoAns_"))
        # The search works on the raw scores, whatever no_answer_threshold is.
        for name, raw_scores in (("exact", raw_exact), ("f1", raw_f1)):
            best, threshold = best_threshold(
                raw_scores, prediction_texts, probabilities, has_answer
            )
            scores[f"best_{name}"] = best
            scores[f"best_{name}_thresh"] = threshold
        return scores
