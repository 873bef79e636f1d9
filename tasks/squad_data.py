"""SQuAD JSON -> `datasets`, and question/context windows for the model.

Every problem in the input is counted, never dropped silently: answers whose
`answer_start` does not point at their text, questions with an empty context,
and training answers that no window contains are all reported.
"""

import json
import logging

import datasets
import numpy as np

from .data_files import read_utf8

logger = logging.getLogger(__name__)


class SquadFormatError(ValueError):
    """A SQuAD file is not valid JSON or not in the SQuAD layout."""


def read_squad(path, version_2_with_negative=False, train=False):
    """Reads a SQuAD v1.1 / v2.0 JSON file into a flat `datasets.Dataset`.

    Every question is checked as it is read, so that a file that cannot be
    trained or scored is refused before any training: the layout (each entry
    named by its place, e.g. `data[0].paragraphs[2].qas[1]`), unique ids,
    and in SQuAD 1.1 mode an answer for every question.

    Args:
        path: str, the JSON file.
        version_2_with_negative: bool, whether questions without an answer
            (SQuAD 2.0) are allowed; in SQuAD 1.1 mode they are an error.
        train: bool, whether the file is for training: then at least one
            question must have an answer to learn.

    Returns:
        `(dataset, stats)`: one row per question with `id`, `title`,
        `context`, `question` and `answers` (`{"text": [...],
        "answer_start": [...]}`, empty for unanswerable questions); stats
        count questions, unanswerable ones, misaligned answers (their
        `answer_start` does not match their text; they are kept, as the
        official data keeps them) and questions without context (skipped).

    Raises:
        SquadFormatError: the file is not UTF-8 JSON in the SQuAD layout, has
            a duplicate id, no question, unanswerable questions in SQuAD 1.1
            mode, or (for training) no answer at all.
    """
    text = read_utf8(path, SquadFormatError)
    try:
        payload = json.loads(text)
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
    misaligned, unanswerable, seen = [], [], {}
    for a, article in enumerate(payload["data"]):
        title = _field(article, "title", str, path, f"data[{a}]", optional=True)
        paragraphs = _field(article, "paragraphs", list, path, f"data[{a}]")
        for p, paragraph in enumerate(paragraphs):
            place = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, path, place, optional=True)
            for q, qa in enumerate(_field(paragraph, "qas", list, path, place)):
                where = f"{place}.qas[{q}]"
                stats["questions"] += 1
                qid = _field(qa, "id", (str, int), path, where)
                where += f" (id {qid!r})"
                if str(qid) in seen:
                    raise SquadFormatError(
                        f"{path}: {where} repeats the id of {seen[str(qid)]}. "
                        "Expected a unique id per question: predictions and "
                        "scores are keyed by id. Give each question its own id."
                    )
                seen[str(qid)] = where
                question = _field(qa, "question", str, path, where)
                impossible = qa.get("is_impossible")
                if impossible not in (None, True, False):
                    raise SquadFormatError(
                        f"{path}: {where} has an `is_impossible` that is not "
                        "true or false. Expected a JSON boolean. Received: "
                        f"is_impossible={impossible!r}"
                    )
                answers = _field(qa, "answers", list, path, where, optional=True)
                if not (context or "").strip():
                    stats["questions_without_context"] += 1
                    continue
                if impossible or not answers:
                    answers = []
                    stats["unanswerable"] += 1
                    unanswerable.append(where)
                texts, starts = [], []
                for n, answer in enumerate(answers):
                    at = f"{where} answers[{n}]"
                    text = _field(answer, "text", str, path, at)
                    start = answer.get("answer_start")
                    if not isinstance(start, int) or isinstance(start, bool):
                        raise SquadFormatError(
                            f"{path}: {at} has no integer `answer_start`. "
                            "Expected the character offset of the answer in "
                            f"the context. Received: {_short(answer)}"
                        )
                    if context[start : start + len(text)] != text:
                        stats["misaligned_answers"] += 1
                        misaligned.append(qid)
                    texts.append(text)
                    starts.append(start)
                rows["id"].append(str(qid))
                rows["title"].append(title or "")
                rows["context"].append(context)
                rows["question"].append(question)
                rows["answers"].append({"text": texts, "answer_start": starts})
    stats["rows"] = len(rows["id"])
    _check_questions(path, stats, unanswerable, version_2_with_negative, train)
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
    return datasets.Dataset.from_dict(rows), stats


def _check_questions(path, stats, unanswerable, version_2_with_negative, train):
    """Refuses a file that would train or score nothing, or the wrong task."""
    if not stats["rows"]:
        raise SquadFormatError(
            f"{path} has no questions to "
            + ("train on" if train else "evaluate")
            + f" ({stats['questions']} question(s), "
            f"{stats['questions_without_context']} of them without a context). "
            "Expected the SQuAD layout data -> paragraphs -> {context, qas} "
            "with at least one question. Check that this is the right file."
        )
    if unanswerable and not version_2_with_negative:
        raise SquadFormatError(
            f"{path}: {len(unanswerable)} of {stats['rows']} question(s) have no "
            f"answer (`is_impossible` or no `answers`), first {unanswerable[0]}. "
            "Expected an answer for every question in SQuAD 1.1 mode. If this "
            "is a SQuAD 2.0 file, pass --version-2-with-negative; otherwise "
            "give those questions their answers."
        )
    if train and len(unanswerable) == stats["rows"]:
        raise SquadFormatError(
            f"{path}: none of its {stats['rows']} question(s) has an answer, so "
            "training has no answer span to learn. Expected a training file "
            "with answered questions (SQuAD 2.0 mixes both)."
        )


def _field(parent, name, kind, path, where, optional=False):
    """`parent[name]`, checked to be a `kind`; `optional` ones may be absent/null."""
    if not isinstance(parent, dict):
        raise SquadFormatError(
            f"{path}: {where} is not a JSON object. Expected the SQuAD layout "
            "data -> paragraphs -> qas -> answers, each a list of objects. "
            f"Received: {_short(parent)}"
        )
    value = parent.get(name)
    if (value is None and optional) or (
        isinstance(value, kind) and not isinstance(value, bool)
    ):
        return value
    names = {list: "a list", str: "a string", (str, int): "a string or integer"}
    raise SquadFormatError(
        f"{path}: {where} has "
        + ("no " if value is None else "a wrong ")
        + f"`{name}`. Expected {names[kind]} in the SQuAD layout"
        + (
            " (a list of {text, answer_start} objects, not the flat Hugging "
            "Face layout)"
            if name == "answers"
            else ""
        )
        + f". Received: {name}={_short(value)}"
    )


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


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
