"""From window logits to one answer per question, as the SQuAD scripts expect."""

import collections

import numpy as np


def postprocess(
    examples,
    features,
    start_logits,
    end_logits,
    *,
    n_best_size=20,
    max_answer_length=30,
    version_2_with_negative=False,
    null_score_diff_threshold=0.0,
):
    """Picks each example's answer from all of its windows.

    For each window, the `n_best_size` highest start and end logits are
    paired; a span is valid when both ends lie in the context, end >= start,
    and it is at most `max_answer_length` tokens. The best-scoring valid span
    (start + end logit) over all windows wins; its text is cut from the
    original context with the offsets. With `version_2_with_negative`, the
    answer is "" when the best [CLS] (null) score beats the best span score by
    more than `null_score_diff_threshold`.

    Args:
        examples: dataset with `id` and `context`.
        features: dataset of windows with `example_id` and `offset_mapping`
            (None outside the context).
        start_logits, end_logits: arrays (num_windows, seq) (padded).

    Returns:
        `(predictions, nbest, null_odds)`: `{id: text}`, `{id: [{"text",
        "probability", "start_logit", "end_logit"}, ...]}` and `{id: null
        score minus best span score}` (v2; -inf where no window has a null
        score, i.e. never for BERT).
    """
    windows = collections.defaultdict(list)
    for index, example_id in enumerate(features["example_id"]):
        windows[example_id].append(index)
    offsets_all = features["offset_mapping"]

    predictions, nbest, null_odds = {}, {}, {}
    for example_id, context in zip(examples["id"], examples["context"]):
        candidates = []
        best_null = None
        for index in windows.get(example_id, []):
            starts, ends = start_logits[index], end_logits[index]
            offsets = offsets_all[index]
            length = len(offsets)
            null_score = float(starts[0] + ends[0])
            if best_null is None or null_score < best_null:
                # The smallest null score over windows, as transformers does.
                best_null = null_score
            top_starts = np.argsort(starts[:length])[::-1][:n_best_size]
            top_ends = np.argsort(ends[:length])[::-1][:n_best_size]
            for start in top_starts:
                if offsets[start] is None:
                    continue
                for end in top_ends:
                    if (
                        offsets[end] is None
                        or end < start
                        or end - start + 1 > max_answer_length
                    ):
                        continue
                    candidates.append(
                        (
                            float(starts[start] + ends[end]),
                            offsets[start][0],
                            offsets[end][1],
                            float(starts[start]),
                            float(ends[end]),
                        )
                    )
        candidates.sort(key=lambda c: c[0], reverse=True)
        candidates = candidates[:n_best_size]
        entries = [
            {
                "text": context[first:last],
                "score": score,
                "start_logit": start_logit,
                "end_logit": end_logit,
            }
            for score, first, last, start_logit, end_logit in candidates
        ]
        if version_2_with_negative and best_null is not None:
            entries.append(
                {"text": "", "score": best_null, "start_logit": None, "end_logit": None}
            )
            entries.sort(key=lambda e: e["score"], reverse=True)
        if not entries:
            entries = [
                {"text": "", "score": 0.0, "start_logit": None, "end_logit": None}
            ]
        scores = np.array([e["score"] for e in entries])
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        for entry, probability in zip(entries, probabilities):
            entry["probability"] = float(probability)
        nbest[example_id] = entries
        spans = [e for e in entries if e["start_logit"] is not None]
        best_span = spans[0] if spans else None
        if not version_2_with_negative:
            predictions[example_id] = best_span["text"] if best_span else ""
            continue
        diff = best_null - best_span["score"] if best_span is not None else float("inf")
        null_odds[example_id] = diff
        predictions[example_id] = (
            "" if diff > null_score_diff_threshold else best_span["text"]
        )
    return predictions, nbest, null_odds
