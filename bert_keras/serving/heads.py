"""What the raw-text signature returns for each task, computed in the graph.

A head names the strings a task's `serving_default` takes and turns the
model's raw outputs (HF names) plus the in-graph tokenizer's encoding into
what a client wants: label strings, answer spans, top-k tokens, a sentence
embedding. Only TensorFlow ops are used, so the SavedModel needs neither
bert_keras nor transformers to run.

Offsets are characters (Unicode code points) of the input strings, as
Python's `str` indexing and HF's `offset_mapping` count them.
"""

import dataclasses

import tensorflow as tf

# Below any logit: positions a softmax must ignore (HF's pipelines use -10000).
_MASKED_LOGIT = -10000.0


@dataclasses.dataclass(frozen=True)
class HeadOptions:
    """Constants a head bakes into the graph.

    Args:
        label_names: tuple of str, `id2label` in id order.
        tokens: tuple of str, the vocabulary in id order.
        mask_token_id: int, the `[MASK]` id.
        continuing_subword_prefix: str, WordPiece's `##`.
        problem_type: str, `BertForSequenceClassification.problem_type`.
        top_k: int, tokens returned per `[MASK]`.
        max_answer_length: int, longest answer span in tokens.
    """

    label_names: tuple
    tokens: tuple
    mask_token_id: int
    continuing_subword_prefix: str = "##"
    problem_type: str = "single_label_classification"
    top_k: int = 5
    max_answer_length: int = 15


@dataclasses.dataclass(frozen=True)
class Head:
    """The string inputs of a task's `serving_default` and its post-processing.

    Args:
        inputs: tuple of `(name, rank)`: string tensors of shape (batch,) or,
            rank 2, (batch, choices).
        postprocess: `fn(outputs, encoded, texts, options)` returning the
            signature's outputs; `outputs` are the model's (float32),
            `encoded` the tokenizer's, `texts` the input strings in order.
    """

    inputs: tuple
    postprocess: object


def _labels(label_ids, names):
    return tf.gather(tf.constant(names), label_ids)


def _argmax(values):
    return tf.argmax(values, axis=-1, output_type=tf.int32)


def sequence_classification(outputs, encoded, texts, options):
    """`label`, `label_id`, `score`, `probabilities`; `score` alone for regression.

    Probabilities are a softmax, or for multi-label problems one sigmoid per
    label (`label` is then the most probable one). Regression's `score` is
    the raw output, as transformers' loss treats it.
    """
    logits = outputs["logits"]  # (batch, num_labels)
    if options.problem_type == "regression":
        return {"logits": logits, "score": logits[:, 0]}
    if options.problem_type == "multi_label_classification":
        probabilities = tf.sigmoid(logits)
    else:
        probabilities = tf.nn.softmax(logits, axis=-1)
    label_id = _argmax(probabilities)
    return {
        "logits": logits,
        "probabilities": probabilities,
        "label_id": label_id,
        "label": _labels(label_id, options.label_names),
        "score": tf.reduce_max(probabilities, axis=-1),
    }


def _text_tokens(encoded):
    """1 where a token comes from the text (not [CLS], [SEP] or padding)."""
    mask = encoded["attention_mask"]
    length = tf.reduce_sum(mask, axis=1, keepdims=True)
    positions = tf.range(tf.shape(mask)[1])[None, :]
    # Every [SEP] closes a segment: the last real token, and in a pair the
    # one before the first type-1 token.
    type_ids = encoded["token_type_ids"]
    next_type = tf.concat([type_ids[:, 1:], tf.zeros_like(type_ids[:, :1])], 1)
    closes_first = tf.logical_and(type_ids == 0, next_type == 1)
    special = (positions == 0) | (positions >= length - 1) | closes_first
    return tf.cast(tf.logical_not(special), tf.int32) * mask


