"""Changing a built model's vocabulary size: transformers' `resize_token_embeddings`.

The word-embedding table (vocab, hidden) and, for the masked-LM classes, the
MLM head's bias (vocab,) and untied decoder (vocab, hidden) are replaced by
variables of the new size, in place: the same model object, its layers and
every other weight untouched. The first `min(old, new)` rows are kept.

New rows are initialised as a freshly built model of the new size would
initialise them, which is what transformers v4's TF classes did: embedding
rows (and untied decoder rows) from a truncated normal of stddev
`config.initializer_range`, bias entries with zeros. (transformers' PyTorch
classes draw new embedding rows around the old rows' mean instead.)
"""

import contextlib
import numbers

import keras
from keras import ops

from bert_keras.errors import ConfigError
from bert_keras.errors import InputError
from bert_keras.keras_private import distribute_strategy
from bert_keras.keras_private import replace_embedding_table
from bert_keras.keras_private import replace_weight


def lm_head(model):
    """The model's masked-LM head.

    Args:
        model: a bert_keras model.

    Returns:
        Its `BertLMPredictionHead` (`predictions`), or None.

    Example:

    >>> lm_head(BertForMaskedLM(config)).name, lm_head(BertModel(config))
    ('predictions', None)
    """
    return getattr(model, "predictions", None)


def output_embeddings(model):
    """The layer whose weight scores the vocabulary (`get_output_embeddings`).

    Tied (the BERT default) that is the word-embedding layer itself, as in
    transformers; untied, the MLM head, which holds the `decoder` matrix.

    Args:
        model: a bert_keras model.

    Returns:
        A `keras.layers.Embedding`, a `BertLMPredictionHead`, or None for a
        class without an LM head.

    Example:

    >>> type(output_embeddings(BertForMaskedLM(config))).__name__
    'Embedding'
    """
    head = lm_head(model)
    if head is None:
        return None
    return head.word_embeddings if head.tied else head


def lm_bias(model):
    """The MLM head's vocabulary bias (`get_bias`).

    Args:
        model: a bert_keras model.

    Returns:
        `{"bias": keras.Variable}` of shape (vocab,), or None for a class
        without an LM head.

    Example:

    >>> tuple(lm_bias(BertForMaskedLM(config))["bias"].shape)
    (99,)
    """
    head = lm_head(model)
    return None if head is None else {"bias": head.bias}


def set_lm_bias(model, values):
    """Assigns the MLM head's bias (`set_bias`), keeping the vocabulary size.

    Args:
        model: BertForMaskedLM or BertForPreTraining.
        values: dict `{"bias": (vocab,) array}`, as `lm_bias` returns it.

    Raises:
        InputError: the model has no LM head, or the keys or shape differ.

    Example:

    >>> set_lm_bias(BertForMaskedLM(config), {"bias": np.ones(config.vocab_size)})
    """
    biases = lm_bias(model)
    if biases is None:
        raise InputError(
            f"{type(model).__name__} has no LM head, so it has no vocabulary "
            "bias to set. Use BertForMaskedLM or BertForPreTraining. "
            f"Received: {sorted(values) if isinstance(values, dict) else values!r}"
        )
    if not isinstance(values, dict) or set(values) != set(biases):
        raise InputError(
            f"set_bias takes a dict with the keys {sorted(biases)}, as "
            f"get_bias() returns it. Received: {values!r}"
        )
    for name, variable in biases.items():
        value = ops.convert_to_tensor(values[name], variable.dtype)
        if tuple(value.shape) != tuple(variable.shape):
            raise InputError(
                f"The `{name}` values must have the shape {tuple(variable.shape)} "
                "(the vocabulary size). To change the vocabulary size, call "
                "`resize_token_embeddings(new_num_tokens)`, which resizes the "
                f"bias too. Received: shape {tuple(value.shape)}"
            )
        variable.assign(value)


