"""transformers v4's TensorFlow names for bert_keras, so migrating is an import.

transformers v5 removed `TFBertModel`, `TFBertFor*`, `TFAutoModel*` and the
TF `create_optimizer`. Code written for them runs here once the import line
changes:

    from transformers import TFAutoModelForSequenceClassification  # v4
    from bert_keras.compat import TFAutoModelForSequenceClassification

Any other name (`AutoTokenizer`, `BertConfig`, ...) is transformers' own,
so one import line can serve a whole script. Only BERT checkpoints load:
bert_keras has no other architecture.
"""

import bert_keras as bk
from bert_keras.errors import ConfigError
from bert_keras.modeling.base import BertPreTrainedModel
from bert_keras.training.optimization import WarmupLinearDecay
from bert_keras.training.optimization import create_optimizer as _adamw

TFPreTrainedModel = BertPreTrainedModel
TFBertPreTrainedModel = BertPreTrainedModel
TFBertModel = bk.BertModel
TFBertForPreTraining = bk.BertForPreTraining
TFBertForMaskedLM = bk.BertForMaskedLM
TFBertForNextSentencePrediction = bk.BertForNextSentencePrediction
TFBertForSequenceClassification = bk.BertForSequenceClassification
TFBertForTokenClassification = bk.BertForTokenClassification
TFBertForQuestionAnswering = bk.BertForQuestionAnswering
TFBertForMultipleChoice = bk.BertForMultipleChoice


class _AutoClass:
    """`TFAutoModel*`: the BERT class of one task, chosen by name."""

    model_class = None

    def __init__(self):
        raise TypeError(
            f"{type(self).__name__} is built with `.from_pretrained(path)` or "
            "`.from_config(config)`, as in transformers."
        )

    @classmethod
    def from_pretrained(cls, name_or_path, *args, **kwargs):
        """Loads a BERT checkpoint as `model_class` (see its `from_pretrained`)."""
        return cls.model_class.from_pretrained(name_or_path, *args, **kwargs)

    @classmethod
    def from_config(cls, config, **kwargs):
        """A freshly initialised `model_class` of `config` (a BERT config)."""
        model_type = getattr(config, "model_type", "bert")
        if model_type != "bert":
            raise ConfigError(
                "bert_keras builds BERT models only. Expected a config with "
                f"model_type='bert'. Received: model_type={model_type!r}"
            )
        return cls.model_class(config, **kwargs)


def _auto(name, model_class):
    doc = f"transformers v4's `{name}`, for BERT: builds `{model_class.__name__}`."
    return type(name, (_AutoClass,), {"model_class": model_class, "__doc__": doc})


TFAutoModel = _auto("TFAutoModel", bk.BertModel)
TFAutoModelForPreTraining = _auto("TFAutoModelForPreTraining", bk.BertForPreTraining)
TFAutoModelForMaskedLM = _auto("TFAutoModelForMaskedLM", bk.BertForMaskedLM)
TFAutoModelForNextSentencePrediction = _auto(
    "TFAutoModelForNextSentencePrediction", bk.BertForNextSentencePrediction
)
TFAutoModelForSequenceClassification = _auto(
    "TFAutoModelForSequenceClassification", bk.BertForSequenceClassification
)
TFAutoModelForTokenClassification = _auto(
    "TFAutoModelForTokenClassification", bk.BertForTokenClassification
)
TFAutoModelForQuestionAnswering = _auto(
    "TFAutoModelForQuestionAnswering", bk.BertForQuestionAnswering
)
TFAutoModelForMultipleChoice = _auto(
    "TFAutoModelForMultipleChoice", bk.BertForMultipleChoice
)


def create_optimizer(
    init_lr,
    num_train_steps,
    num_warmup_steps,
    min_lr_ratio=0.0,
    adam_beta1=0.9,
    adam_beta2=0.999,
    adam_epsilon=1e-8,
    adam_clipnorm=None,
    adam_global_clipnorm=None,
    weight_decay_rate=0.0,
    power=1.0,
    include_in_weight_decay=None,
):
    """transformers v4's TF `create_optimizer`: AdamW with warmup and linear decay.

    The schedule is v4's for its defaults (`min_lr_ratio=0`, `power=1`):
    linear warmup to `init_lr`, then linear decay to 0 at `num_train_steps`;
    biases and LayerNorm take no weight decay, as in v4.

    Returns:
        `(optimizer, lr_schedule)`, as v4 did.

    Raises:
        ConfigError: an option of v4's that this schedule does not implement.

    Example:

    >>> optimizer, schedule = create_optimizer(2e-5, 100, 10)
    >>> round(float(schedule(5)), 12)
    1e-05
    """
    unsupported = {
        "min_lr_ratio": (min_lr_ratio, 0.0),
        "power": (power, 1.0),
        "adam_clipnorm": (adam_clipnorm, None),
        "include_in_weight_decay": (include_in_weight_decay, None),
    }
    for name, (value, default) in unsupported.items():
        if value != default:
            raise ConfigError(
                f"create_optimizer supports transformers v4's defaults for "
                f"`{name}` only ({default!r}): the schedule is linear warmup "
                "and linear decay to 0, with global-norm clipping. Received: "
                f"{name}={value!r}"
            )
    schedule = WarmupLinearDecay(init_lr, num_train_steps, num_warmup_steps)
    optimizer = _adamw(
        schedule,
        weight_decay=weight_decay_rate,
        beta_1=adam_beta1,
        beta_2=adam_beta2,
        epsilon=adam_epsilon,
        clipnorm=adam_global_clipnorm,
    )
    return optimizer, schedule


def __getattr__(name):
    import transformers

    try:
        return getattr(transformers, name)
    except AttributeError:
        raise AttributeError(
            f"bert_keras.compat has no `{name}`, and transformers has none either "
            "(transformers v5 removed its TensorFlow classes; bert_keras gives "
            "the BERT ones: TFBertModel, TFBertFor*, TFAutoModel*, "
            "create_optimizer)."
        ) from None
