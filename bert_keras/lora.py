"""LoRA on any bert_keras model, with adapters in Hugging Face PEFT's format.

`enable_lora` puts Keras 3's own LoRA (`keras.layers.Dense.enable_lora`) on
the Dense layers chosen by their Hugging Face module names, as PEFT's
`target_modules` chooses them, and freezes every other weight except the
task head PEFT keeps trainable (`modules_to_save`). `save_lora_adapter` writes
`adapter_config.json` and `adapter_model.safetensors` under PEFT's key names,
which `peft.PeftModel.from_pretrained` opens on the transformers model;
`load_lora_adapter` reads such a directory (written by PEFT or by us) back;
`merge_lora` folds the adapters into the kernels, after which
`save_pretrained` writes an ordinary checkpoint.

The two use the same formula: a LoRA layer computes
`x W + b + (alpha / rank) x A B`, where bert_keras' `A` (in, rank) and
`B` (rank, out) are PEFT's `lora_A.weight` (rank, in) and `lora_B.weight`
(out, rank) transposed. See docs/lora.md.
"""

import dataclasses
import json
import math
import os
import re

import keras
import numpy as np
import safetensors.numpy
import tensorflow as tf
from keras import ops

from bert_keras import keras_private
from bert_keras.checkpoints import writing
from bert_keras.checkpoints.keys import KEY_MAPS
from bert_keras.checkpoints.keys import TRANSPOSED
from bert_keras.errors import CheckpointError
from bert_keras.errors import CheckpointNotFoundError
from bert_keras.errors import ConfigError

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
# PEFT's state-dict keys are the base model's, under the PeftModel wrapper's.
PEFT_PREFIX = "base_model.model."
LORA_A_SUFFIX = ".lora_A.weight"
LORA_B_SUFFIX = ".lora_B.weight"
# PEFT's `TaskType` of each transformers class (the PeftModel subclass it picks).
TASK_TYPES = {
    "BertModel": "FEATURE_EXTRACTION",
    "BertForSequenceClassification": "SEQ_CLS",
    "BertForTokenClassification": "TOKEN_CLS",
    "BertForQuestionAnswering": "QUESTION_ANS",
}
# The modules a PEFT task model adds to `modules_to_save` (trained and saved
# in full): its head, freshly initialised on a pretrained encoder.
TASK_MODULES_TO_SAVE = {
    "SEQ_CLS": ("classifier", "score"),
    "TOKEN_CLS": ("classifier", "score"),
    "QUESTION_ANS": ("qa_outputs",),
}
# adapter_config.json fields whose non-default values change the model in a
# way bert_keras does not reproduce: {field: the value it supports}.
UNSUPPORTED_OPTIONS = {
    "use_dora": False,
    "use_rslora": False,
    "lora_bias": False,
    "bias": "none",
    "fan_in_fan_out": False,
    "layers_to_transform": None,
    "exclude_modules": None,
    "trainable_token_indices": None,
    "layer_replication": None,
    "target_parameters": None,
    "rank_pattern": {},
    "alpha_pattern": {},
}
# Checked on load only: newer PEFT options, written by PEFT itself.
CHECKED_OPTIONS = {
    **UNSUPPORTED_OPTIONS,
    "alora_invocation_tokens": None,
    "use_qalora": False,
}
_STATE_ATTRIBUTE = "_bert_keras_lora"


@dataclasses.dataclass
class LoraState:
    """What `enable_lora` did to a model, kept on it for saving and merging."""

    rank: int
    alpha: float
    dropout: float
    target_modules: object  # tuple of names, or one regex string (PEFT's)
    modules_to_save: tuple  # as written to adapter_config.json
    task_type: object  # PEFT's TaskType name, or None
    layers: dict  # {HF module name: keras Dense with LoRA}, in key order
    saved_keys: tuple  # HF keys of the modules_to_save weights
    previous_trainable: list  # [(variable, trainable)] before enable_lora


def lora_state(model):
    """The `LoraState` of a model that `enable_lora` changed, else None.

    Args:
        model: a bert_keras model.

    Returns:
        `LoraState` (rank, alpha, the LoRA layers by HF module name, ...) or
        None when the model has no adapters.

    Example:

    >>> classifier = BertForSequenceClassification(config)
    >>> lora_state(classifier) is None
    True
    >>> _ = enable_lora(classifier, rank=4, alpha=8)
    >>> lora_state(classifier).rank, lora_state(classifier).alpha
    (4, 8)
    """
    return getattr(model, _STATE_ATTRIBUTE, None)


