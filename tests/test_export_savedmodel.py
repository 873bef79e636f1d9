"""SavedModel export: raw strings in, each task's answers out, served alone.

The tasks of the issue (base model, sequence classification from a fine-tuned
`tasks.glue` directory, token classification, question answering, masked LM)
are exported once each and served by one fresh process in which
`import bert_keras` fails; their outputs must be the Keras model's on the HF
tokenizer's input, and the answers transformers' pipelines give (question
answering: its v4 pipeline's rule, re-done in numpy, as v5 removed it). The
other heads (pretraining, next sentence, multiple choice) run the same
`tf.function` unsaved, to keep the suite fast. Models have one layer over
all-MiniLM's real vocabulary, weights perturbed so outputs are not uniform.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import transformers

import bert_keras as bk
from bert_keras.errors import ConfigError
from bert_keras.serving.savedmodel import ID_NAMES
from bert_keras.serving.savedmodel import export_saved_model
from bert_keras.serving.savedmodel import ids_function
from bert_keras.serving.savedmodel import text_function
from tests.conftest import CHOICES
from tests.conftest import CLASS_NAMES
from tests.conftest import inputs_for
from tests.conftest import max_abs_diff
from tests.conftest import perturb_keras
from tests.conftest import tiny_config
from tests.test_glue_cli import write_glue_dir

MAX_LENGTH = 24
GLUE_MAX_LENGTH = 32
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
# Exported and served without bert_keras; sequence classification comes from
# the tasks.glue run.
SAVED = (
    "BertModel",
    "BertForMaskedLM",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
)
SERVED = SAVED + ("BertForSequenceClassification",)
UNSAVED = tuple(name for name in CLASS_NAMES if name not in SERVED)
TEXTS = [
    "Hello world, how are you?",
    "The [MASK] is blue; the [MASK] is GREEN.",
    "Ça va? 北京 naïve café 🙂 unaffable",
    "",
    # Past MAX_LENGTH: truncated.
    "a long sentence that goes on and on " * 4,
]
PAIRS = ["What is it?", "the sky", "a b c d", "x", "short"]
QUESTIONS = ["Where is it?", "Who wrote it?", "What colour?", "When?", "Why?"]
CONTEXTS = [
    "It is in Paris, near the river.",
    "Victor Hugo wrote it in 1862, unaffably.",
    "The naïve café is painted blue and green.",
    "Yesterday, at noon, in a long and winding sentence " * 3,
    "",
]


def _feed(name):
    """The string inputs of class `name`'s serving_default."""
    if name == "BertForQuestionAnswering":
        return {"question": QUESTIONS, "context": CONTEXTS}
    if name == "BertForNextSentencePrediction":
        return {"text": TEXTS, "text_pair": PAIRS}
    if name == "BertForMultipleChoice":
        choices = [[pair, pair + " or not", "neither"] for pair in PAIRS]
        return {"text": TEXTS, "choices": choices}
    return {"text": TEXTS}


def _hf_encode(tokenizer, name, feed, max_length=MAX_LENGTH):
    """What the Keras model gets: the HF tokenizer's ids, padded to max_length."""
    first, second = (list(feed.values()) + [None])[:2]
    if name == "BertForMultipleChoice":
        first = [text for text, row in zip(first, second) for _ in row]
        second = [choice for row in second for choice in row]
    encoded = tokenizer(
        first,
        second,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_tensors="np",
    )
    arrays = {key: value.astype(np.int32) for key, value in encoded.items()}
    if name == "BertForMultipleChoice":
        arrays = {
            key: value.reshape((len(PAIRS), -1) + value.shape[1:])
            for key, value in arrays.items()
        }
    return arrays, encoded


def _keras(model, arrays):
    ids = {key: arrays[key] for key in ID_NAMES}
    return {key: np.asarray(v) for key, v in model(ids, training=False).items()}


def _strings(values):
    """A string tensor's bytes as nested lists of str."""
    return np.char.decode(values.astype(bytes), "utf-8").tolist()


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def models(tokenizer):
    """Factory: a tiny perturbed model of class `name` over MiniLM's vocabulary."""
    cache = {}

    def make(name):
        if name not in cache:
            overrides = dict(vocab_size=len(tokenizer), num_hidden_layers=1)
            if name != "BertForQuestionAnswering":
                overrides["id2label"] = LABELS
            model = getattr(bk, name)(tiny_config(name, **overrides))
            cache[name] = perturb_keras(model, scale=0.1, seed=CLASS_NAMES.index(name))
        return cache[name]

    return make


