"""Exceptions raised by bert_keras.

Every error the library raises for bad user input is one of these. They subclass
the built-in `ValueError` or `OSError`, so code that already catches those keeps
working, and each message says what happened, what was expected, what was found
and how to fix it.
"""

import tensorflow as tf


class BertKerasError(Exception):
    """Base class of every exception raised by bert_keras."""


class ConfigError(BertKerasError, ValueError):
    """A `BertConfig` (or config.json) field is missing, malformed or absurd."""


class InputError(BertKerasError, ValueError):
    """Model inputs (token ids, masks, shapes) do not fit the model's config."""


class InvalidInputError(InputError, tf.errors.InvalidArgumentError):
    """Input values the model cannot take (ids past the vocabulary, left
    padding). Also TensorFlow's `InvalidArgumentError`, which transformers v4's
    TF models raised for out-of-range ids and code written for them catches."""

    def __init__(self, message):
        tf.errors.InvalidArgumentError.__init__(self, None, None, message)
        self.args = (message,)

    def __str__(self):
        return self.message

    def __reduce__(self):
        return type(self), (self.message,)


class CheckpointError(BertKerasError, ValueError):
    """A checkpoint's content does not fit the model: bad file, keys or shapes."""


class UnsafeCheckpointError(CheckpointError):
    """Loading this checkpoint could run code (pickle, remote code) and was refused."""


class CheckpointNotFoundError(BertKerasError, OSError):
    """No checkpoint could be found at the given path or Hub id."""


class TrainingError(BertKerasError, ValueError):
    """Training went wrong numerically (a NaN or infinite loss) and was stopped."""


class WorkerLostError(BertKerasError, RuntimeError):
    """Multi-worker training lost a peer (killed, or stuck past the timeout)."""