def enable_lora(
    model,
    rank,
    alpha=None,
    target_modules=("query", "value"),
    dropout=0.0,
    modules_to_save=None,
):
    """Adds LoRA adapters to `model`'s Dense layers and freezes the rest, in place.

    A Dense layer gets an adapter when its Hugging Face module name matches
    `target_modules` as in PEFT: a name in the list equals the module name
    or its end after a dot (`"query"`, `"output.dense"`), or one string is a
    regex that must match the whole name. Modules inside `modules_to_save`
    get none. Afterwards only the adapters and the `modules_to_save` weights
    are trainable (`compile()` again before `fit`); the adapters start as
    PEFT's do (`A` Kaiming-uniform, `B` zero), so outputs are unchanged.

    Args:
        model: a bert_keras model without LoRA.
        rank: int > 0, the adapters' rank (PEFT's `r`).
        alpha: number > 0 or None (= `rank`); the adapters' output is scaled
            by `alpha / rank`, as in PEFT (`lora_alpha`) and Keras.
        target_modules: list of HF module names, or one regex string.
        dropout: float in [0, 1), PEFT's `lora_dropout`: in training, the
            adapter sees `dropout(x)` (the layer's own term sees `x`).
        modules_to_save: list of HF module names kept trainable in full and
            saved in the adapter, or None for PEFT's choice for the task:
            `classifier` for sequence and token classification, `qa_outputs`
            for question answering, nothing for the other classes.

    Returns:
        list of the HF module names that got an adapter.

    Example:

    >>> classifier = BertForSequenceClassification(config)
    >>> enable_lora(classifier, rank=4, alpha=8)[:2]
    ['bert.encoder.layer.0.attention.self.query',
     'bert.encoder.layer.0.attention.self.value']
    >>> [variable.name for variable in classifier.trainable_weights][-4:]
    ['lora_kernel_a', 'lora_kernel_b', 'kernel', 'bias']
    """
    task_type = TASK_TYPES.get(_architecture(model))
    if modules_to_save is not None:
        requested = modules_to_save
        modules_to_save = _check_names("modules_to_save", modules_to_save, regex=False)
        variables = model.hf_variables()
        for name in modules_to_save:
            if not any(
                _in_modules_to_save(_module_of(key), (name,)) for key in variables
            ):
                raise ConfigError(
                    f"No module of {type(model).__name__} matches "
                    f"modules_to_save entry {name!r}. Expected a Hugging Face "
                    "module name such as 'classifier' or 'pooler.dense'. "
                    f"Received: modules_to_save={requested!r}"
                )
    return _enable(
        model,
        rank=rank,
        alpha=alpha,
        target_modules=target_modules,
        dropout=dropout,
        modules_to_save=modules_to_save,
        task_type=task_type,
    )


def _enable(model, *, rank, alpha, target_modules, dropout, modules_to_save, task_type):
    rank, alpha = _check_rank_and_alpha(rank, alpha)
    dropout = _check_dropout(dropout)
    requested_targets = target_modules
    target_modules = _check_names("target_modules", target_modules)
    _check_no_lora(model)
    # PEFT's task models always add their head to the user's list.
    saved_names = tuple(
        dict.fromkeys(
            tuple(modules_to_save or ()) + TASK_MODULES_TO_SAVE.get(task_type, ())
        )
    )
    variables = model.hf_variables()
    linears = _linear_layers(model, variables)
    saved_keys = tuple(
        key for key in variables if _in_modules_to_save(_module_of(key), saved_names)
    )
    targets = [
        module
        for module in linears
        if _matches_target(module, target_modules)
        and not _in_modules_to_save(module, saved_names)
    ]
    if not targets:
        names = sorted({module.split(".")[-1] for module in linears})
        raise ConfigError(
            f"No Dense layer of {type(model).__name__} matches target_modules. "
            "Expected Hugging Face module names (or their last parts) such as "
            f"{names} or 'attention.output.dense'. Pass other target_modules. "
            f"Received: target_modules={requested_targets!r}"
        )
    previous_trainable = [(variable, variable.trainable) for variable in model.weights]
    for module in targets:
        dense = linears[module]
        dense.enable_lora(
            rank,
            lora_alpha=alpha,
            # PEFT's A: kaiming_uniform(a=sqrt(5)), U(+-1/sqrt(fan_in)).
            a_initializer=keras.initializers.VarianceScaling(
                scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
            ),
            b_initializer="zeros",
        )
        if dropout:
            _add_lora_dropout(dense, dropout)
    trainable = {id(variables[key][0]) for key in saved_keys}
    for module in targets:
        trainable.add(id(linears[module].lora_kernel_a))
        trainable.add(id(linears[module].lora_kernel_b))
    for variable in model.weights:
        variable.trainable = id(variable) in trainable
    state = LoraState(
        rank=rank,
        alpha=alpha,
        dropout=dropout,
        target_modules=target_modules,
        modules_to_save=saved_names,
        task_type=task_type,
        layers={module: linears[module] for module in targets},
        saved_keys=saved_keys,
        previous_trainable=previous_trainable,
    )
    # Outside Keras' tracking, which is locked on a built model.
    object.__setattr__(model, _STATE_ATTRIBUTE, state)
    return list(targets)


