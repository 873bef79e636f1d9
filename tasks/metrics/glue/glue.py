"""GLUE metric for `evaluate`, loadable offline by path.

Reproduces the Hub's `evaluate-metric/glue` module (same config names, inputs,
output keys and values) with numpy alone: accuracy, binary F1 (as
`sklearn.metrics.f1_score`), Matthews correlation (as
`sklearn.metrics.matthews_corrcoef`), Pearson and Spearman correlation (as
`scipy.stats.pearsonr` / `spearmanr`), including their edge cases.

Example:

```python
import evaluate

glue = evaluate.load("tasks/metrics/glue", "mrpc")
glue.compute(predictions=[0, 1, 1], references=[0, 1, 0])
# {'accuracy': 0.666..., 'f1': 0.666...}
```
"""

import warnings

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  note={In the Proceedings of ICLR.},
  year={2019}
}
"""  # noqa: E501

_DESCRIPTION = """\
The official score of each GLUE task (General Language Understanding
Evaluation, https://gluebenchmark.com): accuracy for SST-2, MNLI (matched and
mismatched), QNLI, RTE, WNLI and HANS; accuracy and F1 of the positive class for
MRPC and QQP; Matthews correlation for CoLA; Pearson and Spearman correlation for
STS-B. Pick the task with the config name.
"""

_KWARGS_DESCRIPTION = """
Computes the GLUE score of one task, chosen by the config name.
Args:
    predictions: predicted labels (int) for classification tasks, predicted
        similarity scores (float) for stsb.
    references: gold labels (int), or gold scores (float) for stsb.
Returns: a dict of floats, depending on the config name:
    "accuracy": fraction of predictions equal to the references
        (sst2, mnli, mnli_mismatched, mnli_matched, qnli, rte, wnli, hans, mrpc,
        qqp);
    "f1": F1 score of label 1 (mrpc, qqp); 0.0 when neither predictions nor
        references contain a 1;
    "matthews_correlation": Matthews correlation coefficient, in [-1, 1]
        (cola); 0.0 when predictions or references hold a single label;
    "pearson", "spearmanr": Pearson and Spearman correlation coefficients, in
        [-1, 1] (stsb); nan when predictions or references are constant.
        Pearson is computed in the precision of the inputs (float32), as the
        Hub module does through scipy.
Examples:

    >>> glue = evaluate.load("tasks/metrics/glue", "sst2")
    >>> glue.compute(predictions=[0, 1], references=[0, 1])
    {'accuracy': 1.0}

    >>> glue = evaluate.load("tasks/metrics/glue", "mrpc")
    >>> glue.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])
    {'accuracy': 0.75, 'f1': 0.6666666666666666}

    >>> glue = evaluate.load("tasks/metrics/glue", "stsb")
    >>> glue.compute(predictions=[1.0, 2.0, 3.0, 4.0], references=[1.0, 4.0, 9.0, 16.0])
    {'pearson': 0.9843739867210388, 'spearmanr': 1.0}

    >>> glue = evaluate.load("tasks/metrics/glue", "cola")
    >>> glue.compute(predictions=[1, 0, 1, 1], references=[1, 0, 0, 1])
    {'matthews_correlation': 0.5773502691896258}