def token_classification(outputs, encoded, texts, options):
    """Per token: `labels`, `label_ids`, `scores`, `tokens`, character offsets.

    `token_mask` is 1 on the tokens of the text (0 on [CLS], [SEP] and
    padding, whose offsets are 0). No grouping into words or entities: this
    is transformers' token-classification pipeline with
    `aggregation_strategy="none"`, for every token.
    """
    logits = outputs["logits"]  # (batch, seq, num_labels)
    probabilities = tf.nn.softmax(logits, axis=-1)
    label_ids = _argmax(probabilities)
    token_mask = _text_tokens(encoded)
    return {
        "logits": logits,
        "label_ids": label_ids,
        "labels": _labels(label_ids, options.label_names),
        "scores": tf.reduce_max(probabilities, axis=-1),
        "tokens": _labels(encoded["input_ids"], options.tokens),
        "start_offsets": encoded["offset_mapping"][:, :, 0] * token_mask,
        "end_offsets": encoded["offset_mapping"][:, :, 1] * token_mask,
        "token_mask": token_mask,
    }


def _word_bounds(encoded, options, token_index):
    """Character span of the whole word holding `token_index` (batch,), per row.

    WordPiece marks a word's later pieces with `##`, and a word's first
    piece never has it (`#` is punctuation, a word of its own), so a word is
    a piece without the prefix and the `##` pieces after it.
    """
    pieces = tf.gather(tf.constant(options.tokens), encoded["input_ids"])
    starts_word = tf.logical_not(
        tf.strings.regex_full_match(
            pieces, _quote(options.continuing_subword_prefix) + ".+"
        )
    )
    word_ids = tf.cumsum(tf.cast(starts_word, tf.int32), axis=1)
    word = tf.gather(word_ids, token_index, batch_dims=1)
    in_word = word_ids == word[:, None]
    big = tf.int32.max
    offsets = encoded["offset_mapping"]  # (batch, seq, 2)
    start = tf.reduce_min(tf.where(in_word, offsets[:, :, 0], big), axis=1)
    end = tf.reduce_max(tf.where(in_word, offsets[:, :, 1], 0), axis=1)
    return start, end


def _quote(text):
    return "".join("\\" + char if not char.isalnum() else char for char in text)


def question_answering(outputs, encoded, texts, options):
    """The best answer span in the context: `answer`, `start`, `end`, `score`.

    As transformers' question-answering pipeline (`top_k=1`,
    `align_to_words=True`, no impossible answers) on one window: start and
    end probabilities are softmaxes over the context tokens and [CLS], the
    score of a span is their product, spans run `start <= end` with at most
    `max_answer_length` tokens inside the context, and the answer grows to
    whole words. `start` and `end` are character offsets into the context.
    A context past the tokenizer's `max_length` is cut (the answer can only
    come from the part kept); a context with no token left gives `""` and
    score 0.
    """
    mask = encoded["attention_mask"]
    length = tf.reduce_sum(mask, axis=1, keepdims=True)
    positions = tf.range(tf.shape(mask)[1])[None, :]
    # Context tokens: segment 1 before its closing [SEP].
    context = (encoded["token_type_ids"] == 1) & (positions < length - 1)
    allowed = context | (positions == 0)  # [CLS] joins the normalisation only
    p_start = tf.nn.softmax(tf.where(allowed, outputs["start_logits"], _MASKED_LOGIT))
    p_end = tf.nn.softmax(tf.where(allowed, outputs["end_logits"], _MASKED_LOGIT))
    p_start = tf.where(context, p_start, 0.0)
    p_end = tf.where(context, p_end, 0.0)
    # (batch, seq, seq): start index by end index, inside the band.
    spans = p_start[:, :, None] * p_end[:, None, :]
    spans = tf.linalg.band_part(spans, 0, options.max_answer_length - 1)
    seq = tf.shape(spans)[1]
    best = _argmax(tf.reshape(spans, [tf.shape(spans)[0], -1]))
    start_token, end_token = best // seq, best % seq
    score = tf.gather(tf.reshape(spans, [tf.shape(spans)[0], -1]), best, batch_dims=1)
    found = tf.reduce_any(context, axis=1)
    start, _ = _word_bounds(encoded, options, start_token)
    _, end = _word_bounds(encoded, options, end_token)
    start = tf.where(found, start, 0)
    end = tf.where(found, end, 0)
    return {
        "start_logits": outputs["start_logits"],
        "end_logits": outputs["end_logits"],
        "answer": tf.strings.substr(texts[1], start, end - start, unit="UTF8_CHAR"),
        "start": start,
        "end": end,
        "score": tf.where(found, score, 0.0),
    }


