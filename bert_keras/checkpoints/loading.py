"""Matching checkpoint keys to a model's variables, and loading them.

The rules follow transformers' `from_pretrained`:

- a checkpoint with or without the `bert.` prefix fits both the bare
  `BertModel` (no prefix) and the task models (prefix);
- legacy TF-era names `LayerNorm.gamma` / `LayerNorm.beta` read as
  `LayerNorm.weight` / `LayerNorm.bias`;
- the `position_ids` / `token_type_ids` buffers old checkpoints carry and the
  tied decoder keys are ignored, except that a tied key may stand in for a
  source key the checkpoint lacks;
- a variable listed under several keys (an alias) loads from the first of
  them the checkpoint holds, and is written under all of them;
- weights the checkpoint lacks keep their fresh initialisation and are
  reported; extra checkpoint weights are reported; shape mismatches raise
  unless `ignore_mismatched_sizes=True`.

Every shape is checked before any variable is assigned, so a failed load
never leaves a half-loaded model.
"""

import logging

from keras import ops

from bert_keras.errors import CheckpointError

logger = logging.getLogger(__name__)

_LEGACY_SUFFIXES = {
    "LayerNorm.gamma": "LayerNorm.weight",
    "LayerNorm.beta": "LayerNorm.bias",
}
# Non-trainable buffers torch checkpoints may carry; the model computes them.
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


def match_keys(model, checkpoint_shapes):
    """Pairs every model variable with a checkpoint key, without reading data.

    Args:
        model: a bert_keras model (`hf_variables()`, `hf_tied_weights`,
            `base_model_prefix`).
        checkpoint_shapes: dict `{checkpoint_key: shape}`.

    Returns:
        dict with `matches` (`{model_key: checkpoint_key}`, shapes fitting),
        `missing_keys`, `unexpected_keys` (sorted lists of names) and
        `mismatched_keys` (sorted `(model_key, checkpoint_shape, model_shape)`
        tuples, shapes in the checkpoint's torch layout).

    Example:

    >>> model = BertForSequenceClassification(config)
    >>> match_keys(model, {"bert.pooler.dense.weight": (32, 32)})["matches"]
    {'bert.pooler.dense.weight': 'bert.pooler.dense.weight'}
    """
    variables = model.hf_variables()
    tied = dict(getattr(model, "hf_tied_weights", None) or {})
    prefix = f"{model.base_model_prefix}."

    renamed = {}  # normalised name -> checkpoint key; modern names win
    for key in sorted(checkpoint_shapes):
        name = _modern_name(key)
        if name not in renamed or name == key:
            renamed[name] = key
    # A legacy name that lost to its modern twin is an extra weight.
    unexpected = sorted(set(checkpoint_shapes) - set(renamed.values()))
    # Exact names first, so a prefixed and an unprefixed copy never collide.
    claimed = {name: key for name, key in renamed.items() if name in variables}
    tied_stand_ins = {}
    for name, key in renamed.items():
        if name in variables:
            continue
        for candidate in (name, prefix + name, name.removeprefix(prefix)):
            if candidate in variables and candidate not in claimed:
                claimed[candidate] = key
                break
            if candidate in tied:
                tied_stand_ins.setdefault(tied[candidate], key)
                break
        else:
            if not name.endswith(_BUFFER_SUFFIXES):
                unexpected.append(key)
    for source, key in tied_stand_ins.items():
        if source in variables and source not in claimed:
            claimed[source] = key

    matches, mismatched, loaded = {}, [], set()
    # In hf_variables order: when several keys name one variable (an alias,
    # e.g. a bias transformers stores twice), the first one present loads it.
    for model_key, (variable, transpose) in variables.items():
        if model_key not in claimed:
            continue
        key = claimed[model_key]
        model_shape = tuple(variable.shape)
        if transpose:
            model_shape = model_shape[::-1]
        checkpoint_shape = tuple(checkpoint_shapes[key])
        if checkpoint_shape != model_shape:
            mismatched.append((model_key, checkpoint_shape, model_shape))
        elif id(variable) not in loaded:
            matches[model_key] = key
            loaded.add(id(variable))
    missing = [
        model_key
        for model_key, (variable, _) in variables.items()
        if model_key not in claimed and id(variable) not in loaded
    ]
    return {
        "matches": matches,
        "missing_keys": sorted(missing),
        "unexpected_keys": sorted(unexpected),
        "mismatched_keys": sorted(mismatched),
    }


