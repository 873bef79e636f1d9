"""The local GLUE `evaluate` module against what the Hub's `glue` module computes.

The Hub module (`evaluate-metric/glue`) calls sklearn and scipy on the numpy
arrays `evaluate` hands over (int64, or float32 for stsb); `hub_glue` below does
the same, and ours must agree to 1e-12, edge cases included.
"""

import os
import warnings

import evaluate
import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRIC_PATH = os.path.join(REPO_ROOT, "tasks", "metrics", "glue")

ACCURACY_ONLY = (
    "sst2",
    "mnli",
    "mnli_mismatched",
    "mnli_matched",
    "qnli",
    "rte",
    "wnli",
    "hans",
)
CONFIG_NAMES = (*ACCURACY_ONLY, "mrpc", "qqp", "cola", "stsb")
# Labels drawn for random classification inputs (MNLI and HANS-style
# three-way tasks included; MCC is multiclass in sklearn too).
NUM_LABELS = {name: 2 for name in CONFIG_NAMES}
NUM_LABELS.update(mnli=3, mnli_mismatched=3, mnli_matched=3, hans=3)
SEEDS = (0, 1, 2, 3, 4)
SIZES = (1, 2, 3, 7, 64, 1001)


def hub_glue(name, predictions, references):
    """The Hub module's scores: sklearn / scipy on evaluate's numpy arrays."""
    dtype = np.float32 if name == "stsb" else np.int64
    predictions = np.asarray(predictions, dtype=dtype)
    references = np.asarray(references, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "cola":
            score = sklearn.metrics.matthews_corrcoef(references, predictions)
            return {"matthews_correlation": float(score)}
        if name == "stsb":
            return {
                "pearson": float(scipy.stats.pearsonr(predictions, references)[0]),
                "spearmanr": float(scipy.stats.spearmanr(predictions, references)[0]),
            }
        scores = {"accuracy": float((predictions == references).mean())}
        if name in ("mrpc", "qqp"):
            scores["f1"] = float(
                sklearn.metrics.f1_score(y_true=references, y_pred=predictions)
            )
        return scores


@pytest.fixture(scope="module")
def glue():
    modules = {}

    def load(name):
        if name not in modules:
            modules[name] = evaluate.load(METRIC_PATH, name)
        return modules[name]

    return load


def compute(module, predictions, references):
    with warnings.catch_warnings():
        # Constant inputs to pearson / spearman warn, as scipy does.
        warnings.simplefilter("ignore", RuntimeWarning)
        return module.compute(predictions=predictions, references=references)


def assert_scores_equal(actual, expected):
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert isinstance(actual[key], float), (key, type(actual[key]))
        np.testing.assert_allclose(
            actual[key], value, rtol=0, atol=1e-12, equal_nan=True, err_msg=key
        )


def random_inputs(name, seed, size):
    rng = np.random.default_rng(seed)
    if name == "stsb":
        # Continuous predictions against tie-heavy gold scores (0-5 in 0.2 steps),
        # like STS-B.
        predictions = rng.uniform(0, 5, size)
        references = np.round(rng.uniform(0, 5, size) * 5) / 5
        return predictions.tolist(), references.tolist()
    num_labels = NUM_LABELS[name]
    references = rng.integers(0, num_labels, size)
    # Correlated with the references so scores cover more than chance level.
    flips = rng.random(size) < rng.uniform(0.1, 0.9)
    predictions = np.where(flips, rng.integers(0, num_labels, size), references)
    return predictions.tolist(), references.tolist()


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_random_inputs_match_hub(glue, name):
    for seed in SEEDS:
        for size in SIZES:
            if name == "stsb" and size < 2:
                continue  # scipy's pearsonr needs two points; see below
            predictions, references = random_inputs(name, seed, size)
            assert_scores_equal(
                compute(glue(name), predictions, references),
                hub_glue(name, predictions, references),
            )


@pytest.mark.parametrize("num_labels", (2, 3, 5))
def test_matthews_multiclass_matches_sklearn(glue, num_labels):
    rng = np.random.default_rng(num_labels)
    for size in (1, 5, 100, 2000):
        references = rng.integers(0, num_labels, size).tolist()
        predictions = rng.integers(0, num_labels, size).tolist()
        assert_scores_equal(
            compute(glue("cola"), predictions, references),
            hub_glue("cola", predictions, references),
        )


@pytest.mark.parametrize(
    "predictions, references",
    [
        ([1, 1, 1, 1], [0, 1, 0, 1]),  # constant predictions
        ([0, 0, 0, 0], [0, 1, 0, 1]),
        ([0, 1, 0, 1], [1, 1, 1, 1]),  # constant references
        ([1, 1, 1], [1, 1, 1]),  # one label everywhere, all correct
        ([0, 0, 0], [1, 1, 1]),
        ([7], [7]),
        ([1, 0, 1, 0], [1, 0, 1, 0]),  # perfect
        ([0, 1, 0, 1], [1, 0, 1, 0]),  # perfectly wrong
        ([-3, 5, 5, 9], [5, 5, -3, 9]),  # arbitrary label values
    ],
)
def test_matthews_edge_cases_match_sklearn(glue, predictions, references):
    scores = compute(glue("cola"), predictions, references)
    assert_scores_equal(scores, hub_glue("cola", predictions, references))


def test_matthews_single_label_is_zero(glue):
    scores = compute(glue("cola"), [1, 1, 1, 1], [0, 1, 0, 1])
    assert scores == {"matthews_correlation": 0.0}


@pytest.mark.parametrize("name", ("mrpc", "qqp"))
@pytest.mark.parametrize(
    "predictions, references",
    [
        ([0, 0, 0, 0], [0, 1, 0, 1]),  # no positive prediction
        ([0, 1, 0, 1], [0, 0, 0, 0]),  # no positive reference
        ([0, 0, 0], [0, 0, 0]),  # no positive at all: sklearn's zero_division
        ([1, 1, 1], [1, 1, 1]),
        ([1], [0]),
        ([1, 0, 1, 0], [0, 1, 0, 1]),
    ],
)
def test_f1_edge_cases_match_sklearn(glue, name, predictions, references):
    scores = compute(glue(name), predictions, references)
    assert_scores_equal(scores, hub_glue(name, predictions, references))


def test_f1_without_positives_is_zero(glue):
    assert compute(glue("mrpc"), [0, 0, 0], [0, 1, 0])["f1"] == 0.0
    assert compute(glue("mrpc"), [0, 0, 0], [0, 0, 0])["f1"] == 0.0


@pytest.mark.parametrize(
    "predictions, references",
    [([0, 1, 2], [0, 1, 1]), ([0, 2, 0], [2, 0, 2])],
)
def test_f1_rejects_non_binary_labels_like_sklearn(glue, predictions, references):
    with pytest.raises(ValueError):
        hub_glue("mrpc", predictions, references)
    with pytest.raises(ValueError, match="binary"):
        compute(glue("mrpc"), predictions, references)


@pytest.mark.parametrize(
    "predictions, references",
    [
        ([1.0, 2.0], [3.0, 1.0]),  # two points: exactly -1
        ([1.0, 2.0], [1.0, 3.0]),
        ([2.5, 2.5, 2.5], [1.0, 2.0, 3.0]),  # constant predictions: nan
        ([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]),
        ([1.0, 1.0, 2.0, 2.0, 3.0], [0.0, 1.0, 1.0, 1.0, 5.0]),  # ties
        ([1e30, -2e30, 3e30, 0.5e30], [1.0, 2.0, 3.0, 4.0]),  # float32 overflow
        ([1e-30, -2e-30, 3e-30, 0.5e-30], [1.0, 2.0, 3.0, 4.0]),
        ([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0]),
        ([0.1, 0.2, 0.30000001, 0.4], [5.0, 4.0, 3.0, 2.0]),
    ],
)
def test_stsb_edge_cases_match_scipy(glue, predictions, references):
    scores = compute(glue("stsb"), predictions, references)
    assert_scores_equal(scores, hub_glue("stsb", predictions, references))


def test_stsb_constant_input_warns_and_gives_nan(glue):
    with pytest.warns(RuntimeWarning, match="constant"):
        scores = glue("stsb").compute(predictions=[1.0, 1.0, 1.0], references=[1, 2, 3])
    assert np.isnan(scores["pearson"]) and np.isnan(scores["spearmanr"])


def test_stsb_needs_two_points_like_scipy(glue):
    with pytest.raises(ValueError):
        hub_glue("stsb", [1.0], [2.0])
    with pytest.raises(ValueError, match="at least 2"):
        compute(glue("stsb"), [1.0], [2.0])


@pytest.mark.parametrize(
    "name, predictions, references, expected",
    [
        ("sst2", [0, 1, 1, 0], [0, 1, 0, 0], {"accuracy": 0.75}),
        ("mnli", [0, 1, 2, 2, 1], [0, 1, 2, 0, 0], {"accuracy": 0.6}),
        ("wnli", [1, 1], [0, 0], {"accuracy": 0.0}),
        # tp 2, fp 1, fn 1: F1 = 2 * 2 / (2 * 2 + 1 + 1)
        ("mrpc", [1, 1, 0, 0, 1], [1, 0, 0, 1, 1], {"accuracy": 0.6, "f1": 2 / 3}),
        ("qqp", [1, 0, 0, 0], [1, 0, 0, 0], {"accuracy": 1.0, "f1": 1.0}),
        # tp 2, tn 1, fp 1, fn 0: (2 * 1 - 1 * 0) / sqrt(3 * 2 * 2 * 1)
        ("cola", [1, 0, 1, 1], [1, 0, 0, 1], {"matthews_correlation": 2 / 12**0.5}),
        ("cola", [0, 1, 0, 1], [1, 0, 1, 0], {"matthews_correlation": -1.0}),
        ("stsb", [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], {"pearson": 1.0}),
        ("stsb", [1.0, 2.0, 3.0], [3.0, 2.0, 1.0], {"pearson": -1.0}),
        # y = x ** 2: monotone (Spearman 1), not linear (Pearson 25 / sqrt(645))
        (
            "stsb",
            [1.0, 2.0, 3.0, 4.0],
            [1.0, 4.0, 9.0, 16.0],
            {"pearson": 25 / 645**0.5, "spearmanr": 1.0},
        ),
        # ranks [1.5, 1.5, 3] and [1, 2, 3]: rho = 0.75 / sqrt(0.5 * 2)
        ("stsb", [0.0, 0.0, 1.0], [0.0, 1.0, 2.0], {"spearmanr": 3**0.5 / 2}),
    ],
)
def test_known_values(glue, name, predictions, references, expected):
    scores = compute(glue(name), predictions, references)
    for key, value in expected.items():
        # Pearson is computed in float32, like the Hub's scipy call on float32.
        tolerance = 1e-6 if key == "pearson" else 1e-12
        assert scores[key] == pytest.approx(value, abs=tolerance), key


def test_pearson_is_float32_like_the_hub(glue):
    rng = np.random.default_rng(7)
    predictions, references = rng.normal(size=(2, 50))
    scores = compute(glue("stsb"), predictions, references)
    # Equal to scipy on the float32 arrays evaluate produces, and within float32
    # rounding of the float64 value.
    float32_r = scipy.stats.pearsonr(
        predictions.astype(np.float32), references.astype(np.float32)
    )[0]
    assert scores["pearson"] == float(float32_r)
    float64_r = scipy.stats.pearsonr(predictions, references)[0]
    assert scores["pearson"] == pytest.approx(float64_r, abs=1e-6)


@pytest.mark.parametrize("name", ("sst2", "mrpc", "cola", "stsb"))
def test_empty_inputs_raise(glue, name):
    with pytest.raises(ValueError, match="at least one"):
        compute(glue(name), [], [])


@pytest.mark.parametrize("name", ("squad", "sst-2", "MRPC", None))
def test_unknown_config_lists_valid_names(name):
    with pytest.raises(ValueError, match="Expected one of") as error:
        evaluate.load(METRIC_PATH, name)
    message = str(error.value)
    for valid_name in CONFIG_NAMES:
        assert f"'{valid_name}'" in message
    assert f"Received: config_name={name or 'default'!r}" in message


def test_loads_by_path_relative_to_repo_root(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    module = evaluate.load("tasks/metrics/glue", "mrpc")
    assert module.compute(predictions=[0, 1, 1], references=[0, 1, 0]) == {
        "accuracy": 2 / 3,
        "f1": 2 / 3,
    }


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_info(glue, name):
    module = glue(name)
    dtype = "float32" if name == "stsb" else "int64"
    assert module.name == "glue"
    assert module.config_name == name
    assert {key: value.dtype for key, value in module.features.items()} == {
        "predictions": dtype,
        "references": dtype,
    }
    assert "GLUE" in module.citation and "wang2019glue" in module.citation
    assert "GLUE" in module.description
    assert "predictions" in module.inputs_description
    assert "references" in module.inputs_description


def test_incremental_batches_match_single_compute(glue):
    predictions, references = random_inputs("mrpc", 11, 300)
    module = glue("mrpc")
    for start in range(0, 300, 64):
        module.add_batch(
            predictions=predictions[start : start + 64],
            references=references[start : start + 64],
        )
    assert_scores_equal(module.compute(), hub_glue("mrpc", predictions, references))