def _fill_mask(logits, encoded, options):
    """Top-k tokens at each [MASK], rows padded to the batch's most masks.

    `mask_positions` (batch, masks) is -1 on padding slots, whose
    `top_token_ids` are 0, `top_tokens` "" and `top_scores` 0.
    """
    is_mask = tf.equal(encoded["input_ids"], options.mask_token_id)
    # (masks_in_batch, 2): row and position of every [MASK].
    where = tf.cast(tf.where(is_mask), tf.int32)
    counts = tf.reduce_sum(tf.cast(is_mask, tf.int32), axis=1)
    probabilities = tf.nn.softmax(tf.gather_nd(logits, where), axis=-1)
    scores, token_ids = tf.math.top_k(probabilities, k=options.top_k)

    def per_row(values, padding):
        ragged = tf.RaggedTensor.from_row_lengths(values, counts)
        return ragged.to_tensor(default_value=padding)

    return {
        "mask_positions": per_row(where[:, 1], -1),
        "top_token_ids": per_row(token_ids, 0),
        "top_tokens": per_row(tf.gather(tf.constant(options.tokens), token_ids), ""),
        "top_scores": per_row(scores, 0.0),
    }


def masked_lm(outputs, encoded, texts, options):
    """`top_k` tokens and softmax scores at each [MASK], as fill-mask gives."""
    return _fill_mask(outputs["logits"], encoded, options)


def _is_next(logits):
    return tf.nn.softmax(logits, axis=-1)[:, 0]  # index 0: B follows A


def pretraining(outputs, encoded, texts, options):
    """Fill-mask outputs, plus `is_next`: the probability that B follows A."""
    logits = outputs["seq_relationship_logits"]
    return {
        **_fill_mask(outputs["prediction_logits"], encoded, options),
        "seq_relationship_logits": logits,
        "is_next": _is_next(logits),
    }


def next_sentence(outputs, encoded, texts, options):
    """`is_next`: the probability that `text_pair` follows `text`."""
    return {"logits": outputs["logits"], "is_next": _is_next(outputs["logits"])}


def base_model(outputs, encoded, texts, options):
    """The encoder's outputs and `sentence_embedding`, the masked token mean.

    The mean over real tokens ([CLS] and [SEP] included) is
    sentence-transformers' mean pooling, what all-MiniLM-L6-v2 is used with
    (it also L2-normalises; divide by the norm for cosine similarity).
    """
    states = outputs["last_hidden_state"]  # (batch, seq, hidden)
    mask = tf.cast(encoded["attention_mask"], states.dtype)[:, :, None]
    count = tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
    embedding = tf.reduce_sum(states * mask, axis=1) / count
    return {
        **outputs,
        "sentence_embedding": embedding,
        "attention_mask": encoded["attention_mask"],
    }


def multiple_choice(outputs, encoded, texts, options):
    """`label_id`: the index of the best choice, with its `score`."""
    logits = outputs["logits"]  # (batch, choices)
    probabilities = tf.nn.softmax(logits, axis=-1)
    return {
        "logits": logits,
        "probabilities": probabilities,
        "label_id": _argmax(probabilities),
        "score": tf.reduce_max(probabilities, axis=-1),
    }


SINGLE = (("text", 1),)
PAIR = (("text", 1), ("text_pair", 1))
QUESTION_CONTEXT = (("question", 1), ("context", 1))
TEXT_CHOICES = (("text", 1), ("choices", 2))

# hf_architecture -> the head of its raw-text signature.
HEADS = {
    "BertModel": Head(SINGLE, base_model),
    "BertForPreTraining": Head(SINGLE, pretraining),
    "BertForMaskedLM": Head(SINGLE, masked_lm),
    "BertForNextSentencePrediction": Head(PAIR, next_sentence),
    "BertForSequenceClassification": Head(SINGLE, sequence_classification),
    "BertForTokenClassification": Head(SINGLE, token_classification),
    "BertForQuestionAnswering": Head(
        (("question", 1), ("context", 1)), question_answering
    ),
    "BertForMultipleChoice": Head((("text", 1), ("choices", 2)), multiple_choice),
}