def resize_token_embeddings(model, new_num_tokens=None):
    """Gives `model` a vocabulary of `new_num_tokens` word pieces, in place.

    Args:
        model: a built bert_keras model.
        new_num_tokens: int > 0, or None to leave the model as it is.

    Returns:
        The word-embedding layer (`keras.layers.Embedding`), as transformers
        returns its input embeddings.

    Example:

    >>> masked_lm = BertForMaskedLM(config.to_dict())  # a config of its own
    >>> resize_token_embeddings(masked_lm, 120).input_dim
    120
    >>> masked_lm.config.vocab_size, tuple(masked_lm.get_bias()["bias"].shape)
    (120, (120,))
    """
    embedding = model.get_input_embeddings()
    if new_num_tokens is None:
        return embedding
    new_num_tokens = _checked_size(model, new_num_tokens)
    if new_num_tokens == embedding.input_dim:
        return embedding
    _check_resizable(model, embedding)

    config = model.config
    head = lm_head(model)
    stddev = config.initializer_range

    def normal():
        # A fresh initializer: a used one would repeat its first draws.
        return keras.initializers.TruncatedNormal(stddev=stddev)

    new = {  # (layer, attribute): the variable replacing that weight
        (embedding, "_embeddings"): _resized(
            model, embedding.embeddings, new_num_tokens, normal()
        )
    }
    if head is not None:
        new[head, "bias"] = _resized(model, head.bias, new_num_tokens, "zeros")
        if not head.tied:
            new[head, "decoder"] = _resized(
                model, head.decoder, new_num_tokens, normal()
            )
    # Every variable is made before any is swapped in: a failure leaves the
    # model as it was.
    for (layer, attribute), variable in new.items():
        if layer is embedding:
            replace_embedding_table(embedding, variable)
        else:
            replace_weight(layer, attribute, variable)
    getattr(model, "bert", model).embeddings.vocab_size = new_num_tokens
    if head is not None:
        head.vocab_size = new_num_tokens
    config.vocab_size = new_num_tokens
    _refresh_training_state(model)
    return embedding


def _checked_size(model, new_num_tokens):
    """`new_num_tokens` as an int, or InputError / ConfigError."""
    if isinstance(new_num_tokens, bool) or not isinstance(
        new_num_tokens, numbers.Integral
    ):
        raise InputError(
            "new_num_tokens must be a positive int (the new vocabulary size, "
            "e.g. `len(tokenizer)`) or None. "
            f"Received: new_num_tokens={new_num_tokens!r}"
        )
    new_num_tokens = int(new_num_tokens)  # numpy integers too
    if new_num_tokens <= 0:
        raise InputError(
            "new_num_tokens must be a positive int (the new vocabulary size, "
            f"e.g. `len(tokenizer)`). Received: new_num_tokens={new_num_tokens}"
        )
    pad_token_id = getattr(model.config, "pad_token_id", None)
    if pad_token_id is not None and new_num_tokens <= pad_token_id:
        raise ConfigError(
            f"A vocabulary of {new_num_tokens} tokens has no row for the "
            f"padding token (config.pad_token_id={pad_token_id}). Keep at least "
            f"{pad_token_id + 1} tokens, or change config.pad_token_id first. "
            f"Received: new_num_tokens={new_num_tokens}"
        )
    return new_num_tokens


def _check_resizable(model, embedding):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        # A built Keras optimizer keeps a slot per variable it was built for.
        raise ConfigError(
            "The model's optimizer was already built for the current weights "
            "(the model has been trained, or loaded compiled), and cannot take "
            "resized ones. Resize before the first `fit`, or first "
            "`model.compile(optimizer=...)` with a new optimizer, then resize. "
            f"Received: optimizer={optimizer.name!r} (built)"
        )
    if embedding.lora_enabled or embedding.quantization_mode:
        raise ConfigError(
            "The word embeddings are quantized or carry LoRA weights, whose "
            "extra variables cannot be resized. Resize before `quantize()` / "
            "`enable_lora()`. Received: quantization_mode="
            f"{embedding.quantization_mode!r}, lora_enabled={embedding.lora_enabled}"
        )


def _resized(model, variable, rows, initializer):
    """A new variable like `variable` with `rows` rows: the old first rows kept."""
    old_rows = int(variable.shape[0])
    kept = ops.convert_to_tensor(variable)[: min(old_rows, rows)]
    if rows > old_rows:
        shape = (rows - old_rows,) + tuple(variable.shape[1:])
        added = keras.initializers.get(initializer)(shape, dtype=variable.dtype)
        kept = ops.concatenate([kept, ops.cast(added, variable.dtype)], axis=0)
    with contextlib.ExitStack() as scopes:
        # Placed as the old variable was (the model's strategy), and with its
        # path, which names it in weight-decay exclusions and in checkpoints.
        strategy = distribute_strategy(model)
        if strategy is not None:
            scopes.enter_context(strategy.scope())
        for name in variable.path.split("/")[:-1]:
            scopes.enter_context(keras.name_scope(name))
        new = keras.Variable(
            initializer=kept,
            dtype=variable.dtype,
            trainable=variable.trainable,
            aggregation=variable.aggregation,
            synchronization=variable.synchronization,
            name=variable.name,
        )
    new.regularizer = getattr(variable, "regularizer", None)
    new.constraint = getattr(variable, "constraint", None)
    new.overwrite_with_gradient = variable.overwrite_with_gradient
    return new


def _refresh_training_state(model):
    # Keras' traced train / test / predict functions captured the old variables.
    model.train_function = None
    model.test_function = None
    model.predict_function = None
    task_compile = getattr(model, "_task_compile", None)
    if task_compile and task_compile.get("loss") and model.task() is not None:
        # compile() fixed the label range check to the old vocabulary size.
        model._label_ranges = model.task().label_ranges
