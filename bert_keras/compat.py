"""transformers v4's TensorFlow names for bert_keras, so migrating is an import.

transformers v5 removed `TFBertModel`, `TFBertFor*`, `TFAutoModel*`, the TF
`create_optimizer`, and TensorFlow tensors from its tokenizers and data
collators (`return_tensors="tf"` raises). Code written for them runs here
once the import line changes:

    from transformers import TFAutoModelForSequenceClassification  # v4
    from bert_keras.compat import TFAutoModelForSequenceClassification

Defined here:

- models: `TFBertModel`, `TFBertForPreTraining`, `TFBertForMaskedLM`,
  `TFBertForNextSentencePrediction`, `TFBertForSequenceClassification`,
  `TFBertForTokenClassification`, `TFBertForQuestionAnswering`,
  `TFBertForMultipleChoice`, `TFPreTrainedModel`, `TFBertPreTrainedModel`;
- auto classes: `TFAutoModel` and `TFAutoModelFor*` of the tasks above;
- `create_optimizer`;
- Keras callbacks: `KerasMetricCallback`, `PushToHubCallback`;
- tokenizers that accept `return_tensors="tf"`: `AutoTokenizer`,
  `BertTokenizer`, `BertTokenizerFast` (v5 merged the two);
- data collators that accept `return_tensors="tf"`:
  `DataCollatorWithPadding`, `DataCollatorForTokenClassification`,
  `DataCollatorForLanguageModeling`, `DefaultDataCollator`.

The tokenizers and collators are transformers' own classes, subclassed:
only `return_tensors="tf"` changes (tf.Tensors, int32 ids, as v4 gave), and
the tokenizers take a datasets `Column` (`dataset["text"]`, which was a list
before datasets 4) as a batch of texts.
Any other name (`BertConfig`, `pipeline`, ...) is transformers' own, so one
import line can serve a whole script. Only BERT checkpoints load: bert_keras
has no other architecture.
"""

import collections.abc
import dataclasses

import keras
import numpy as np

import bert_keras as bk
from bert_keras.errors import ConfigError
from bert_keras.modeling.base import BertPreTrainedModel
from bert_keras.training.optimization import WarmupLinearDecay
from bert_keras.training.optimization import create_optimizer as _adamw

TFPreTrainedModel = BertPreTrainedModel
TFBertPreTrainedModel = BertPreTrainedModel


def _v4_class(base):
    """`base` under its v4 name (`TFBertModel`, ...): a subclass adding
    nothing, so `type(model).__name__` reads as v4 code expects."""
    name = "TF" + base.__name__
    doc = (
        f"transformers v4's `{name}`: `bert_keras.{base.__name__}` under its v4 "
        "name (instances are also `bert_keras` models)."
    )
    cls = type(name, (base,), {"__module__": __name__, "__doc__": doc})
    return keras.saving.register_keras_serializable(package="bert_keras.compat")(cls)


TFBertModel = _v4_class(bk.BertModel)
TFBertForPreTraining = _v4_class(bk.BertForPreTraining)
TFBertForMaskedLM = _v4_class(bk.BertForMaskedLM)
TFBertForNextSentencePrediction = _v4_class(bk.BertForNextSentencePrediction)
TFBertForSequenceClassification = _v4_class(bk.BertForSequenceClassification)
TFBertForTokenClassification = _v4_class(bk.BertForTokenClassification)
TFBertForQuestionAnswering = _v4_class(bk.BertForQuestionAnswering)
TFBertForMultipleChoice = _v4_class(bk.BertForMultipleChoice)


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


