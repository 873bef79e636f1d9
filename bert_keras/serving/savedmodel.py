"""SavedModel export: a `serving_default` over raw strings, `serve_ids` over ids.

The SavedModel holds the model's weights, the in-graph tokenizer and each
task's post-processing (`bert_keras.serving.heads`) as TensorFlow graphs:
it loads with `tf.saved_model.load` (after `import tensorflow_text`, which
registers the tokenizer's ops) where bert_keras and transformers are not
installed, and serves with TF Serving.
"""

import os

import keras
import tensorflow as tf

from bert_keras.errors import ConfigError
from bert_keras.serving import heads

# The id signature's inputs, in its argument order.
ID_NAMES = ("input_ids", "token_type_ids", "attention_mask")
TEXT_SIGNATURE = "serving_default"
IDS_SIGNATURE = "serve_ids"


def _float32(value):
    if isinstance(value, (list, tuple)):  # hidden_states, attentions
        value = tf.stack(value)
    return tf.cast(value, tf.float32) if value.dtype.is_floating else value


def model_outputs(model, inputs):
    """The model's outputs in inference mode, float32, keyed by HF names.

    Tuples (`hidden_states`, `attentions`) are stacked into one tensor, a
    signature's outputs being tensors: (layers, batch, ...).
    """
    outputs = model(dict(inputs), training=False)
    return {name: _float32(value) for name, value in outputs.items()}


def id_input_signature(model, max_length=128):
    """The int32 id inputs of `serve_ids`, TFLite and ONNX.

    Args:
        model: a bert_keras model.
        max_length: int, the sequence length every input is padded to, or
            None for any length (the SavedModel; ONNX).

    Returns:
        list of `tf.TensorSpec`, named `ID_NAMES`, shaped (batch, max_length)
        ((batch, choices, max_length) for `BertForMultipleChoice`), batch
        dynamic.

    Raises:
        ConfigError: `max_length` is not an int in [1, max_position_embeddings].

    Example:

    >>> [spec.shape.as_list() for spec in id_input_signature(model, 64)]
    [[None, 64], [None, 64], [None, 64]]
    """
    limit = model.config.max_position_embeddings
    if max_length is not None and (
        isinstance(max_length, bool)
        or not isinstance(max_length, int)
        or not 1 <= max_length <= limit
    ):
        raise ConfigError(
            "`max_length` must be an int from 1 to the model's "
            f"max_position_embeddings ({limit}), or None for any length. "
            f"Received: max_length={max_length!r}"
        )
    shape = (None,) * (model.input_rank - 1) + (max_length,)
    return [tf.TensorSpec(shape, tf.int32, name=name) for name in ID_NAMES]


def ids_function(model, max_length=None):
    """The model as a `tf.function` over token ids: the `serve_ids` signature.

    Args:
        model: a bert_keras model.
        max_length: int or None, as in `id_input_signature`: None (the
            SavedModel) takes any sequence length; TFLite and ONNX fix it.

    Returns:
        `tf.function(input_ids, token_type_ids, attention_mask)` traced for
        `id_input_signature(model, max_length)`, returning the model's
        outputs by HF name (float32). Its concrete function is what the
        TFLite and ONNX converters take.

    Example:

    >>> serve = ids_function(model)
    >>> sorted(serve.get_concrete_function().structured_outputs)
    ['last_hidden_state', 'pooler_output']
    """
    signature = id_input_signature(model, max_length)

    def serve_ids(input_ids, token_type_ids, attention_mask):
        inputs = dict(zip(ID_NAMES, (input_ids, token_type_ids, attention_mask)))
        return model_outputs(model, inputs)

    function = tf.function(serve_ids, input_signature=signature, autograph=False)
    function.get_concrete_function()
    return function


def in_graph_tokenizer(tokenizer, max_length):
    """The transformers `tokenizer` as TF ops (`InGraphBertTokenizer`)."""
    from bert_keras.serving.tokenizer import InGraphBertTokenizer

    return InGraphBertTokenizer(tokenizer, max_length=max_length)


def head_options(model, tokenizer, encoder, top_k=5, max_answer_length=15):
    """The constants the post-processing needs, read from model and tokenizers."""
    config = model.config
    vocabulary = encoder.vocabulary
    labels = config.id2label or {}
    label_names = tuple(
        str(labels.get(i, f"LABEL_{i}")) for i in range(config.num_labels)
    )
    if len(vocabulary) > config.vocab_size:
        raise ConfigError(
            f"The tokenizer has {len(vocabulary)} tokens but the model embeds "
            f"{config.vocab_size} (vocab_size): some ids would have no "
            "embedding. Export the model with its own tokenizer. Received: "
            f"{type(tokenizer).__name__} of {tokenizer.name_or_path!r}"
        )
    if top_k < 1 or top_k > len(vocabulary):
        raise ConfigError(
            f"`top_k` must be between 1 and the vocabulary size "
            f"({len(vocabulary)}). Received: top_k={top_k}"
        )
    if max_answer_length < 1:
        raise ConfigError(
            "`max_answer_length` must be at least 1 token. "
            f"Received: max_answer_length={max_answer_length}"
        )
    prefix = tokenizer.backend_tokenizer.model.continuing_subword_prefix
    return heads.HeadOptions(
        label_names=label_names,
        tokens=tuple(vocabulary),
        # -1: no [MASK] to fill when the tokenizer has none.
        mask_token_id=-1
        if tokenizer.mask_token_id is None
        else tokenizer.mask_token_id,
        continuing_subword_prefix=prefix or "##",
        problem_type=getattr(model, "problem_type", "single_label_classification"),
        top_k=top_k,
        max_answer_length=max_answer_length,
    )


