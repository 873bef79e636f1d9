"""The whole Hugging Face key map: every weight's state-dict key, in one place.

Each model's weights are listed here under the keys of the matching
transformers class (`bert.encoder.layer.0.attention.self.query.weight`), with
whether torch stores the transpose of the Keras variable (a `Linear`'s weight
is the transposed Dense kernel). tests/golden/hf_keys.json holds the key list
of all eight classes, checked by tests/test_checkpoint_keys.py.
"""

TRANSPOSED = True  # torch `Linear.weight` is the Keras Dense kernel, transposed
AS_IS = False


def linear(name, dense):
    """The keys of a torch `Linear` for a Keras `Dense`."""
    keys = {f"{name}.weight": (dense.kernel, TRANSPOSED)}
    if dense.use_bias:
        keys[f"{name}.bias"] = (dense.bias, AS_IS)
    return keys


def layer_norm(name, norm):
    """The keys of a torch `LayerNorm` (gamma is `weight`, beta is `bias`)."""
    return {f"{name}.weight": (norm.gamma, AS_IS), f"{name}.bias": (norm.beta, AS_IS)}


def bert_keys(bert, prefix=""):
    """`BertModel`'s keys; task models put them under `bert.`."""
    embeddings = bert.embeddings
    keys = {
        "embeddings.word_embeddings.weight": (
            embeddings.word_embeddings.embeddings,
            AS_IS,
        ),
        "embeddings.position_embeddings.weight": (
            embeddings.position_embeddings.embeddings,
            AS_IS,
        ),
        "embeddings.token_type_embeddings.weight": (
            embeddings.token_type_embeddings.embeddings,
            AS_IS,
        ),
        **layer_norm("embeddings.LayerNorm", embeddings.layer_norm),
    }
    for index, layer in enumerate(bert.encoder.layer):
        name = f"encoder.layer.{index}"
        attention = layer.attention
        keys.update(
            {
                **linear(f"{name}.attention.self.query", attention.query),
                **linear(f"{name}.attention.self.key", attention.key),
                **linear(f"{name}.attention.self.value", attention.value),
                **linear(f"{name}.attention.output.dense", attention.output_dense),
                **layer_norm(
                    f"{name}.attention.output.LayerNorm", attention.output_layer_norm
                ),
                **linear(f"{name}.intermediate.dense", layer.intermediate_dense),
                **linear(f"{name}.output.dense", layer.output_dense),
                **layer_norm(f"{name}.output.LayerNorm", layer.output_layer_norm),
            }
        )
    if bert.pooler is not None:
        keys.update(linear("pooler.dense", bert.pooler.dense))
    return {prefix + key: value for key, value in keys.items()}


def masked_lm_keys(head):
    """`cls.predictions`: the MLM transform, the decoder bias, and the
    decoder matrix when it is not tied to the word embeddings."""
    keys = {
        **linear("cls.predictions.transform.dense", head.transform_dense),
        **layer_norm("cls.predictions.transform.LayerNorm", head.transform_layer_norm),
    }
    if not head.tied:
        # Untied, transformers' forward pass uses `decoder.bias` but still
        # stores `bias`: one variable, loaded from the first key present.
        keys["cls.predictions.decoder.weight"] = (head.decoder, AS_IS)
        keys["cls.predictions.decoder.bias"] = (head.bias, AS_IS)
    keys["cls.predictions.bias"] = (head.bias, AS_IS)
    return keys


# One entry per class: the keys its transformers twin has.
KEY_MAPS = {
    "BertModel": lambda model: bert_keys(model),
    "BertForPreTraining": lambda model: {
        **bert_keys(model.bert, "bert."),
        **masked_lm_keys(model.predictions),
        **linear("cls.seq_relationship", model.seq_relationship),
    },
    "BertForMaskedLM": lambda model: {
        **bert_keys(model.bert, "bert."),
        **masked_lm_keys(model.predictions),
    },
    "BertForNextSentencePrediction": lambda model: {
        **bert_keys(model.bert, "bert."),
        **linear("cls.seq_relationship", model.seq_relationship),
    },
    "BertForSequenceClassification": lambda model: {
        **bert_keys(model.bert, "bert."),
        **linear("classifier", model.classifier),
    },
    "BertForTokenClassification": lambda model: {
        **bert_keys(model.bert, "bert."),
        **linear("classifier", model.classifier),
    },
    "BertForMultipleChoice": lambda model: {
        **bert_keys(model.bert, "bert."),
        **linear("classifier", model.classifier),
    },
    "BertForQuestionAnswering": lambda model: {
        **bert_keys(model.bert, "bert."),
        **linear("qa_outputs", model.qa_outputs),
    },
}

# Keys transformers does not write because they share another's tensor
# (`{tied_key: source_key}`), for the classes with a tied MLM decoder.
TIED_KEYS = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}


def hf_variables(model):
    """Returns `{hf_key: (variable, transposed)}` for every weight of `model`.

    Args:
        model: a bert_keras model; its `hf_architecture` picks the map.

    Returns:
        dict in the transformers class's key order; tied weights appear once,
        under their source key.

    Example:

    >>> model = BertForSequenceClassification(config)
    >>> sorted(hf_variables(model))[:2]
    ['bert.embeddings.LayerNorm.bias', 'bert.embeddings.LayerNorm.weight']
    """
    return KEY_MAPS[model.hf_architecture](model)


def tied_keys(model):
    """`{tied_key: source_key}` for `model`: the keys not written, as shared."""
    has_decoder = model.hf_architecture in ("BertForPreTraining", "BertForMaskedLM")
    if has_decoder and model.config.tie_word_embeddings:
        return dict(TIED_KEYS)
    return {}