TFAutoModel = _auto("TFAutoModel", TFBertModel)
TFAutoModelForPreTraining = _auto("TFAutoModelForPreTraining", TFBertForPreTraining)
TFAutoModelForMaskedLM = _auto("TFAutoModelForMaskedLM", TFBertForMaskedLM)
TFAutoModelForNextSentencePrediction = _auto(
    "TFAutoModelForNextSentencePrediction", TFBertForNextSentencePrediction
)
TFAutoModelForSequenceClassification = _auto(
    "TFAutoModelForSequenceClassification", TFBertForSequenceClassification
)
TFAutoModelForTokenClassification = _auto(
    "TFAutoModelForTokenClassification", TFBertForTokenClassification
)
TFAutoModelForQuestionAnswering = _auto(
    "TFAutoModelForQuestionAnswering", TFBertForQuestionAnswering
)
TFAutoModelForMultipleChoice = _auto(
    "TFAutoModelForMultipleChoice", TFBertForMultipleChoice
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


# --- Tokenizers and data collators with return_tensors="tf" ----------------
#
# transformers v5 refuses return_tensors="tf" ("tf is not a valid TensorType").
# The classes below are transformers' own, subclassed: a "tf" request is served
# as "np" and the arrays converted, everything else is left to transformers.
# They are made on first use (`__getattr__` below), so importing this module
# does not import transformers (seconds, and torch when installed).

_TF_PREFIX = "_WithTFTensors_"


def _wants_tf(return_tensors):
    return isinstance(return_tensors, str) and return_tensors == "tf"


def _tf_tensor(value):
    """One numpy value as v4 gave it: `tf.constant` of Python numbers."""
    import tensorflow as tf

    array = np.asarray(value)
    if array.dtype.kind in "iu":
        # v4 built tensors from Python ints: int32 unless a value needs more.
        fits = array.size == 0 or (
            array.min() >= np.iinfo(np.int32).min
            and array.max() <= np.iinfo(np.int32).max
        )
        return tf.constant(array, dtype=tf.int32 if fits else tf.int64)
    if array.dtype.kind == "f":
        return tf.constant(array, dtype=tf.float32)
    return tf.constant(array)


def _as_tf(batch):
    """`batch` (a `BatchEncoding` or dict of arrays) with tf.Tensor values.

    A `BatchEncoding` stays one, so `word_ids()` and the other fast-tokenizer
    accessors keep working.
    """
    if not hasattr(batch, "keys"):
        return _tf_tensor(batch)
    for key in list(batch.keys()):
        batch[key] = _tf_tensor(batch[key])
    return batch


_TEXT_ARGUMENTS = ("text", "text_pair", "text_target", "text_pair_target")


def _as_list(text):
    # datasets 4 made `dataset["column"]` a lazy `Column`, which v5 tokenizers
    # refuse; v4-era code passes it where a list used to be.
    if isinstance(text, collections.abc.Sequence) and not isinstance(
        text, (str, list, tuple)
    ):
        return list(text)
    return text


class _TFTensorsTokenizer:
    """Mixin: `__call__`, `pad` and `encode` also take `return_tensors="tf"`.

    `__call__` also takes a datasets `Column` (`dataset["sentence"]`) as a
    batch of texts, as it took the list datasets returned before version 4.
    """

    def __call__(self, *args, return_tensors=None, **kwargs):
        args = tuple(_as_list(value) for value in args)
        for name in _TEXT_ARGUMENTS:
            if name in kwargs:
                kwargs[name] = _as_list(kwargs[name])
        if not _wants_tf(return_tensors):
            return super().__call__(*args, return_tensors=return_tensors, **kwargs)
        return _as_tf(super().__call__(*args, return_tensors="np", **kwargs))

    def pad(self, *args, return_tensors=None, **kwargs):
        if not _wants_tf(return_tensors):
            return super().pad(*args, return_tensors=return_tensors, **kwargs)
        return _as_tf(super().pad(*args, return_tensors="np", **kwargs))

    def encode(self, *args, return_tensors=None, **kwargs):
        if not _wants_tf(return_tensors):
            return super().encode(*args, return_tensors=return_tensors, **kwargs)
        return _tf_tensor(super().encode(*args, return_tensors="np", **kwargs))


def _tf_tokenizer_class(base):
    """The `_TFTensorsTokenizer` subclass of transformers tokenizer class `base`.

    It keeps `base`'s name, which `save_pretrained` writes as
    `tokenizer_class`, so saved files load in plain transformers too.
    Pickle finds it as `bert_keras.compat._WithTFTensors_<name>`.
    """
    import transformers

    if issubclass(base, _TFTensorsTokenizer):
        return base
    if base is transformers.BertTokenizer:
        return __getattr__("BertTokenizer")
    attribute = _TF_PREFIX + base.__name__
    cached = globals().get(attribute)
    if cached is not None and cached.__bases__[1] is base:
        return cached
    made = type(
        base.__name__,
        (_TFTensorsTokenizer, base),
        {
            "__module__": __name__,
            "__qualname__": attribute,
            "__doc__": f"transformers' `{base.__name__}`, also returning tf.Tensors "
            '(`return_tensors="tf"`).',
        },
    )
    globals()[attribute] = made
    return made


def _make_bert_tokenizer():
    import transformers

    class BertTokenizer(_TFTensorsTokenizer, transformers.BertTokenizer):
        """transformers' `BertTokenizer` that also returns tf.Tensors, as v4's did.

        v5 merged `BertTokenizerFast` into `BertTokenizer` (a fast, Rust
        tokenizer); both names are this class here. `return_tensors="tf"` in
        `__call__`, `pad` and `encode` gives tf.Tensors (int32 ids), and a
        datasets `Column` (`dataset["text"]`, a list before datasets 4) is
        taken as a batch; anything else is transformers' own.

        Args:
            As `transformers.BertTokenizer`; usually built with
            `BertTokenizer.from_pretrained(path)`.

        Returns:
            Calls return a `transformers.BatchEncoding`.

        Example:

        >>> tokenizer = BertTokenizer.from_pretrained(path)
        >>> encoded = tokenizer("Hello, my dog is cute", return_tensors="tf")
        >>> encoded["input_ids"].dtype.name
        'int32'
        """

    BertTokenizer.__module__ = __name__
    BertTokenizer.__qualname__ = "BertTokenizer"
    return BertTokenizer


def _make_auto_tokenizer():
    import transformers

    class AutoTokenizer(transformers.AutoTokenizer):
        """transformers' `AutoTokenizer`, whose tokenizers also return tf.Tensors.

        `from_pretrained` loads the tokenizer transformers would load, as an
        instance of a subclass of that same class (same name, same files
        written by `save_pretrained`) that accepts `return_tensors="tf"`.

        Args:
            As `transformers.AutoTokenizer.from_pretrained`.

        Returns:
            The tokenizer.

        Example:

        >>> tokenizer = AutoTokenizer.from_pretrained(path)
        >>> type(tokenizer).__name__
        'BertTokenizer'
        >>> tokenizer("Hello", return_tensors="tf")["input_ids"].shape
        TensorShape([1, 3])
        """

        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            """Loads as transformers does; see the class docstring."""
            tokenizer = transformers.AutoTokenizer.from_pretrained(*args, **kwargs)
            tokenizer.__class__ = _tf_tokenizer_class(type(tokenizer))
            return tokenizer

    AutoTokenizer.__module__ = __name__
    AutoTokenizer.__qualname__ = "AutoTokenizer"
    return AutoTokenizer


class _TFTensorsCollator:
    """Mixin for transformers' `DataCollatorMixin` collators: also "tf"."""

    def __call__(self, features, return_tensors=None):
        wanted = return_tensors or self.return_tensors
        if not _wants_tf(wanted):
            return super().__call__(features, return_tensors)
        return _as_tf(super().__call__(features, "np"))


_COLLATOR_DOC = """transformers' `{name}` that also returns tf.Tensors, as v4's did.

    With `return_tensors="tf"` the batch is built as transformers builds it
    for "np" and converted to tf.Tensors (int32 ids and labels; random
    masking, if any, drawn with numpy). Any other value is transformers' own.

    Args:
        As `transformers.{name}`.

    Returns:
        Calls return a dict (`BatchEncoding`) of tf.Tensors for "tf".

    Example:

    >>> collator = {name}({example_args}return_tensors="tf")
    >>> batch = collator([tokenizer("a b"), tokenizer("c d")])
    >>> batch["input_ids"].dtype.name
    'int32'
    """


def _make_padding_collator():
    import transformers

    base = transformers.DataCollatorWithPadding

    class DataCollatorWithPadding(base):
        def __call__(self, features):
            if not _wants_tf(self.return_tensors):
                return super().__call__(features)
            # Its __call__ reads return_tensors from the instance: a numpy twin.
            as_numpy = dataclasses.replace(self, return_tensors="np")
            return _as_tf(base.__call__(as_numpy, features))

    return _named(DataCollatorWithPadding, "tokenizer=tokenizer, ")


def _make_mixin_collator(name, example_args):
    def make():
        import transformers

        made = type(name, (_TFTensorsCollator, getattr(transformers, name)), {})
        return _named(made, example_args)

    return make


def _named(cls, example_args):
    cls.__module__ = __name__
    cls.__qualname__ = cls.__name__
    cls.__doc__ = _COLLATOR_DOC.format(name=cls.__name__, example_args=example_args)
    return cls


# Names made on first use, as they import transformers.
_LAZY = {
    "AutoTokenizer": _make_auto_tokenizer,
    "BertTokenizer": _make_bert_tokenizer,
    "BertTokenizerFast": lambda: __getattr__("BertTokenizer"),
    "DataCollatorWithPadding": _make_padding_collator,
    "DataCollatorForTokenClassification": _make_mixin_collator(
        "DataCollatorForTokenClassification", "tokenizer=tokenizer, "
    ),
    "DataCollatorForLanguageModeling": _make_mixin_collator(
        "DataCollatorForLanguageModeling", "tokenizer=tokenizer, "
    ),
    "DefaultDataCollator": _make_mixin_collator("DefaultDataCollator", ""),
    # transformers v4's keras_callbacks; lazy, as they import huggingface_hub.
    "KerasMetricCallback": lambda: _callback("KerasMetricCallback"),
    "PushToHubCallback": lambda: _callback("PushToHubCallback"),
}


def _callback(name):
    from bert_keras.training import hf_callbacks

    return getattr(hf_callbacks, name)


def __getattr__(name):
    if name in _LAZY:
        if name not in globals():  # also reached by direct calls from this module
            globals()[name] = _LAZY[name]()
        return globals()[name]
    if name.startswith(_TF_PREFIX):  # a pickled tokenizer of another class
        import transformers

        return _tf_tokenizer_class(getattr(transformers, name[len(_TF_PREFIX) :]))
    import transformers

    try:
        return getattr(transformers, name)
    except AttributeError:
        raise AttributeError(
            f"bert_keras.compat has no `{name}`, and transformers has none either "
            "(transformers v5 removed its TensorFlow classes; bert_keras gives "
            "the BERT ones: TFBertModel, TFBertFor*, TFAutoModel*, "
            "create_optimizer, KerasMetricCallback, PushToHubCallback)."
        ) from None