def save_lora_adapter(model, directory, base_model_name_or_path=None):
    """Writes the adapters as a PEFT adapter directory, atomically.

    `adapter_model.safetensors` holds each adapter's `lora_A.weight`
    (rank, in) and `lora_B.weight` (out, rank) and the `modules_to_save`
    weights, all float32 under PEFT's keys
    (`base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight`,
    `base_model.model.classifier.weight`); `adapter_config.json` is PEFT's
    `LoraConfig`. `peft.PeftModel.from_pretrained(transformers_model,
    directory)` gives this model's outputs.

    Args:
        model: a model on which `enable_lora` or `load_lora_adapter` ran.
        directory: str or path; created if missing.
        base_model_name_or_path: str or None, recorded in the config (PEFT's
            `AutoPeftModel` classes load the base model from it).

    Returns:
        list of the two paths written.

    Example:

    >>> classifier = BertForSequenceClassification(config)
    >>> _ = enable_lora(classifier, rank=4)
    >>> save_lora_adapter(classifier, "adapter/", "google-bert/bert-base-uncased")
    ['adapter/adapter_config.json', 'adapter/adapter_model.safetensors']
    """
    state = _require_state(model, "save_lora_adapter")
    tensors = {}
    for module, dense in state.layers.items():
        tensors[PEFT_PREFIX + module + LORA_A_SUFFIX] = _numpy(dense.lora_kernel_a).T
        tensors[PEFT_PREFIX + module + LORA_B_SUFFIX] = _numpy(dense.lora_kernel_b).T
    variables = model.hf_variables()
    for key in state.saved_keys:
        variable, transposed = variables[key]
        value = _numpy(variable)
        tensors[PEFT_PREFIX + key] = value.T if transposed else value
    config = _adapter_config(model, state, base_model_name_or_path)
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    writers = {
        ADAPTER_CONFIG_NAME: writing.text_writer(
            json.dumps(config, indent=2, sort_keys=True) + "\n"
        ),
        ADAPTER_WEIGHTS_NAME: writing.safetensors_writer(tensors),
    }
    with writing.directory_lock(directory):
        return writing.write_atomically(directory, writers)


def load_lora_adapter(model, directory):
    """Enables LoRA on `model` from a PEFT adapter directory and loads its weights.

    The directory may come from `peft` (`PeftModel.save_pretrained`) or from
    `save_lora_adapter`. Its `adapter_config.json` gives the rank, alpha,
    target modules and modules to save; every adapter and saved weight must
    fit `model` (same architecture and sizes as the adapter's base model).

    Args:
        model: a bert_keras model without LoRA, holding the base weights.
        directory: str or path with adapter_config.json and
            adapter_model.safetensors.

    Returns:
        list of the HF module names that got an adapter.

    Example:

    >>> trained = BertForSequenceClassification(config)
    >>> _ = enable_lora(trained, rank=4)
    >>> _ = save_lora_adapter(trained, "adapter/")
    >>> base = BertForSequenceClassification(config)
    >>> len(load_lora_adapter(base, "adapter/"))
    4
    """
    _check_no_lora(model)
    directory = os.fspath(directory)
    config_path = os.path.join(directory, ADAPTER_CONFIG_NAME)
    weights_path = os.path.join(directory, ADAPTER_WEIGHTS_NAME)
    for path in (config_path, weights_path):
        if not os.path.isfile(path):
            raise CheckpointNotFoundError(
                f"No PEFT adapter file at {path}. Expected a directory holding "
                f"{ADAPTER_CONFIG_NAME} and {ADAPTER_WEIGHTS_NAME} (PEFT's "
                "`save_pretrained` or bert_keras' `save_lora_adapter` writes "
                "them; pickled adapter_model.bin files are not read). "
                f"Received: directory={directory!r}"
            )
    with writing.directory_lock(directory, shared=True):
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
        tensors = safetensors.numpy.load_file(weights_path)
    options = _check_adapter_config(model, config, directory)
    tensors = {
        key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key: value
        for key, value in tensors.items()
    }
    _check_adapter_keys(model, options, tensors, directory)
    modules = _enable(model, **options)
    state = lora_state(model)
    for module, dense in state.layers.items():
        dense.lora_kernel_a.assign(tensors[module + LORA_A_SUFFIX].T)
        dense.lora_kernel_b.assign(tensors[module + LORA_B_SUFFIX].T)
    variables = model.hf_variables()
    for key in state.saved_keys:
        if key in tensors:
            variable, transposed = variables[key]
            value = tensors[key].T if transposed else tensors[key]
            variable.assign(keras.ops.cast(value, variable.dtype))
    return modules


