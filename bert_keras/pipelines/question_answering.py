"""`question-answering`: extractive answers, with windows over long contexts.

transformers v5 dropped this pipeline; this one follows the v4 behaviour:
contexts longer than `max_seq_len` are cut into windows overlapping by
`doc_stride` tokens, each window's span scores are start * end probabilities
over its context tokens, and answers from all windows are ranked together.
"""

import numpy as np

from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.pipelines.base import Pipeline
from bert_keras.pipelines.base import softmax
from bert_keras.pipelines.base import split_features

# Logit given to tokens that cannot answer (question, special, padding).
MASKED_LOGIT = -10000.0


class QuestionAnsweringPipeline(Pipeline):
    """Finds the answer to a question as a span of its context.

    Call options: `top_k` (int, default 1), `max_answer_len` (tokens,
    default 15), `handle_impossible_answer` (bool: also rank the empty answer,
    scored by its `[CLS]` probability, default False), `max_seq_len` (tokens
    per window, default min(384, the tokenizer's maximum)), `doc_stride`
    (tokens shared by consecutive windows, default min(max_seq_len // 2,
    128)) and `align_to_words` (widen answers to whole words, default True).

    Returns `{"score", "start", "end", "answer"}` where
    `context[start:end] == answer`; a list of them when `top_k > 1`, one entry
    per question when several are given.

    Example:

    >>> from bert_keras.pipelines import pipeline
    >>> qa = pipeline("question-answering", model=path)  # untrained head
    >>> context = "I am Wolfgang and I live in Berlin"
    >>> answer = qa(question="Where do I live?", context=context)
    >>> sorted(answer), context[answer["start"] : answer["end"]] == answer["answer"]
    (['answer', 'end', 'score', 'start'], True)
    """

    task = "question-answering"
    model_classes = ("BertForQuestionAnswering",)
    call_options = (
        "top_k",
        "max_answer_len",
        "handle_impossible_answer",
        "max_seq_len",
        "doc_stride",
        "align_to_words",
    )

    def __call__(self, question=None, context=None, **options):
        options = self.options(options)
        questions, contexts, single = _pairs(question, context)
        max_seq_len = options.get("max_seq_len") or min(
            self.tokenizer.model_max_length, 384
        )
        doc_stride = options.get("doc_stride")
        doc_stride = min(max_seq_len // 2, 128) if doc_stride is None else doc_stride
        if doc_stride >= max_seq_len:
            raise ConfigError(
                "`doc_stride` (tokens shared by two windows) must be smaller than "
                f"`max_seq_len`. Received: doc_stride={doc_stride}, "
                f"max_seq_len={max_seq_len}"
            )
        encoding = self.tokenizer(
            questions,
            contexts,
            truncation="only_second",
            max_length=max_seq_len,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        rows = self.forward(
            split_features(encoding),
            {"start_logits": ("start_logits",), "end_logits": ("end_logits",)},
        )
        windows = [[] for _ in questions]
        for window, example in enumerate(encoding["overflow_to_sample_mapping"]):
            windows[example].append(window)
        results = [
            self._answers(encoding, rows, spans, contexts[example], options)
            for example, spans in enumerate(windows)
        ]
        # As transformers v4: a list of one question gives its answer unwrapped.
        return results[0] if single or len(results) == 1 else results

    def _answers(self, encoding, rows, windows, context, options):
        top_k = options.get("top_k", 1)
        # Word alignment merges candidates, so each window offers spares.
        candidates = 2 * top_k + 10 if options.get("align_to_words", True) else top_k
        null_score = 1e6  # lowest [CLS] score over windows, when asked for
        answers = {}  # lower-cased text: answer; one text's spans add up
        for window in windows:
            spans, null = self._window_spans(
                encoding, rows, window, candidates, options
            )
            null_score = min(null_score, null)
            for start, end, score in spans:
                begin, finish = self._characters(encoding, window, start, end, options)
                text = context[begin:finish]
                if text.lower() in answers:
                    answers[text.lower()]["score"] += score
                    continue
                answers[text.lower()] = {
                    "score": score,
                    "start": begin,
                    "end": finish,
                    "answer": text,
                }
        answers = list(answers.values())
        if options.get("handle_impossible_answer", False):
            answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        answers.sort(key=lambda answer: answer["score"], reverse=True)
        answers = answers[:top_k]
        return answers[0] if len(answers) == 1 else answers

    def _window_spans(self, encoding, rows, window, candidates, options):
        """`([(start, end, score)], null_score)`: one window's best spans."""
        length = len(encoding["input_ids"][window])
        ids = np.asarray(encoding["input_ids"][window])
        # Only context tokens may answer; [CLS] stays for the null answer.
        allowed = np.array(
            [sequence == 1 for sequence in encoding.sequence_ids(window)]
        )
        allowed |= ids == self.tokenizer.cls_token_id
        logits = rows[window]
        start = softmax(
            np.where(allowed, logits["start_logits"][:length], MASKED_LOGIT)
        )
        end = softmax(np.where(allowed, logits["end_logits"][:length], MASKED_LOGIT))
        null_score = 1e6
        if options.get("handle_impossible_answer", False):
            null_score = float(start[0] * end[0])
        start[0] = end[0] = 0.0
        max_answer_len = options.get("max_answer_len", 15)
        # (seq, seq): span score, zero unless start <= end < start + max_answer_len.
        scores = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
        order = np.argsort(-scores, axis=None, kind="stable")[:candidates]
        spans = []
        for first, last in zip(*np.unravel_index(order, scores.shape), strict=True):
            # Zero-score spans (reversed or too long) are no answers.
            if allowed[first] and allowed[last] and scores[first, last] > 0:
                spans.append((int(first), int(last), float(scores[first, last])))
        return spans, null_score

    def _characters(self, encoding, window, start, end, options):
        """Character span of tokens `start..end`, widened to words if asked."""
        if options.get("align_to_words", True):
            start_word = encoding.token_to_word(window, int(start))
            end_word = encoding.token_to_word(window, int(end))
            if start_word is not None and end_word is not None:
                return (
                    encoding.word_to_chars(window, start_word, sequence_index=1)[0],
                    encoding.word_to_chars(window, end_word, sequence_index=1)[1],
                )
        offsets = encoding["offset_mapping"][window]
        return offsets[start][0], offsets[end][1]


def _pairs(question, context):
    """`(questions, contexts, single)`: one context may serve many questions."""
    if question is None or context is None:
        raise InputError(
            "question-answering needs both `question=` and `context=` "
            f"(strings or lists of strings). Received: question={question!r}, "
            f"context={str(context)[:80]!r}"
        )
    single = isinstance(question, str) and isinstance(context, str)
    questions = [question] if isinstance(question, str) else list(question)
    contexts = [context] if isinstance(context, str) else list(context)
    if len(contexts) == 1 and len(questions) > 1:
        contexts = contexts * len(questions)
    if len(questions) != len(contexts) or not questions:
        raise InputError(
            "Give one context per question (or one context for all). "
            f"Received: {len(questions)} questions and {len(contexts)} contexts"
        )
    return questions, contexts, single
