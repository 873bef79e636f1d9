"""`BertConfig` is transformers' own class: HF field names are the truth.

This module re-exports it and adds the checks that must pass before any weight
is built, so a hostile or mistaken config.json fails fast with a clear message.
transformers is imported on first use, not by `import bert_keras`: it takes
seconds, and imports torch whenever torch is installed.
"""

import math

from bert_keras.errors import ConfigError
from bert_keras.modeling.activations import ACTIVATIONS

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
# Fields within their limits can multiply to an absurd model: past 10x the
# largest published BERT-style encoder (XLM-R XXL, 1.07e10) a config is hostile.
_MAX_PARAMETERS = 10**11
_PROBABILITIES = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
)


def bert_config_class():
    """`transformers.BertConfig`, imported on first use."""
    from transformers import BertConfig

    return BertConfig


def __getattr__(name):
    if name == "BertConfig":
        return bert_config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def as_config(config):
    """Returns a `BertConfig` from a `BertConfig`, a dict or `None` (defaults)."""
    BertConfig = bert_config_class()
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
            "only (model_type 'bert'). Use a BERT checkpoint. Received: "
            f"model_type={model_type!r}"
        )
    for field, limit in _LIMITS.items():
        value = getattr(config, field, None)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"Config field `{field}` must be a positive integer. "
                f"{_fix(field)}Received: {field}={value!r}"
            )
        if value <= 0 or value > limit:
            raise ConfigError(
                f"Config field `{field}` must be between 1 and {limit:,}. "
                f"{_fix(field)}"
                f"Received: {field}={value!r}"
            )
    parameters = _parameter_count(config)
    if parameters > _MAX_PARAMETERS:
        raise ConfigError(
            f"The config describes a BERT of about {parameters:.2g} weights "
            f"({parameters * 4 / 1e9:,.0f} GB in float32); bert_keras builds at "
            f"most {_MAX_PARAMETERS:.0e}, so the config.json is corrupt or not a "
            "BERT's. Fix its size fields. Received: "
            f"vocab_size={config.vocab_size}, hidden_size={config.hidden_size}, "
            f"num_hidden_layers={config.num_hidden_layers}, "
            f"intermediate_size={config.intermediate_size}, "
            f"max_position_embeddings={config.max_position_embeddings}"
        )
    if config.hidden_size % config.num_attention_heads:
        raise ConfigError(
            "`hidden_size` must be divisible by `num_attention_heads` (each head "
            "gets hidden_size / num_attention_heads features). Fix one of them in "
            "the config.json, or pass them as overrides. Received: "
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
                f"{_fix(field)}Received: {field}={value!r}"
            )
        if not 0 <= value < 1:
            raise ConfigError(
                f"Config field `{field}` must be a probability in [0, 1). "
                f"{_fix(field)}Received: {field}={value!r}"
            )
    eps = getattr(config, "layer_norm_eps", None)
    is_number = isinstance(eps, (int, float)) and not isinstance(eps, bool)
    if not is_number or not 0 < eps < math.inf:  # also refuses nan
        raise ConfigError(
            "Config field `layer_norm_eps` must be a positive finite number. "
            f"{_fix('layer_norm_eps')}Received: layer_norm_eps={eps!r}"
        )
    std = getattr(config, "initializer_range", None)
    is_number = isinstance(std, (int, float)) and not isinstance(std, bool)
    if not is_number or not 0 <= std < math.inf:  # nan would poison new heads
        raise ConfigError(
            "Config field `initializer_range` must be a finite number >= 0. "
            f"{_fix('initializer_range')}Received: initializer_range={std!r}"
        )
    act = getattr(config, "hidden_act", None)
    if act not in ACTIVATIONS:
        raise ConfigError(
            f"Config field `hidden_act` names an activation bert_keras does not "
            f"know. Expected one of {sorted(ACTIVATIONS)}. {_fix('hidden_act')}"
            "Received: "
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
    pad = getattr(config, "pad_token_id", None)
    if pad is not None and (
        isinstance(pad, bool)
        or not isinstance(pad, int)
        or not 0 <= pad < config.vocab_size
    ):
        raise ConfigError(
            "Config field `pad_token_id` must be None or a token id of the "
            f"vocabulary, in [0, vocab_size={config.vocab_size}); transformers "
            "refuses any other (its embedding's padding_idx). "
            f"{_fix('pad_token_id')}Received: pad_token_id={pad!r}, "
            f"vocab_size={config.vocab_size}"
        )
    _validate_labels(config)
    return config


def _fix(field):
    return f"Fix the config.json or pass {field}=... as an override. "


def _parameter_count(config):
    """The weights of the encoder and embeddings (heads add little)."""
    hidden, intermediate = config.hidden_size, config.intermediate_size
    rows = config.vocab_size + config.max_position_embeddings + config.type_vocab_size
    per_layer = 4 * hidden * hidden + 2 * hidden * intermediate
    return rows * hidden + config.num_hidden_layers * per_layer + hidden * hidden


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
