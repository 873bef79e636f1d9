"""`BertConfig` is transformers' own class: HF field names are the truth.

This module re-exports it and adds the checks that must pass before any weight
is built, so a hostile or mistaken config.json fails fast with a clear message.
"""

from transformers import BertConfig

from bert_keras.errors import ConfigError
from bert_keras.layers.activations import ACTIVATIONS

# Sizes beyond these are refused before any allocation: a BERT with a vocabulary
# of 10^12 or a million layers is a corrupt file, not a model.
_LIMITS = {
    "vocab_size": 10_000_000,
    "hidden_size": 65_536,
    "num_hidden_layers": 1_024,
    "num_attention_heads": 4_096,
    "intermediate_size": 262_144,
    "max_position_embeddings": 1_048_576,
    "type_vocab_size": 1_024,
}
_PROBABILITIES = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
)


def as_config(config):
    """Returns a `BertConfig` from a `BertConfig`, a dict or `None` (defaults)."""
    if config is None:
        return BertConfig()
    if isinstance(config, BertConfig):
        return config
    if isinstance(config, dict):
        return BertConfig.from_dict(dict(config))
    raise ConfigError(
        "Expected a `transformers.BertConfig` or a dict of its fields. "
        f"Received: config={config!r} of type {type(config).__name__}"
    )


def validate_config(config):
    """Checks that a `BertConfig` describes a model that can be built.

    Args:
        config: `BertConfig`.

    Raises:
        ConfigError: a field is missing, of the wrong type, non-positive,
            absurdly large or inconsistent with another field.

    Example:

    >>> validate_config(BertConfig(hidden_size=30, num_attention_heads=4))
    Traceback (most recent call last):
    ...
    bert_keras.errors.ConfigError: ...
    """
    model_type = getattr(config, "model_type", None)
    if model_type != "bert":
        raise ConfigError(
            f"config.json describes a '{model_type}' model; bert_keras builds BERT "
            "only (model_type 'bert'). Received: "
            f"model_type={model_type!r}"
        )
    for field, limit in _LIMITS.items():
        value = getattr(config, field, None)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"Config field `{field}` must be a positive integer. "
                f"Received: {field}={value!r}"
            )
        if value <= 0 or value > limit:
            raise ConfigError(
                f"Config field `{field}` must be between 1 and {limit:,}. Fix the "
                f"config.json or pass {field}=... as an override. "
                f"Received: {field}={value!r}"
            )
    if config.hidden_size % config.num_attention_heads:
        raise ConfigError(
            "`hidden_size` must be divisible by `num_attention_heads` (each head "
            f"gets hidden_size / num_attention_heads features). Received: "
            f"hidden_size={config.hidden_size}, "
            f"num_attention_heads={config.num_attention_heads}"
        )
    for field in _PROBABILITIES:
        value = getattr(config, field, None)
        if value is None and field == "classifier_dropout":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(
                f"Config field `{field}` must be a probability in [0, 1). "
                f"Received: {field}={value!r}"
            )
        if not 0 <= value < 1:
            raise ConfigError(
                f"Config field `{field}` must be a probability in [0, 1). "
                f"Received: {field}={value!r}"
            )
    eps = getattr(config, "layer_norm_eps", None)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise ConfigError(
            "Config field `layer_norm_eps` must be a positive number. "
            f"Received: layer_norm_eps={eps!r}"
        )
    act = getattr(config, "hidden_act", None)
    if act not in ACTIVATIONS:
        raise ConfigError(
            f"Config field `hidden_act` names an activation bert_keras does not "
            f"know. Expected one of {sorted(ACTIVATIONS)}. Received: "
            f"hidden_act={act!r}"
        )
    position_type = getattr(config, "position_embedding_type", "absolute")
    if position_type not in (None, "absolute"):
        raise ConfigError(
            "Only absolute position embeddings are supported. Received: "
            f"position_embedding_type={position_type!r}"
        )
    if getattr(config, "is_decoder", False) or getattr(
        config, "add_cross_attention", False
    ):
        raise ConfigError(
            "bert_keras is encoder-only: set is_decoder=False and "
            "add_cross_attention=False. Received: "
            f"is_decoder={config.is_decoder}, "
            f"add_cross_attention={config.add_cross_attention}"
        )
    _validate_labels(config)
    return config


def _validate_labels(config):
    id2label = getattr(config, "id2label", None) or {}
    label2id = getattr(config, "label2id", None) or {}
    ids = sorted(int(i) for i in id2label)
    if ids != list(range(len(ids))):
        raise ConfigError(
            "`id2label` keys must be the integers 0..num_labels-1. Received: "
            f"id2label keys={ids}"
        )
    if label2id and {str(k): int(v) for k, v in label2id.items()} != {
        str(v): int(k) for k, v in id2label.items()
    }:
        raise ConfigError(
            "`label2id` must be the inverse of `id2label`. Fix one of them in "
            f"config.json. Received: id2label={dict(id2label)}, "
            f"label2id={dict(label2id)}"
        )
