"""SQuAD JSON -> `datasets`, and question/context windows for the model.

Every problem in the input is counted, never dropped silently: answers whose
`answer_start` does not point at their text, questions with an empty context,
and training answers that no window contains are all reported.
"""

import json
import logging

import datasets
import numpy as np

logger = logging.getLogger(__name__)


class SquadFormatError(ValueError):
    """A SQuAD file is not valid JSON or not in the SQuAD layout."""


def read_squad(path):
    """Reads a SQuAD v1.1 / v2.0 JSON file into a flat `datasets.Dataset`.

    Returns:
        `(dataset, stats)`: one row per question with `id`, `title`,
        `context`, `question` and `answers` (`{"text": [...],
        "answer_start": [...]}`, empty for unanswerable questions); stats
        count questions, unanswerable ones, misaligned answers (their
        `answer_start` does not match their text; they are kept, as the
        official data keeps them) and questions without context (skipped).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except json.JSONDecodeError as error:
        raise SquadFormatError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, "
            f"column {error.colno}). Expected a SQuAD file: "
            '{"data": [{"paragraphs": [{"context": ..., "qas": [...]}]}]}'
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise SquadFormatError(
            f"{path} has no top-level `data` list. Expected the SQuAD layout "
            "data -> paragraphs -> qas -> answers. Received: "
            + (
                f"top-level keys {sorted(payload)}"
                if isinstance(payload, dict)
                else f"a JSON {type(payload).__name__}"
            )
        )
    rows = {k: [] for k in ("id", "title", "context", "question", "answers")}
    stats = {
        "file": str(path),
        "questions": 0,
        "unanswerable": 0,
        "misaligned_answers": 0,
        "questions_without_context": 0,
    }
    misaligned = []
    for article in payload["data"]:
        for paragraph in _field(article, "paragraphs", path):
            context = paragraph.get("context") or ""
            for qa in _field(paragraph, "qas", path):
                stats["questions"] += 1
                qid = qa.get("id")
                if qid is None or "question" not in qa:
                    raise SquadFormatError(
                        f"{path}: a question lacks `id` or `question`. Received: "
                        f"keys={sorted(qa)}"
                    )
                if not context.strip():
                    stats["questions_without_context"] += 1
                    continue
                answers = qa.get("answers") or []
                if qa.get("is_impossible"):
                    answers = []
                    stats["unanswerable"] += 1
                elif not answers:
                    stats["unanswerable"] += 1
                texts, starts = [], []
                for answer in answers:
                    text, start = answer.get("text", ""), answer.get("answer_start")
                    if not isinstance(start, int):
                        raise SquadFormatError(
                            f"{path}: question {qid} has an answer without an "
                            f"integer `answer_start`. Received: {answer!r}"
                        )
                    if context[start : start + len(text)] != text:
                        stats["misaligned_answers"] += 1
                        misaligned.append(qid)
                    texts.append(text)
                    starts.append(start)
                rows["id"].append(str(qid))
                rows["title"].append(article.get("title", ""))
                rows["context"].append(context)
                rows["question"].append(qa["question"])
                rows["answers"].append({"text": texts, "answer_start": starts})
    if stats["misaligned_answers"]:
        logger.warning(
            "%s: %d answer(s) whose answer_start does not match their text "
            "(questions %s%s); kept for evaluation, not usable as training spans",
            path,
            stats["misaligned_answers"],
            misaligned[:5],
            "..." if len(misaligned) > 5 else "",
        )
    if stats["questions_without_context"]:
        logger.warning(
            "%s: skipped %d question(s) with an empty context",
            path,
            stats["questions_without_context"],
        )
    stats["rows"] = len(rows["id"])
    return datasets.Dataset.from_dict(rows), stats


def _field(parent, name, path):
    value = parent.get(name)
    if not isinstance(value, list):
        raise SquadFormatError(
            f"{path}: expected a `{name}` list in the SQuAD layout. Received: "
            f"keys={sorted(parent) if isinstance(parent, dict) else parent!r}"
        )
    return value


def _windows(tokenizer, examples, max_seq_length, doc_stride):
    # Questions are stripped of leading spaces, as some SQuAD questions have
    # long runs of them that would eat the window.
    return tokenizer(
        [q.lstrip() for q in examples["question"]],
        examples["context"],
        truncation="only_second",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def train_features(
    tokenizer, examples, indices=None, max_seq_length=384, doc_stride=128
):
    """Windows with `start_positions`/`end_positions` (0 = [CLS], no answer).

    A window that does not contain the whole first answer, and every window of
    an unanswerable question, points at [CLS]. `located` marks, per window,
    whether the answer was found in it (unanswerable questions count as
    located; an answer whose `answer_start` does not match its text is never
    located). `indices` are the examples' dataset indices (`datasets.map(...,
    with_indices=True)`), stored per window as `example_index`.
    """
    encoded = _windows(tokenizer, examples, max_seq_length, doc_stride)
    starts, ends, located, example_index = [], [], [], []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        sample = encoded["overflow_to_sample_mapping"][i]
        answers = examples["answers"][sample]
        sequence_ids = encoded.sequence_ids(i)
        example_index.append(indices[sample] if indices is not None else sample)
        if not answers["text"]:
            starts.append(0)
            ends.append(0)
            located.append(True)
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        context = examples["context"][sample]
        if context[start_char:end_char] != answers["text"][0]:
            starts.append(0)
            ends.append(0)
            located.append(False)
            continue
        context_tokens = [j for j, s in enumerate(sequence_ids) if s == 1]
        first, last = context_tokens[0], context_tokens[-1]
        if offsets[first][0] > start_char or offsets[last][1] < end_char:
            starts.append(0)
            ends.append(0)
            located.append(False)
            continue
        start = first
        while start <= last and offsets[start][0] <= start_char:
            start += 1
        end = last
        while end >= first and offsets[end][1] >= end_char:
            end -= 1
        starts.append(start - 1)
        ends.append(end + 1)
        located.append(True)
    encoded.pop("offset_mapping")
    encoded["start_positions"] = starts
    encoded["end_positions"] = ends
    encoded["located"] = located
    encoded["example_index"] = example_index
    return encoded


def eval_features(tokenizer, examples, max_seq_length=384, doc_stride=128):
    """Windows with `example_id` and offsets (None outside the context)."""
    encoded = _windows(tokenizer, examples, max_seq_length, doc_stride)
    example_ids = []
    for i in range(len(encoded["input_ids"])):
        sequence_ids = encoded.sequence_ids(i)
        example_ids.append(examples["id"][encoded["overflow_to_sample_mapping"][i]])
        encoded["offset_mapping"][i] = [
            offset if sequence_ids[k] == 1 else None
            for k, offset in enumerate(encoded["offset_mapping"][i])
        ]
    encoded["example_id"] = example_ids
    return encoded


def count_unlocated(features, num_examples):
    """Training answers that no window contains, by example."""
    located = np.zeros(num_examples, bool)
    for index, found in zip(features["example_index"], features["located"]):
        located[index] |= found
    return int((~located).sum())


def truncate_questions(dataset, tokenizer, max_query_length=64):
    """Cuts questions longer than `max_query_length` tokens, as BERT's own
    SQuAD recipe does, so every window keeps room for its context.

    Returns:
        `(dataset, number of questions cut)`.
    """
    cut = []

    def shorten(batch, indices):
        questions = []
        for index, question in zip(indices, batch["question"]):
            encoded = tokenizer(
                question, add_special_tokens=False, return_offsets_mapping=True
            )
            offsets = encoded["offset_mapping"]
            if len(offsets) > max_query_length:
                cut.append(index)
                question = question[: offsets[max_query_length - 1][1]]
            questions.append(question)
        return {"question": questions}

    dataset = dataset.map(
        shorten, batched=True, with_indices=True, desc="Question lengths"
    )
    return dataset, len(cut)