def merge_lora(model):
    """Folds every adapter into its kernel and removes LoRA from `model`.

    Each kernel becomes `W + (alpha / rank) A B`; the adapters' variables
    are gone and every weight's `trainable` flag is back to what it was
    before `enable_lora`. `save_pretrained` then writes an ordinary
    checkpoint (transformers loads it with no missing keys).

    Args:
        model: a model on which `enable_lora` or `load_lora_adapter` ran.

    Returns:
        list of the HF module names whose adapters were merged.

    Example:

    >>> classifier = BertForSequenceClassification(config)
    >>> _ = enable_lora(classifier, rank=4, target_modules=["query"])
    >>> merge_lora(classifier)
    ['bert.encoder.layer.0.attention.self.query',
     'bert.encoder.layer.1.attention.self.query']
    >>> sorted(classifier.save_pretrained("merged/"))
    ['merged/config.json', 'merged/model.safetensors']
    """
    state = _require_state(model, "merge_lora")
    for dense in state.layers.values():
        if state.dropout:
            del dense.call  # the class's own again
        keras_private.merge_dense_lora(dense)
    for variable, trainable in state.previous_trainable:
        variable.trainable = trainable
    object.__setattr__(model, _STATE_ATTRIBUTE, None)
    return list(state.layers)


# --- Helpers -----------------------------------------------------------------


def _architecture(model):
    architecture = getattr(model, "hf_architecture", None)
    if architecture not in KEY_MAPS:
        raise ConfigError(
            "LoRA needs a bert_keras model (BertModel, BertFor...). Expected a "
            f"model whose hf_architecture is one of {sorted(KEY_MAPS)}. "
            f"Received: {type(model).__name__}"
        )
    return architecture


def _check_rank_and_alpha(rank, alpha):
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank <= 0:
        raise ConfigError(
            "The LoRA rank must be a positive integer. Expected e.g. rank=8. "
            f"Received: rank={rank!r}"
        )
    if alpha is None:
        alpha = int(rank)
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float, np.integer, np.floating))
        or not math.isfinite(alpha)
        or alpha <= 0
    ):
        raise ConfigError(
            "The LoRA alpha must be a positive number (the adapters are scaled "
            "by alpha / rank). Expected e.g. alpha=16, or None for alpha=rank. "
            f"Received: alpha={alpha!r}"
        )
    # Plain Python numbers: they go to adapter_config.json.
    alpha = int(alpha) if isinstance(alpha, (int, np.integer)) else float(alpha)
    return int(rank), alpha


def _check_dropout(dropout):
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, (int, float, np.integer, np.floating))
        or not 0 <= dropout < 1
    ):
        raise ConfigError(
            "The LoRA dropout rate must be a number in [0, 1). Expected e.g. "
            f"dropout=0.1. Received: dropout={dropout!r}"
        )
    return float(dropout)