def text_function(
    model, tokenizer, max_length=128, text_pair=False, top_k=5, max_answer_length=15
):
    """The model from raw strings: tokenizer, model and post-processing.

    Args:
        model: a bert_keras model.
        tokenizer: the model's transformers tokenizer (BERT WordPiece).
        max_length: int, tokens per sequence (longer text is truncated
            `longest_first`; shorter is padded).
        text_pair: bool; single-text tasks take `text` and `text_pair`.
        top_k: int, tokens returned per `[MASK]` (masked LM).
        max_answer_length: int, longest answer in tokens (question answering).

    Returns:
        `(tf.function, in-graph tokenizer)`; the function takes the task's
        string inputs (see `bert_keras.serving.heads.HEADS`) and returns its
        outputs.

    Example:

    >>> encoder = BertModel(BertConfig(
    ...     vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
    ...     num_attention_heads=4, intermediate_size=37))
    >>> serve, _ = text_function(encoder, tokenizer, max_length=16, text_pair=True)
    >>> [spec.name for spec in serve.input_signature]
    ['text', 'text_pair']
    """
    head = heads.HEADS[model.hf_architecture]
    inputs = head.inputs
    if text_pair and inputs == heads.SINGLE:
        inputs = heads.PAIR
    encoder = in_graph_tokenizer(tokenizer, max_length)
    options = head_options(model, tokenizer, encoder, top_k, max_answer_length)
    signature = [
        tf.TensorSpec((None,) * rank, tf.string, name=name) for name, rank in inputs
    ]

    def serve_text(*texts):
        encoded = _encode(encoder, texts, model.input_rank)
        ids = {name: encoded[name] for name in ID_NAMES}
        outputs = model_outputs(model, ids)
        return head.postprocess(outputs, encoded, texts, options)

    function = tf.function(serve_text, input_signature=signature, autograph=False)
    return function, encoder


def _encode(encoder, texts, input_rank):
    if input_rank == 2:
        return encoder(*texts, return_offsets=True)
    # Multiple choice: (batch,) texts and (batch, choices) choices, encoded as
    # batch * choices pairs and folded back to (batch, choices, seq).
    text, choices = texts
    shape = tf.shape(choices)
    flat = encoder(tf.repeat(text, shape[1]), tf.reshape(choices, [-1]))
    return {
        name: tf.reshape(value, tf.concat([shape, tf.shape(value)[1:]], 0))
        for name, value in flat.items()
    }