@pytest.fixture(scope="module")
def glue_run(tiny_checkpoint, tmp_path_factory):
    """A fine-tuned `tasks.glue` SST-2 output directory and its dev sentences."""
    from tasks import glue

    root = tmp_path_factory.mktemp("glue_run")
    data = write_glue_dir(root)
    out = root / "out"
    glue.main(
        ["--task", "sst2", "--model", tiny_checkpoint, "--data-dir", data,
         "--output-dir", str(out), "--epochs", "1", "--batch-size", "8",
         "--max-seq-length", str(GLUE_MAX_LENGTH), "--verbose", "0"]
    )  # fmt: skip
    lines = (root / "SST-2" / "dev.tsv").read_text().splitlines()[1:]
    rows = (out / "predictions.tsv").read_text().splitlines()[1:]
    return {
        "directory": out,
        "sentences": [line.split("\t")[0] for line in lines],
        "predictions": [row.split("\t")[1] for row in rows],
    }


# Runs in a fresh interpreter: bert_keras and transformers cannot be imported,
# only TensorFlow and TF Text (which registers the tokenizer's ops).
SERVE_ALONE = textwrap.dedent(
    """
    import json, sys
    sys.modules["bert_keras"] = None
    sys.modules["transformers"] = None
    try:
        import bert_keras
    except ImportError:
        pass
    else:
        raise SystemExit("bert_keras was importable")
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    results = {}
    for key, (path, signature, feed) in json.loads(sys.argv[1]).items():
        served = tf.saved_model.load(path)
        tensors = {name: tf.constant(value) for name, value in feed.items()}
        outputs = served.signatures[signature](**tensors)
        for name, value in outputs.items():
            results[key + "/" + name] = value.numpy()
    np.savez(sys.argv[2], **results)
    """
)


@pytest.fixture(scope="module")
def served(models, glue_run, tokenizer, tmp_path_factory):
    """`{name: (model, outputs, feed, [(id outputs, ids)])}` served elsewhere.

    The sequence classifier is the `tasks.glue` output, loaded and exported
    from its directory as a user would.
    """
    root = tmp_path_factory.mktemp("served")
    exported = {}
    for name in SAVED:
        model = models(name)
        path = str(root / name)
        export_saved_model(model, path, tokenizer=tokenizer, max_length=MAX_LENGTH)
        exported[name] = (model, path, _feed(name))
    directory = glue_run["directory"]
    glue_model = bk.BertForSequenceClassification.from_pretrained(directory)
    path = str(root / "glue")
    export_saved_model(
        glue_model,
        path,
        tokenizer=bk.AutoTokenizer.from_pretrained(directory),
        max_length=GLUE_MAX_LENGTH,
    )
    feed = {"text": TEXTS + glue_run["sentences"]}
    exported["BertForSequenceClassification"] = (glue_model, path, feed)
    requests, id_inputs = {}, {}
    for name, (model, path, feed) in exported.items():
        requests[name] = (path, "serving_default", feed)
        # Any batch and length, beyond the string signature's max_length too.
        for batch, seq in ((3, 7), (1, MAX_LENGTH + 9)):
            key = f"{name}:ids:{seq}"
            ids = inputs_for(name, model.config, batch=batch, seq=seq)
            id_inputs[key] = {k: v.astype(np.int32) for k, v in ids.items()}
            lists = {k: v.tolist() for k, v in id_inputs[key].items()}
            requests[key] = (path, "serve_ids", lists)
    output = root / "outputs.npz"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, "-c", SERVE_ALONE, json.dumps(requests), str(output)],
        check=True,
        env=env,
        cwd=root,
    )
    with np.load(output, allow_pickle=True) as results:  # string arrays
        outputs = {key: results[key] for key in results.files}

    def of(key):
        prefix = key + "/"
        return {k[len(prefix) :]: v for k, v in outputs.items() if k.startswith(prefix)}

    served = {
        name: (
            model,
            of(name),
            feed,
            [
                (of(key), id_inputs[key])
                for key in id_inputs
                if key.startswith(name + ":")
            ],
        )
        for name, (model, _, feed) in exported.items()
    }
    served["paths"] = {name: path for name, (_, path, _) in exported.items()}
    return served


# --- Strings in: the Keras model's outputs, and each task's answers ---------


def _check_outputs(name, model, ours, tokenizer, feed, max_length=MAX_LENGTH):
    arrays, encoding = _hf_encode(tokenizer, name, feed, max_length)
    theirs = _keras(model, arrays)
    raw = sorted(set(ours) & set(theirs))
    if name not in ("BertForMaskedLM", "BertForPreTraining"):
        assert raw, "the string signature returns the raw outputs too"
    for key in raw:
        assert max_abs_diff(ours[key], theirs[key]) <= 1e-5, key
    CHECKS[name](ours, theirs, arrays, tokenizer, model=model, encoding=encoding)