def load_weights(model, checkpoint, source, *, ignore_mismatched_sizes=False):
    """Assigns a checkpoint's tensors to the model's variables.

    Args:
        model: a bert_keras model.
        checkpoint: an open `bert_keras.checkpoints.reading.Checkpoint`.
        source: str, the Hub id or directory, used in messages.
        ignore_mismatched_sizes: bool; if True, variables whose checkpoint
            shape differs keep their fresh initialisation and are reported
            instead of raising.

    Returns:
        dict `{"missing_keys", "unexpected_keys", "mismatched_keys",
        "error_msgs"}` as transformers' `output_loading_info` gives.

    Raises:
        CheckpointError: a shape differs and `ignore_mismatched_sizes` is
            False. Nothing has been assigned then.

    Example:

    >>> from bert_keras.checkpoints.reading import Checkpoint, find_weight_files
    >>> _ = model.save_pretrained("out/")
    >>> with Checkpoint(find_weight_files("out/")) as checkpoint:
    ...     info = load_weights(model, checkpoint, "out/")
    >>> info["missing_keys"], info["unexpected_keys"]
    ([], [])
    """
    plan = match_keys(model, checkpoint.shapes)
    model_name = type(model).__name__
    if plan["mismatched_keys"] and not ignore_mismatched_sizes:
        details = "\n".join(
            f"- {key}: checkpoint shape {ckpt}, model shape {shape}"
            for key, ckpt, shape in plan["mismatched_keys"]
        )
        raise CheckpointError(
            f"Error(s) in loading weights for {model_name} from {source}: size "
            f"mismatch. Expected the checkpoint shapes to fit the model built "
            f"from its config (shapes in torch layout):\n{details}\n"
            "To fix, pass config overrides that match the checkpoint, or "
            "`ignore_mismatched_sizes=True` to keep these weights freshly "
            "initialised (e.g. a new classifier with a different num_labels). "
            f"Received: {len(plan['mismatched_keys'])} mismatched key(s)"
        )
    variables = model.hf_variables()
    for model_key, key in plan["matches"].items():
        variable, transpose = variables[model_key]
        value = checkpoint.read(key)
        if transpose:
            value = value.T
        variable.assign(ops.cast(value, variable.dtype))
    _log_report(model_name, source, plan)
    return {
        "missing_keys": plan["missing_keys"],
        "unexpected_keys": plan["unexpected_keys"],
        "mismatched_keys": plan["mismatched_keys"],
        "error_msgs": [],
    }


def _modern_name(key):
    for old, new in _LEGACY_SUFFIXES.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def _log_report(model_name, source, plan):
    train_hint = (
        "You should probably TRAIN this model on a down-stream task to be able "
        "to use it for predictions and inference."
    )
    if plan["unexpected_keys"]:
        logger.warning(
            f"Some weights of the model checkpoint at {source} were not used when "
            f"initializing {model_name}: {plan['unexpected_keys']}\n"
            f"- This IS expected if you are initializing {model_name} from the "
            "checkpoint of a model trained on another task or with another "
            "architecture (e.g. initializing a BertForSequenceClassification "
            "model from a BertForPreTraining model).\n"
            f"- This IS NOT expected if you are initializing {model_name} from "
            "the checkpoint of a model that you expect to be exactly identical."
        )
    if plan["missing_keys"]:
        logger.warning(
            f"Some weights of {model_name} were not initialized from the model "
            f"checkpoint at {source} and are newly initialized: "
            f"{plan['missing_keys']}\n{train_hint}"
        )
    if plan["mismatched_keys"]:
        details = "\n".join(
            f"- {key}: found shape {ckpt} in the checkpoint and {shape} in the "
            "model instantiated"
            for key, ckpt, shape in plan["mismatched_keys"]
        )
        logger.warning(
            f"Some weights of {model_name} were not initialized from the model "
            f"checkpoint at {source} and are newly initialized because the "
            f"shapes did not match:\n{details}\n{train_hint}"
        )
    if not (plan["missing_keys"] or plan["mismatched_keys"]):
        logger.info(
            f"All the weights of {model_name} were initialized from the model "
            f"checkpoint at {source}.\nIf your task is similar to the task the "
            "model of the checkpoint was trained on, you can already use "
            f"{model_name} for predictions without further training."
        )