def export_saved_model(
    model,
    path,
    tokenizer=None,
    max_length=128,
    text_pair=False,
    top_k=5,
    max_answer_length=15,
):
    """Writes a SavedModel that serves `model` from raw strings and from ids.

    Signatures:

    - `serving_default` (with a tokenizer): the task's strings in, its
      answers out (see `bert_keras.serving.heads`): sequence classification
      `label`, `label_id`, `score`, `probabilities` (regression: `score`);
      token classification per-token `labels` and character offsets;
      question answering (`question`, `context`) `answer`, `start`, `end`,
      `score`; masked LM the `top_k` tokens at each `[MASK]`; `BertModel`
      `last_hidden_state`, `pooler_output` and `sentence_embedding`; next
      sentence `is_next`; multiple choice (`text`, `choices`) `label_id`.
      Raw outputs (`logits`, ...) come too, but not vocabulary-sized ones.
    - `serve_ids`: int32 `input_ids`, `token_type_ids`, `attention_mask`
      (batch, seq) of any size up to `max_position_embeddings`, returning
      the model's outputs by HF name. Without a tokenizer it is also
      `serving_default`.

    The SavedModel runs without bert_keras or transformers: TensorFlow, and
    `import tensorflow_text` before loading when it has a tokenizer.

    Args:
        model: a bert_keras model (any task class).
        path: str or path of the SavedModel directory to write.
        tokenizer: the model's transformers tokenizer (BERT WordPiece), or
            None for the id signature alone.
        max_length: int, tokens per sequence of the string signature; text
            past it is truncated (`longest_first`, as transformers'
            `truncation=True`).
        text_pair: bool; single-text tasks (classification, token
            classification, masked LM, `BertModel`) take `text` and
            `text_pair` (e.g. MRPC, STS-B).
        top_k: int, tokens returned per `[MASK]`.
        max_answer_length: int, longest answer span in tokens.

    Returns:
        str, the path written.

    Example:

    >>> classifier = BertForSequenceClassification(BertConfig(
    ...     vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
    ...     num_attention_heads=4, intermediate_size=37,
    ...     id2label={0: "negative", 1: "positive"}))
    >>> export_saved_model(classifier, "exported/", tokenizer=tokenizer,
    ...                    max_length=32)
    'exported/'

    Where it is served, with TensorFlow and TF Text only::

        import tensorflow_text  # registers the tokenizer's ops
        served = tf.saved_model.load("exported/")
        outputs = served.signatures["serving_default"](text=tf.constant(["Great!"]))
        sorted(outputs)  # ['label', 'label_id', 'logits', 'probabilities', 'score']
    """
    if model.hf_architecture not in heads.HEADS:
        raise ConfigError(
            "export_saved_model exports bert_keras models. Expected one of "
            f"{sorted(heads.HEADS)}. Received: {type(model).__name__}"
        )
    limit = model.config.max_position_embeddings
    if tokenizer is not None and not 2 < max_length <= limit:
        raise ConfigError(
            f"`max_length` must leave room for [CLS] and [SEP] and fit the "
            f"model's {limit} position embeddings (max_position_embeddings). "
            f"Received: max_length={max_length}"
        )
    path = os.fspath(path)
    # The endpoints' variables are tracked without `track(...)`, whose walk
    # over every layer doubles the time to write; an untracked lookup table
    # would make saving fail, not the SavedModel.
    archive = keras.export.ExportArchive()
    if tokenizer is not None:
        serve_text, _ = text_function(
            model, tokenizer, max_length, text_pair, top_k, max_answer_length
        )
        archive.add_endpoint(TEXT_SIGNATURE, _traced(serve_text))
    archive.add_endpoint(IDS_SIGNATURE, _traced(ids_function(model)))
    archive.write_out(path, verbose=False)
    return path


def _traced(function):
    function.get_concrete_function()  # ExportArchive takes traced functions
    return function


def export_keras_saved_model(
    model, filepath, verbose=None, input_signature=None, **kwargs
):
    """`model.export(path)`, Keras' `"tf_saved_model"` format, for bert_keras models.

    Keras' own export serves the model's outputs as they come, but a
    SavedModel signature returns tensors only: `hidden_states` and
    `attentions` (tuples of one tensor per layer, present when the config
    sets `output_hidden_states` / `output_attentions`) made it fail. Here
    each is stacked into one tensor under its HF name, as transformers v4's
    TF SavedModels and `serve_ids` have them: `hidden_states`
    (num_hidden_layers + 1, batch, seq, hidden), index 0 the embeddings'
    output; `attentions` (num_hidden_layers, batch, heads, seq, seq). The
    other outputs keep their HF names (`last_hidden_state`, `logits`, ...).
    Outputs are float32 and computed in inference mode (`training=False`).

    The endpoint is Keras' `serve` (also `serving_default`): one dict of
    int32 `input_ids`, `attention_mask`, `token_type_ids`, any batch and
    length ((batch, choices, seq) for multiple choice). For raw strings in,
    use `bert_keras.export`.

    Args:
        model: a bert_keras model.
        filepath: str or path of the SavedModel directory to write.
        verbose: bool or None (True, as Keras), print where it was written.
        input_signature: None for the model's inputs, or a Keras structure
            of specs (`keras.InputSpec`, `tf.TensorSpec`) for one argument
            list, as `keras.Model.export` takes it.
        **kwargs: passed to `keras.export.ExportArchive.add_endpoint` (its
            JAX-only options).

    Returns:
        str, the path written.

    Example:

    >>> encoder = BertModel(BertConfig(
    ...     vocab_size=99, hidden_size=32, num_hidden_layers=2,
    ...     num_attention_heads=4, intermediate_size=37,
    ...     output_hidden_states=True))
    >>> export_keras_saved_model(encoder, "exported/", verbose=False)
    'exported/'
    >>> served = tf.saved_model.load("exported/")
    >>> ids = {name: tf.constant(value, tf.int32) for name, value in inputs.items()}
    >>> served.serve(ids)["hidden_states"].shape  # 2 layers + embeddings
    TensorShape([3, 3, 7, 32])
    """
    if input_signature is None:
        # One positional argument, the inputs dict, as Keras exports a
        # functional model; specs named by input so the signature's are too.
        input_signature = [
            {
                name: tf.TensorSpec(tensor.shape, tensor.dtype, name=name)
                for name, tensor in model.input.items()
            }
        ]

    def serve(*args):
        outputs = model(*args, training=False)
        return {name: _float32(value) for name, value in outputs.items()}

    path = os.fspath(filepath)
    archive = keras.export.ExportArchive()
    # Tracked as Keras' export does, so the revived object has `variables`.
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature, **kwargs)
    archive.write_out(path, verbose=True if verbose is None else verbose)
    return path