@pytest.mark.parametrize("name", SERVED)
def test_saved_model_from_strings_gives_the_keras_outputs(name, served, tokenizer):
    model, ours, feed, _ = served[name]
    if name == "BertForSequenceClassification":  # the glue run's own tokenizer
        tokenizer = bk.AutoTokenizer.from_pretrained(model.config._name_or_path)
        _check_outputs(name, model, ours, tokenizer, feed, GLUE_MAX_LENGTH)
    else:
        _check_outputs(name, model, ours, tokenizer, feed)


@pytest.mark.parametrize("name", UNSAVED)
def test_text_function_gives_the_keras_outputs(name, models, tokenizer):
    model = models(name)
    serve, _ = text_function(model, tokenizer, max_length=MAX_LENGTH)
    feed = _feed(name)
    ours = serve(*[tf.constant(value) for value in feed.values()])
    ours = {key: value.numpy() for key, value in ours.items()}
    _check_outputs(name, model, ours, tokenizer, feed)


def _check_sequence_classification(ours, theirs, arrays, tokenizer, model, **_):
    probabilities = _softmax(theirs["logits"])
    assert max_abs_diff(ours["probabilities"], probabilities) <= 1e-5
    label_ids = probabilities.argmax(-1)
    assert ours["label_id"].tolist() == label_ids.tolist()
    names = model.config.id2label
    assert _strings(ours["label"]) == [names[i] for i in label_ids]
    assert max_abs_diff(ours["score"], probabilities.max(-1)) <= 1e-5


def _check_token_classification(ours, theirs, arrays, tokenizer, **_):
    mask = ours["token_mask"].astype(bool)
    special = np.isin(
        arrays["input_ids"], [tokenizer.cls_token_id, tokenizer.sep_token_id]
    )
    real = arrays["attention_mask"].astype(bool)
    np.testing.assert_array_equal(mask, real & ~special)
    np.testing.assert_array_equal(ours["label_ids"], theirs["logits"].argmax(-1))
    offsets = arrays["offset_mapping"] * mask[..., None]
    np.testing.assert_array_equal(ours["start_offsets"], offsets[..., 0])
    np.testing.assert_array_equal(ours["end_offsets"], offsets[..., 1])
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in arrays["input_ids"]]
    assert _strings(ours["tokens"]) == tokens


def _check_fill_mask(ours, theirs, arrays, tokenizer, key="logits", **_):
    rows, positions = np.nonzero(arrays["input_ids"] == tokenizer.mask_token_id)
    assert rows.tolist() == [1, 1]  # the two [MASK] written in TEXTS[1]
    assert ours["mask_positions"][1].tolist() == positions.tolist()
    assert (ours["mask_positions"][[0, 2, 3, 4]] == -1).all()
    probabilities = _softmax(theirs[key][rows, positions])
    top = np.argsort(-probabilities, axis=-1)[:, :5]
    np.testing.assert_array_equal(ours["top_token_ids"][1], top)
    expected = np.take_along_axis(probabilities, top, axis=-1)
    assert max_abs_diff(ours["top_scores"][1], expected) <= 1e-5
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in top]
    assert _strings(ours["top_tokens"][1]) == tokens


def _check_pretraining(ours, theirs, arrays, tokenizer, **_):
    _check_fill_mask(ours, theirs, arrays, tokenizer, key="prediction_logits")
    is_next = _softmax(theirs["seq_relationship_logits"])[:, 0]
    assert max_abs_diff(ours["is_next"], is_next) <= 1e-5


def _check_next_sentence(ours, theirs, arrays, tokenizer, **_):
    assert max_abs_diff(ours["is_next"], _softmax(theirs["logits"])[:, 0]) <= 1e-5


def _check_base_model(ours, theirs, arrays, tokenizer, **_):
    mask = arrays["attention_mask"][..., None]
    mean = (theirs["last_hidden_state"] * mask).sum(1) / mask.sum(1)
    assert max_abs_diff(ours["sentence_embedding"], mean) <= 1e-5
    np.testing.assert_array_equal(ours["attention_mask"], arrays["attention_mask"])


def _check_multiple_choice(ours, theirs, arrays, tokenizer, **_):
    assert ours["logits"].shape == (len(PAIRS), 3)
    np.testing.assert_array_equal(ours["label_id"], theirs["logits"].argmax(-1))


