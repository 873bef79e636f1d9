"""What every pipeline shares: a model, its tokenizer, padded batched calls.

A pipeline turns raw text into task answers in three steps, as transformers'
pipelines do: tokenize, run the model on right-padded int32 batches
(`Pipeline.forward`), and turn logits into dicts. Only the middle step
touches Keras; the others are plain Python over numpy arrays.
"""

import keras
import numpy as np

from bert_keras.errors import ConfigError
from bert_keras.errors import InputError

MODEL_INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")


def softmax(logits, axis=-1):
    """Softmax over `axis`, in float64 (scores are compared to 1e-4).

    Example:

    >>> softmax(np.array([0.0, np.log(3.0)])).round(2).tolist()
    [0.25, 0.75]
    """
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def sigmoid(logits):
    """Elementwise logistic function, in float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


class Pipeline:
    """Base class of the bert_keras pipelines.

    Subclasses set `task`, `model_classes` (the bert_keras class names whose
    outputs they read) and implement `__call__`. Keyword arguments given to
    the constructor become defaults of every call, as in transformers.

    Args:
        model: a bert_keras model of one of `model_classes`.
        tokenizer: its transformers tokenizer (a fast one, for offsets).
        batch_size: int, texts (or windows) per model call. Defaults to 8.
        **defaults: call options used when a call does not give them.

    Example:

    >>> from bert_keras.pipelines import pipeline
    >>> embed = pipeline("feature-extraction", model=path, pooling="cls")
    >>> embed.defaults
    {'pooling': 'cls'}
    """

    task = None
    model_classes = ()
    # Call options a subclass accepts; anything else is refused by name.
    call_options = ()

    def __init__(self, model, tokenizer, batch_size=8, **defaults):
        class_name = type(model).__name__
        lineage = {cls.__name__ for cls in type(model).__mro__}
        if self.model_classes and not lineage & set(self.model_classes):
            raise ConfigError(
                f"The {self.task!r} pipeline reads the outputs of "
                f"{', '.join(self.model_classes)}. Load one of those classes "
                f"(e.g. bk.{self.model_classes[0]}.from_pretrained(path)). "
                f"Received: model of class {class_name}"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(
                "`batch_size` must be a positive int (texts per model call). "
                f"Received: batch_size={batch_size!r}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.defaults = self._check_options(defaults)

    def _check_options(self, options):
        unknown = sorted(set(options) - set(self.call_options))
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {unknown} for the {self.task!r} pipeline. "
                f"Expected some of {sorted(self.call_options)}. "
                f"Received: {', '.join(f'{name}=...' for name in unknown)}"
            )
        return dict(options)

    def options(self, call_options):
        """Constructor defaults overridden by this call's options."""
        return {**self.defaults, **self._check_options(call_options)}

    @property
    def config(self):
        return self.model.config

    def forward(self, features, outputs):
        """Runs the model over tokenized examples in right-padded batches.

        Args:
            features: list of dicts holding (unpadded) lists of token ids
                under `input_ids`, and optionally `token_type_ids` and
                `attention_mask`.
            outputs: dict `{name: candidate output keys}`; the first key
                present in the model's outputs is read, so
                `{"logits": ("logits", "prediction_logits")}` serves both the
                masked-LM and the pretraining model.

        Returns:
            list (one per example) of dicts `{name: numpy array}`; token-level
            arrays keep the batch's padding (cut them with the example's
            length).

        Example:

        >>> from bert_keras.pipelines import pipeline
        >>> embed = pipeline("feature-extraction", model=path)
        >>> rows = embed.forward(
        ...     [{"input_ids": [101, 102]}, {"input_ids": [101, 2023, 102]}],
        ...     {"states": ("last_hidden_state",)},
        ... )
        >>> [row["states"].shape for row in rows]
        [(3, 384), (3, 384)]
        """
        rows = []
        for begin in range(0, len(features), self.batch_size):
            chunk = features[begin : begin + self.batch_size]
            results = self.model(pad_batch(chunk, self.tokenizer), training=False)
            values = {
                name: keras.ops.convert_to_numpy(
                    read_output(results, keys, type(self.model).__name__)
                )
                for name, keys in outputs.items()
            }
            for row in range(len(chunk)):
                rows.append({name: value[row] for name, value in values.items()})
        return rows


def read_output(outputs, names, class_name):
    """The first of `names` found in a model's output mapping; else raises."""
    for name in names:
        if name in outputs:
            return outputs[name]
    raise ConfigError(
        f"The model's outputs hold none of {list(names)}, which this pipeline "
        f"reads. Expected a model whose outputs include one of them. "
        f"Received: {class_name} with outputs {sorted(outputs)}"
    )


def pad_batch(features, tokenizer):
    """Right-pads lists of ids into `(batch, seq)` int32 arrays.

    Example:

    >>> pad_batch([{"input_ids": [101, 102]}, {"input_ids": [101, 7, 102]}],
    ...           tokenizer)["attention_mask"].tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    length = max(len(feature["input_ids"]) for feature in features)
    pad_id = tokenizer.pad_token_id or 0
    batch = {
        name: np.zeros((len(features), length), np.int32) for name in MODEL_INPUT_NAMES
    }
    batch["input_ids"][:] = pad_id
    for row, feature in enumerate(features):
        size = len(feature["input_ids"])
        batch["input_ids"][row, :size] = feature["input_ids"]
        if feature.get("token_type_ids") is not None:
            batch["token_type_ids"][row, :size] = feature["token_type_ids"]
        mask = feature.get("attention_mask")
        batch["attention_mask"][row, :size] = 1 if mask is None else mask
    return batch


def split_features(encoding):
    """A tokenizer's batch output (lists) as one dict per example."""
    names = [name for name in MODEL_INPUT_NAMES if name in encoding]
    return [
        {name: encoding[name][row] for name in names}
        for row in range(len(encoding["input_ids"]))
    ]


def as_text_list(inputs, task):
    """`(texts, was_single)`: one string becomes a list of one."""
    if isinstance(inputs, str):
        return [inputs], True
    if isinstance(inputs, (list, tuple)) and all(isinstance(t, str) for t in inputs):
        return list(inputs), False
    raise InputError(
        f"The {task!r} pipeline takes a string or a list of strings. "
        f"Received: {type(inputs).__name__} {str(inputs)[:80]!r}"
    )
