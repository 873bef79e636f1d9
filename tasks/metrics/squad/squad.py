"""SQuAD v1.1 metric for `evaluate`, loadable offline by path.

Gives the numbers of the official SQuAD v1.1 evaluation script
(`evaluate-v1.1.py`) and takes the inputs of the Hub's `evaluate-metric/squad`
module: exact match and token F1 of normalised answers, the best over a
question's gold answers, averaged over the questions and scaled to 0-100.

Example:

```python
import evaluate

squad = evaluate.load("tasks/metrics/squad")
squad.compute(
    predictions=[{"id": "q1", "prediction_text": "the Denver Broncos"}],
    references=[
        {"id": "q1", "answers": {"text": ["Denver Broncos"], "answer_start": [177]}}
    ],
)
# {'exact_match': 100.0, 'f1': 100.0}
```
"""

import collections
import re
import string
import warnings

import datasets
import evaluate

_CITATION = """\
@inproceedings{rajpurkar2016squad,
  title={{SQuAD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle={Proceedings of the 2016 Conference on Empirical Methods in Natural Language Processing},
  pages={2383--2392},
  year={2016}
}
"""  # noqa: E501

_DESCRIPTION = """\
The official score of SQuAD v1.1 (Stanford Question Answering Dataset,
https://rajpurkar.github.io/SQuAD-explorer/), a reading comprehension benchmark
whose answers are spans of Wikipedia paragraphs. Predicted and gold answers are
normalised (lower-cased; ASCII punctuation, the articles "a", "an" and "the" and
extra whitespace removed) before two scores are taken against every gold answer
of a question, keeping the best: exact match, and the F1 of the tokens the two
answers share. Both are averaged over the questions and reported in percent,
exactly as the official `evaluate-v1.1.py` script does.
"""

_KWARGS_DESCRIPTION = """
Computes the SQuAD v1.1 exact match and F1.
Args:
    predictions: list of dicts, one per answered question:
        "id" (str): the question id, as in the references;
        "prediction_text" (str): the predicted answer.
    references: list of dicts, one per question:
        "id" (str): the question id;
        "answers": dict of the gold answers, "text" (list of str, at least
            one) and "answer_start" (list of int, their character offsets,
            not used for scoring); the layout of the Hub's `squad` dataset.
Returns: a dict of floats in [0, 100]:
    "exact_match": percentage of questions whose normalised prediction equals
        a normalised gold answer;
    "f1": mean over the questions of the best token F1 against a gold answer.
A question whose id has no prediction scores 0 on both (the official script
prints "Unanswered question ... will receive score 0."; this module warns).
Predictions for ids that are not in the references are ignored; with repeated
prediction ids, the last one counts.
Examples:

    >>> squad = evaluate.load("tasks/metrics/squad")
    >>> predictions = [
    ...     {"id": "q1", "prediction_text": "Denver Broncos"},
    ...     {"id": "q2", "prediction_text": "the Levi's Stadium, in California"},
    ... ]
    >>> references = [
    ...     {"id": "q1", "answers": {"text": ["Denver Broncos", "Broncos"],
    ...                              "answer_start": [177, 184]}},
    ...     {"id": "q2", "answers": {"text": ["Levi's Stadium"],
    ...                              "answer_start": [403]}},
    ... ]
    >>> squad.compute(predictions=predictions, references=references)
    {'exact_match': 50.0, 'f1': 83.33333333333333}
"""

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
    """Harmonic mean of token precision and recall, counting repeated tokens.

    Returns the int 0 when no token is shared, as the official script does.
    """
    shared = collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)
    num_shared = sum(shared.values())
    if num_shared == 0:
        return 0
    precision = num_shared / len(prediction_tokens)
    recall = num_shared / len(gold_tokens)
    # Same operations in the same order as the official script, so the float
    # sums below are bit-identical to its output.
    return (2 * precision * recall) / (precision + recall)


def score_question(prediction, gold_answers):
    """(exact match as 0/1, token F1) of one prediction: the best over golds."""
    prediction = normalize_answer(prediction)
    prediction_tokens = prediction.split()
    golds = [normalize_answer(gold) for gold in gold_answers]
    exact = max(int(prediction == gold) for gold in golds)
    f1 = max(token_f1(prediction_tokens, gold.split()) for gold in golds)
    return exact, f1


def warn_unanswered(question_ids):
    shown = ", ".join(repr(i) for i in question_ids[:_MAX_IDS_SHOWN])
    more = "" if len(question_ids) <= _MAX_IDS_SHOWN else ", ..."
    warnings.warn(
        f"{len(question_ids)} question(s) have no prediction and score 0, as in "
        f"the official SQuAD script: {shown}{more}. Pass one prediction per "
        "reference id to score them.",
        UserWarning,
        stacklevel=4,
    )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
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

    def _compute(self, predictions, references):
        if len(references) == 0:
            raise ValueError(
                "SQuAD scores need at least one prediction and reference. "
                "Received: 0 predictions and 0 references"
            )
        prediction_texts = {
            prediction["id"]: prediction["prediction_text"]
            for prediction in predictions
        }
        # Running sums, one question after another like the official script
        # (not `sum`), so the floats round the same way.
        exact_total = 0
        f1_total = 0
        unanswered = []
        for reference in references:
            gold_answers = reference["answers"]["text"]
            if not gold_answers:
                raise ValueError(
                    "Every SQuAD v1.1 question needs at least one gold answer; "
                    "score unanswerable questions with tasks/metrics/squad_v2. "
                    f"Received: id={reference['id']!r} with answers="
                    f"{reference['answers']!r}"
                )
            if reference["id"] not in prediction_texts:
                unanswered.append(reference["id"])
                continue
            exact, f1 = score_question(prediction_texts[reference["id"]], gold_answers)
            exact_total += exact
            f1_total += f1
        if unanswered:
            warn_unanswered(unanswered)
        # A repeated reference id counts once per occurrence, as in the script.
        total = len(references)
        return {
            "exact_match": 100.0 * exact_total / total,
            "f1": 100.0 * f1_total / total,
        }