def _add_lora_dropout(dense, rate):
    """Makes the LoRA `dense` drop its adapter's input in training, as PEFT does.

    PEFT computes `x W + b + s dropout(x) A B`; Keras' LoRA Dense has no
    dropout, so in training this call replaces it (inference is unchanged).
    The instance attribute shadows the class's `call`, as Keras' own `build`
    wrapper does; `del dense.call` undoes it.
    """
    plain_call = dense.call

    def call(inputs, training=None):
        if not training:
            return plain_call(inputs, training=training)
        scale = dense.lora_alpha / dense.lora_rank
        # tf.nn.dropout needs no tracked seed variable, so it works under fit,
        # XLA and distribution strategies.
        dropped = tf.nn.dropout(inputs, rate=rate)
        # `kernel` is W + s A B (Keras merges it): x W + s x A B, then the
        # adapter term's x swapped for dropout(x).
        adapter = ops.matmul(
            ops.matmul(dropped - inputs, ops.cast(dense.lora_kernel_a, inputs.dtype)),
            ops.cast(dense.lora_kernel_b, inputs.dtype),
        )
        outputs = (
            ops.matmul(inputs, dense.kernel) + ops.cast(scale, inputs.dtype) * adapter
        )
        if dense.bias is not None:
            outputs = outputs + ops.cast(dense.bias, outputs.dtype)
        if dense.activation is not None:
            outputs = dense.activation(outputs)
        return outputs

    dense.call = call


def _check_names(argument, names, regex=True):
    """A tuple of module names, or (when `regex`) one regex string as is."""
    if isinstance(names, str):
        if regex:
            try:
                re.compile(names)
            except re.error as error:
                raise ConfigError(
                    f"`{argument}` as a string is a regex over module names, "
                    f"and this one does not compile ({error}). Expected a "
                    "valid regex or a list of names. "
                    f"Received: {argument}={names!r}"
                ) from None
            return names
        names = (names,)
    try:
        names = tuple(names)
    except TypeError:
        names = None
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ConfigError(
            f"`{argument}` must name Hugging Face modules. Expected a non-empty "
            "list of strings such as ['query', 'value']. "
            f"Received: {argument}={names!r}"
        )
    return names


def _module_of(key):
    return key.rsplit(".", 1)[0]