def _pipeline_answer(start_logits, end_logits, encoding, row, max_answer_len=15):
    """transformers v4's question-answering pipeline on one window, in numpy."""
    sequence_ids = encoding.sequence_ids(row)
    context = np.array([index == 1 for index in sequence_ids])
    allowed = context.copy()
    allowed[0] = True  # [CLS] is in p_mask's softmax, then zeroed
    if not context.any():
        return "", 0, 0, 0.0
    start = _softmax(np.where(allowed, start_logits, -10000.0))
    end = _softmax(np.where(allowed, end_logits, -10000.0))
    start[0] = end[0] = 0.0
    candidates = np.tril(np.triu(start[:, None] * end[None, :]), max_answer_len - 1)
    first, last = np.unravel_index(np.argmax(candidates), candidates.shape)
    first_word = encoding.token_to_word(row, int(first))
    last_word = encoding.token_to_word(row, int(last))
    begin = encoding.word_to_chars(row, first_word, sequence_index=1).start
    stop = encoding.word_to_chars(row, last_word, sequence_index=1).end
    return CONTEXTS[row][begin:stop], begin, stop, candidates[first, last]


def _check_question_answering(ours, theirs, arrays, tokenizer, encoding, **_):
    for row in range(len(CONTEXTS)):
        answer, start, end, score = _pipeline_answer(
            theirs["start_logits"][row], theirs["end_logits"][row], encoding, row
        )
        assert ours["answer"][row].decode() == answer
        assert (ours["start"][row], ours["end"][row]) == (start, end)
        assert abs(ours["score"][row] - score) <= 1e-5
    assert ours["answer"][-1] == b"" and ours["score"][-1] == 0  # empty context


CHECKS = {
    "BertModel": _check_base_model,
    "BertForPreTraining": _check_pretraining,
    "BertForMaskedLM": _check_fill_mask,
    "BertForNextSentencePrediction": _check_next_sentence,
    "BertForSequenceClassification": _check_sequence_classification,
    "BertForTokenClassification": _check_token_classification,
    "BertForQuestionAnswering": _check_question_answering,
    "BertForMultipleChoice": _check_multiple_choice,
}


def test_glue_output_directory_served_without_bert_keras(served, glue_run):
    _, ours, _, _ = served["BertForSequenceClassification"]
    dev = len(glue_run["sentences"])
    assert _strings(ours["label"][-dev:]) == glue_run["predictions"]


def _rest_body_tensors(body):
    """The tensors TF Serving makes of a REST body: rows stacked, or columns."""
    if "instances" in body:
        rows = body["instances"]
        return {key: tf.constant([row[key] for row in rows]) for key in rows[0]}
    return {key: tf.constant(value) for key, value in body["inputs"].items()}


def test_the_documented_rest_bodies_run(served):
    import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)

    docs = (Path(__file__).parents[1] / "docs" / "serving.md").read_text()
    bodies = [
        json.loads(block) for block in re.findall(r"```json\n(.*?)```", docs, re.S)
    ]
    assert len(bodies) == 4, "the TF Serving section's REST bodies"
    paths = served["paths"]
    for body in bodies:
        feed = _rest_body_tensors(body)
        qa = "question" in feed
        name = "BertForQuestionAnswering" if qa else "BertForSequenceClassification"
        model = tf.saved_model.load(paths[name])
        outputs = model.signatures[body["signature_name"]](**feed)
        batch = len(next(iter(feed.values())))
        key = "answer" if qa else "label"
        if body["signature_name"] == "serve_ids":
            key = "logits"
        assert outputs[key].shape[0] == batch, (body, sorted(outputs))


# --- Ids in -------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVED)
def test_saved_model_from_ids_gives_the_keras_outputs(name, served):
    model, _, _, requests = served[name]
    assert len(requests) == 2
    for ours, ids in requests:
        theirs = _keras(model, ids)
        assert sorted(ours) == sorted(theirs)
        for key in ours:
            assert max_abs_diff(ours[key], theirs[key]) <= 1e-5, key


@pytest.mark.parametrize("name", UNSAVED)
def test_ids_function_takes_any_batch_and_length(name, models):
    model = models(name)
    serve = ids_function(model)
    for batch, seq in ((3, 7), (1, MAX_LENGTH + 9)):
        ids = inputs_for(name, model.config, batch=batch, seq=seq)
        ids = {key: value.astype(np.int32) for key, value in ids.items()}
        ours = serve(**ids)
        theirs = _keras(model, ids)
        assert sorted(ours) == sorted(theirs)
        for key in ours:
            assert max_abs_diff(ours[key], theirs[key]) <= 1e-5, key
    if name == "BertForMultipleChoice":
        assert ours["logits"].shape == (1, CHOICES)