"""

_CONSTANT_INPUT = (
    "An input array is constant; the correlation coefficient is not defined, "
    "so it is reported as nan."
)


def accuracy(predictions, references):
    return float((predictions == references).mean())


def binary_f1(predictions, references):
    """F1 of label 1, as `sklearn.metrics.f1_score` with its defaults."""
    labels = np.union1d(predictions, references)
    if len(labels) > 2 or (len(labels) == 2 and 1 not in labels):
        raise ValueError(
            "F1 for mrpc and qqp is binary: labels must be 0 and 1 (F1 is that "
            f"of label 1). Received: labels={labels.tolist()}"
        )
    true_positives = np.sum((predictions == 1) & (references == 1))
    # 2 tp / (2 tp + fp + fn); sklearn reports 0.0 when there is no 1 at all.
    denominator = float(np.sum(references == 1)) + float(np.sum(predictions == 1))
    if denominator == 0:
        return 0.0
    return float(2.0 * float(true_positives) / denominator)


def matthews_correlation(predictions, references):
    """Multiclass Matthews correlation, as `sklearn.metrics.matthews_corrcoef`."""
    labels, codes = np.unique(
        np.concatenate([references, predictions]), return_inverse=True
    )
    true_codes, predicted_codes = np.split(codes.reshape(-1), [len(references)])
    num_labels = len(labels)
    # (true label, predicted label) counts.
    confusion = np.bincount(
        true_codes * num_labels + predicted_codes, minlength=num_labels**2
    ).reshape(num_labels, num_labels)
    true_counts = confusion.sum(axis=1, dtype=np.float64)
    predicted_counts = confusion.sum(axis=0, dtype=np.float64)
    num_correct = np.trace(confusion, dtype=np.float64)
    num_samples = predicted_counts.sum()
    covariance_true_predicted = num_correct * num_samples - np.dot(
        true_counts, predicted_counts
    )
    variance_predicted = num_samples**2 - np.dot(predicted_counts, predicted_counts)
    variance_true = num_samples**2 - np.dot(true_counts, true_counts)
    variance_product = variance_predicted * variance_true
    # A single label on either side: sklearn reports 0.0, not nan.
    if variance_product == 0:
        return 0.0
    return float(covariance_true_predicted / np.sqrt(variance_product))


def pearson_correlation(predictions, references):
    """Pearson's r, as `scipy.stats.pearsonr`, in the inputs' float precision."""
    dtype = np.result_type(predictions, references)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float64
    x = np.asarray(predictions, dtype=dtype)
    y = np.asarray(references, dtype=dtype)
    if len(x) < 2:
        raise ValueError(
            "Pearson correlation needs at least 2 predictions and references. "
            f"Received: {len(x)}"
        )
    if np.all(x == x[0]) or np.all(y == y[0]):
        warnings.warn(_CONSTANT_INPUT, RuntimeWarning, stacklevel=2)
        return float("nan")
    # Same operations, order and precision as scipy, so float32 inputs give the
    # same float32-rounded r. Scaling by the largest deviation keeps the norms
    # from overflowing.
    x_centered = x - np.mean(x, axis=-1, keepdims=True)
    y_centered = y - np.mean(y, axis=-1, keepdims=True)
    x_scale = np.max(np.abs(x_centered), axis=-1, keepdims=True)
    y_scale = np.max(np.abs(y_centered), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_norm = x_scale * np.linalg.norm(
            x_centered / x_scale, ord=2, axis=-1, keepdims=True
        )
        y_norm = y_scale * np.linalg.norm(
            y_centered / y_scale, ord=2, axis=-1, keepdims=True
        )
        r = np.vecdot(x_centered / x_norm, y_centered / y_norm, axis=-1)
    r = np.clip(r, -1.0, 1.0)
    if len(x) == 2:
        # Two points always lie on a line: exactly 1 or -1.
        r = np.round(r)
    return float(r)


def average_ranks(values):
    """1-based ranks, ties sharing their mean rank (`scipy.stats.rankdata`)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts_run = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    run_starts = np.flatnonzero(starts_run)
    run_ends = np.append(run_starts[1:], len(values))
    # Mean of the ranks start + 1, ..., end of each run of equal values.
    run_ranks = (run_starts + 1 + run_ends) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = run_ranks[np.cumsum(starts_run) - 1]
    return ranks


def spearman_correlation(predictions, references):
    """Spearman's rho, as `scipy.stats.spearmanr`: Pearson's r of the ranks."""
    # (samples, 2): the layout scipy hands to np.corrcoef, for identical rounding.
    columns = np.column_stack([predictions, references])
    if len(columns) < 2 or np.isnan(columns).any():
        return float("nan")
    if np.all(columns == columns[0], axis=0).any():
        warnings.warn(_CONSTANT_INPUT, RuntimeWarning, stacklevel=2)
        return float("nan")
    ranks = np.column_stack([average_ranks(column) for column in columns.T])
    return float(np.corrcoef(ranks, rowvar=False)[1, 0])


def accuracy_and_f1(predictions, references):
    return {
        "accuracy": accuracy(predictions, references),
        "f1": binary_f1(predictions, references),
    }


def pearson_and_spearman(predictions, references):
    return {
        "pearson": pearson_correlation(predictions, references),
        "spearmanr": spearman_correlation(predictions, references),
    }


def matthews(predictions, references):
    return {"matthews_correlation": matthews_correlation(predictions, references)}


def accuracy_only(predictions, references):
    return {"accuracy": accuracy(predictions, references)}


# Config name -> (score function, input dtype).
TASK_SCORES = {
    "sst2": (accuracy_only, "int64"),
    "mnli": (accuracy_only, "int64"),
    "mnli_mismatched": (accuracy_only, "int64"),
    "mnli_matched": (accuracy_only, "int64"),
    "qnli": (accuracy_only, "int64"),
    "rte": (accuracy_only, "int64"),
    "wnli": (accuracy_only, "int64"),
    "hans": (accuracy_only, "int64"),
    "mrpc": (accuracy_and_f1, "int64"),
    "qqp": (accuracy_and_f1, "int64"),
    "cola": (matthews, "int64"),
    "stsb": (pearson_and_spearman, "float32"),
}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Glue(evaluate.Metric):
    def _info(self):
        if self.config_name not in TASK_SCORES:
            raise ValueError(
                "Unknown GLUE config name. Expected one of "
                f"{sorted(TASK_SCORES)}, e.g. "
                'evaluate.load("tasks/metrics/glue", "mrpc"). '
                f"Received: config_name={self.config_name!r}"
            )
        dtype = TASK_SCORES[self.config_name][1]
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value(dtype),
                    "references": datasets.Value(dtype),
                }
            ),
            codebase_urls=[],
            reference_urls=["https://gluebenchmark.com"],
            format="numpy",
        )

    def _compute(self, predictions, references):
        if len(references) == 0:
            # sklearn raises here; the Hub's accuracy-only configs return nan.
            raise ValueError(
                "GLUE scores need at least one prediction and reference. "
                "Received: 0 predictions and 0 references"
            )
        score = TASK_SCORES[self.config_name][0]
        return score(np.asarray(predictions), np.asarray(references))