def _matches_target(module, target_modules):
    """PEFT's `target_modules` rule for one module name."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, module) is not None
    return any(module == name or module.endswith("." + name) for name in target_modules)


def _in_modules_to_save(module, names):
    """Whether `module` is (inside) a module PEFT's `modules_to_save` wraps.

    PEFT wraps every module whose name ends with an entry (a plain suffix);
    a module inside one is then trained and saved in full too.
    """
    parts = module.split(".")
    prefixes = [".".join(parts[:end]) for end in range(1, len(parts) + 1)]
    return any(prefix.endswith(name) for prefix in prefixes for name in names)


def _linear_layers(model, variables):
    """`{HF module name: Dense}` for every torch `Linear` of the model."""
    by_kernel = {
        id(layer.kernel): layer
        for layer in keras_private.all_layers(model)
        if isinstance(layer, keras.layers.Dense) and not layer.lora_enabled
    }
    linears = {}
    for key, (variable, transposed) in variables.items():
        if key.endswith(".weight") and transposed == TRANSPOSED:
            dense = by_kernel.get(id(variable))
            if dense is None:
                raise ConfigError(
                    f"The Dense layer of {key!r} already has LoRA (from Keras' "
                    "own `enable_lora` or a model saved with it). Expected "
                    "plain Dense layers; merge the adapters first. "
                    f"Received: {type(model).__name__}"
                )
            linears[_module_of(key)] = dense
    return linears


def _check_no_lora(model):
    if lora_state(model) is not None:
        raise ConfigError(
            "LoRA is already enabled on this model. Expected a model without "
            "adapters; call `merge_lora(model)` first, or start from the base "
            f"model. Received: {type(model).__name__} with LoRA rank "
            f"{lora_state(model).rank}"
        )


def _require_state(model, function):
    state = lora_state(model)
    if state is None:
        raise ConfigError(
            f"`{function}` needs a model with LoRA adapters. Expected a model "
            "on which `enable_lora` or `load_lora_adapter` ran (and no "
            f"`merge_lora` since). Received: {type(model).__name__} without LoRA"
        )
    return state


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def _adapter_config(model, state, base_model_name_or_path):
    """PEFT's `LoraConfig` fields for `state` (PEFT fills the others' defaults)."""
    target_modules = state.target_modules
    if not isinstance(target_modules, str):
        target_modules = list(target_modules)
    config = {
        "peft_type": "LORA",
        "task_type": state.task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "revision": None,
        "inference_mode": True,
        "r": state.rank,
        "lora_alpha": state.alpha,
        "lora_dropout": state.dropout,
        "target_modules": target_modules,
        "modules_to_save": list(state.modules_to_save) or None,
        "init_lora_weights": True,
        **UNSUPPORTED_OPTIONS,
    }
    if state.task_type is None:
        # Read by `AutoPeftModel` to pick the base class.
        config["auto_mapping"] = {
            "base_model_class": model.hf_architecture,
            "parent_library": "transformers.models.bert.modeling_bert",
        }
    return config


def _check_adapter_config(model, config, directory):
    """`_enable`'s arguments from adapter_config.json, or an error."""

    def error(message, received):
        return CheckpointError(
            f"The PEFT adapter in {directory} {message} Received: {received}"
        )

    if config.get("peft_type") != "LORA":
        raise error(
            "is not a LoRA adapter. Expected peft_type 'LORA'; other PEFT "
            "methods are not supported.",
            f"peft_type={config.get('peft_type')!r}",
        )
    for field, supported in CHECKED_OPTIONS.items():
        value = config.get(field, supported)
        if value != supported and not (supported is None and not value):
            raise error(
                f"uses {field}={value!r}, which bert_keras does not reproduce. "
                f"Expected {field}={supported!r} (docs/lora.md lists what is "
                "supported).",
                f"{field}={value!r}",
            )
    architecture = _architecture(model)
    task_type = config.get("task_type")
    ours = TASK_TYPES.get(architecture)
    if task_type is not None and task_type != ours:
        raise error(
            f"was trained for PEFT task {task_type!r}, not for "
            f"{architecture} (task {ours!r}). Expected a model of the adapter's "
            "architecture, e.g. BertForSequenceClassification for SEQ_CLS.",
            f"task_type={task_type!r}, model={type(model).__name__}",
        )
    base_class = (config.get("auto_mapping") or {}).get("base_model_class")
    if base_class is not None and base_class != architecture:
        raise error(
            f"was trained on {base_class}, not {architecture}. Expected a "
            f"{base_class} model.",
            f"auto_mapping.base_model_class={base_class!r}",
        )
    target_modules = config.get("target_modules")
    modules_to_save = config.get("modules_to_save") or ()
    if isinstance(modules_to_save, str):
        modules_to_save = (modules_to_save,)
    dropout = config.get("lora_dropout", 0.0) or 0.0
    try:
        dropout = _check_dropout(dropout)
        rank, alpha = _check_rank_and_alpha(
            config.get("r"), config.get("lora_alpha", 8)
        )
        target_modules = _check_names("target_modules", target_modules)
    except ConfigError as exception:
        raise error(f"has a bad LoRA config: {exception}", config) from None
    return {
        "rank": rank,
        "alpha": alpha,
        "target_modules": target_modules,
        "dropout": dropout,
        "modules_to_save": tuple(modules_to_save) or None,
        "task_type": task_type,
    }


def _check_adapter_keys(model, options, tensors, directory):
    """Raises CheckpointError unless the adapter's weights fit `model` exactly."""
    variables = model.hf_variables()
    linears = _linear_layers(model, variables)
    saved_names = tuple(options["modules_to_save"] or ()) + TASK_MODULES_TO_SAVE.get(
        options["task_type"], ()
    )
    expected = {}
    for module, dense in linears.items():
        if _matches_target(module, options["target_modules"]) and not (
            _in_modules_to_save(module, saved_names)
        ):
            in_dim, out_dim = dense.kernel.shape
            expected[module + LORA_A_SUFFIX] = (options["rank"], in_dim)
            expected[module + LORA_B_SUFFIX] = (out_dim, options["rank"])
    saved = {
        key for key in variables if _in_modules_to_save(_module_of(key), saved_names)
    }
    for key in saved & set(tensors):
        variable, transposed = variables[key]
        shape = tuple(variable.shape)
        expected[key] = shape[::-1] if transposed else shape
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = sorted(
        f"{key}: adapter {tuple(tensors[key].shape)}, model {expected[key]}"
        for key in set(expected) & set(tensors)
        if tuple(tensors[key].shape) != tuple(expected[key])
    )
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"The PEFT adapter in {directory} does not fit "
            f"{type(model).__name__}: its weights are for another architecture "
            "or other sizes. Expected one lora_A/lora_B pair (torch layout) per "
            "targeted module of this model. Load it onto the base model it was "
            "trained on (same class and config). Received: "
            f"missing={missing[:5]}, unexpected={unexpected[:5]}, "
            f"mismatched={mismatched[:5]}"
        )