# --- The answers transformers' pipelines give --------------------------------


def _pipeline(task, model, tokenizer, tmp_path, **kwargs):
    model.save_pretrained(tmp_path)
    auto = {
        "token-classification": transformers.AutoModelForTokenClassification,
        "fill-mask": transformers.AutoModelForMaskedLM,
        "text-classification": transformers.AutoModelForSequenceClassification,
    }[task]
    torch_model = auto.from_pretrained(tmp_path).eval()
    return transformers.pipeline(task, model=torch_model, tokenizer=tokenizer, **kwargs)


def test_token_classification_matches_the_pipeline(served, tokenizer, tmp_path):
    model, ours, _, _ = served["BertForTokenClassification"]
    pipe = _pipeline(
        "token-classification", model, tokenizer, tmp_path, ignore_labels=[]
    )
    for row, text in enumerate(TEXTS[:4]):  # the pipeline does not truncate
        theirs = pipe(text)
        tokens = np.nonzero(ours["token_mask"][row])[0]
        assert [entity["index"] for entity in theirs] == tokens.tolist()
        for token, entity in zip(tokens, theirs):
            assert ours["labels"][row, token].decode() == entity["entity"]
            word = ours["tokens"][row, token].decode()
            if word != tokenizer.unk_token:  # the pipeline shows [UNK]'s text
                assert word == entity["word"]
            assert ours["start_offsets"][row, token] == entity["start"]
            assert ours["end_offsets"][row, token] == entity["end"]
            assert abs(ours["scores"][row, token] - entity["score"]) <= 1e-4


def test_masked_lm_matches_the_pipeline(served, tokenizer, tmp_path):
    model, ours, _, _ = served["BertForMaskedLM"]
    pipe = _pipeline("fill-mask", model, tokenizer, tmp_path, top_k=5)
    for mask, candidates in enumerate(pipe(TEXTS[1])):
        ids = [candidate["token"] for candidate in candidates]
        scores = [candidate["score"] for candidate in candidates]
        assert ours["top_token_ids"][1, mask].tolist() == ids
        np.testing.assert_allclose(ours["top_scores"][1, mask], scores, atol=1e-4)


def test_sequence_classification_matches_the_pipeline(served, tmp_path):
    model, ours, feed, _ = served["BertForSequenceClassification"]
    tokenizer = bk.AutoTokenizer.from_pretrained(model.config._name_or_path)
    pipe = _pipeline("text-classification", model, tokenizer, tmp_path)
    texts = feed["text"][:4]  # the pipeline does not truncate TEXTS[4]
    theirs = pipe(texts)
    assert _strings(ours["label"][:4]) == [result["label"] for result in theirs]
    scores = [result["score"] for result in theirs]
    np.testing.assert_allclose(ours["score"][:4], scores, atol=1e-4)


# --- Regression, pairs, refusals ---------------------------------------------


def test_regression_takes_text_pairs(tokenizer):
    config = tiny_config(
        "BertForSequenceClassification",
        vocab_size=len(tokenizer),
        num_hidden_layers=1,
        num_labels=1,
    )
    model = perturb_keras(bk.BertForSequenceClassification(config))
    serve, _ = text_function(model, tokenizer, max_length=MAX_LENGTH, text_pair=True)
    inputs = serve.get_concrete_function().structured_input_signature[0]
    assert [spec.name for spec in inputs] == ["text", "text_pair"]
    ours = serve(tf.constant(TEXTS), tf.constant(PAIRS))
    assert sorted(ours) == ["logits", "score"]
    arrays, _ = _hf_encode(tokenizer, "pairs", {"text": TEXTS, "text_pair": PAIRS})
    logits = _keras(model, arrays)["logits"]
    assert max_abs_diff(ours["score"], logits[:, 0]) <= 1e-5


def test_refuses_a_max_length_past_the_positions(tokenizer, tmp_path):
    model = bk.BertModel(tiny_config(vocab_size=len(tokenizer), num_hidden_layers=1))
    with pytest.raises(ConfigError, match="max_length=65"):
        export_saved_model(model, tmp_path, tokenizer=tokenizer, max_length=65)


def test_refuses_a_tokenizer_larger_than_the_vocabulary(tokenizer, tmp_path):
    model = bk.BertModel(tiny_config(num_hidden_layers=1))  # vocab_size 99
    with pytest.raises(ConfigError, match="30522 tokens but the model embeds 99"):
        export_saved_model(model, tmp_path, tokenizer=tokenizer, max_length=16)
