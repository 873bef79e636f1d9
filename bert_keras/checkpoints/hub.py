"""Hugging Face checkpoints: `from_pretrained`, `save_pretrained`, `push_to_hub`.

A checkpoint is a directory (local, or a Hub snapshot in the HF cache) holding
`config.json` and safetensors weights under transformers' state-dict keys, so
the same directory opens in PyTorch with `transformers.BertModel` and friends.
"""

import contextlib
import copy
import logging
import os
import tempfile

import keras
from huggingface_hub import HfApi
from huggingface_hub import ModelCard

from bert_keras.checkpoints import legacy
from bert_keras.checkpoints import reading
from bert_keras.checkpoints import writing
from bert_keras.checkpoints.download import find_weights
from bert_keras.checkpoints.download import resolve
from bert_keras.checkpoints.files import CONFIG_NAME
from bert_keras.checkpoints.files import read_json
from bert_keras.checkpoints.loading import load_weights
from bert_keras.checkpoints.model_card import model_card
from bert_keras.config import as_config
from bert_keras.config import bert_config_class
from bert_keras.config import validate_config
from bert_keras.errors import CheckpointError
from bert_keras.errors import CheckpointNotFoundError
from bert_keras.errors import ConfigError
from bert_keras.errors import UnsafeCheckpointError
from bert_keras.kernels import DEFAULT_KERNELS

logger = logging.getLogger(__name__)


def load_pretrained(
    cls,
    name_or_path,
    *,
    config=None,
    cache_dir=None,
    revision=None,
    token=None,
    local_files_only=False,
    ignore_mismatched_sizes=False,
    output_loading_info=False,
    allow_pickle=False,
    trust_remote_code=False,
    dtype=None,
    kernels=DEFAULT_KERNELS,
    **config_overrides,
):
    """Builds `cls` from a Hugging Face checkpoint (Hub id or local directory).

    Args:
        cls: a bert_keras model class, e.g. `BertForSequenceClassification`.
        name_or_path: str or path; a local checkpoint directory, or a Hub id
            such as `"google-bert/bert-base-uncased"` (downloaded into, or read
            from, the Hugging Face cache; works offline once cached). A
            local path may also be a legacy TensorFlow checkpoint (a
            `tf_model.h5`, a google-research/bert or Model Garden
            `bert_model.ckpt`, or their directory): see
            docs/legacy_checkpoints.md.
        config: optional `BertConfig` to use instead of the checkpoint's
            config.json.
        cache_dir, revision, token, local_files_only: Hub download options, as
            in `huggingface_hub.snapshot_download`.
        ignore_mismatched_sizes: bool; keep freshly initialised weights where
            the checkpoint's shape differs (e.g. a new `num_labels`) instead
            of raising.
        output_loading_info: bool; also return the loading report.
        allow_pickle: bool; allow `pytorch_model.bin` (read with
            `torch.load(weights_only=True)`) when no safetensors file exists.
        trust_remote_code: accepted for signature compatibility; bert_keras
            never runs code from a checkpoint.
        dtype: optional Keras dtype policy for the model's variables and
            computation (`"bfloat16"`, `"mixed_bfloat16"`, ...); weights are
            cast to it. Default: Keras' global policy (float32), whatever the
            checkpoint's dtype.
        kernels: `"fast"` (default) or `"reference"`, see `bert_keras.kernels`.
        **config_overrides: config fields to change, as in transformers
            (`num_labels=3`, `hidden_dropout_prob=0.0`, ...).

    Returns:
        the model, or `(model, loading_info)` with `output_loading_info=True`;
        `loading_info` holds `missing_keys`, `unexpected_keys`,
        `mismatched_keys` and `error_msgs`.

    Example:

    >>> model = load_pretrained(BertForSequenceClassification, path, num_labels=2)
    """
    del trust_remote_code  # Never used: see _read_config_dict.
    download = dict(
        cache_dir=cache_dir,
        revision=revision,
        token=token,
        local_files_only=local_files_only,
    )
    # An old TensorFlow checkpoint (tf_model.h5, a TF1 or Model Garden ckpt) is read
    # in place of HF weights only when a local path holds no HF weights.
    legacy_checkpoint = legacy.find_legacy_checkpoint(
        name_or_path, allow_pickle=allow_pickle
    )
    if legacy_checkpoint is None:
        directory, repo_id = resolve(name_or_path, **download)
    else:
        directory, repo_id = legacy_checkpoint.directory, None
    lock = contextlib.nullcontext()
    if repo_id is None:  # a local directory: wait for a running save, finish
        # one a kill interrupted (which writes, so alone), then read one save
        journal = os.path.join(directory, writing.JOURNAL_NAME)
        lock = writing.directory_lock(directory, shared=not os.path.exists(journal))
    with lock:
        if repo_id is None:
            writing.finish_interrupted_save(directory)
        config = _load_config(
            directory, name_or_path, config, config_overrides, legacy_checkpoint
        )
        checkpoint = legacy_checkpoint
        if checkpoint is None:
            files = find_weights(
                directory, repo_id, download, allow_pickle=allow_pickle
            )
            checkpoint = reading.Checkpoint(files)
        with checkpoint:
            options = {"kernels": kernels}
            if dtype is not None:
                options["dtype"] = dtype
            model = cls(config, **options)
            info = load_weights(
                model,
                checkpoint,
                str(name_or_path),
                ignore_mismatched_sizes=ignore_mismatched_sizes,
            )
    return (model, info) if output_loading_info else model


def _load_config(directory, name_or_path, config, overrides, legacy_checkpoint):
    """The model's `BertConfig`: config.json (or `config`) plus overrides."""
    if config is None and legacy_checkpoint is not None:
        config_dict = _read_config_dict(directory, legacy_checkpoint.config_name)
        config_dict = legacy_checkpoint.config_fields(config_dict)
    elif config is None:
        config_dict = _read_config_dict(directory)
    else:
        config_dict = as_config(config).to_dict()
    try:
        config, unused = bert_config_class().from_dict(
            config_dict, return_unused_kwargs=True, **overrides
        )
    except Exception as error:  # transformers raises many types for bad fields
        raise ConfigError(
            "transformers.BertConfig rejected the config fields. Fix config.json "
            f"or the overrides. Received: {type(error).__name__}: {error}"
        ) from error
    if unused:
        raise ConfigError(
            "Unknown keyword arguments: they are neither loading options nor "
            "BertConfig fields. Check their spelling against "
            f"transformers.BertConfig. Received: {sorted(unused)}"
        )
    if "id2label" in overrides and "label2id" not in overrides:
        # transformers leaves the checkpoint's label2id stale; keep them inverse.
        config.label2id = {label: i for i, label in config.id2label.items()}
    config._name_or_path = str(name_or_path)
    return validate_config(config)


def _read_config_dict(directory, config_name=CONFIG_NAME):
    path = os.path.join(directory, config_name)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(
            f"No {config_name} in {directory}. Expected a Hugging Face checkpoint "
            f"directory with {CONFIG_NAME} and model.safetensors (or a TF "
            f"checkpoint with its {config_name}); or pass "
            "config=BertConfig(...). Received: "
            f"files={sorted(os.listdir(directory))}"
        )
    config_dict = read_json(path, ConfigError)
    if not isinstance(config_dict, dict):
        raise ConfigError(
            f"{path} must hold a JSON object of config fields. Re-download or "
            "re-save the checkpoint. Received: "
            f"{type(config_dict).__name__}"
        )
    model_type = config_dict.get("model_type", "bert")
    if model_type != "bert":
        raise ConfigError(
            f"{path} describes a '{model_type}' model; bert_keras builds BERT "
            "only (model_type 'bert'). Use a BERT checkpoint. Received: "
            f"model_type={model_type!r}"
        )
    if config_dict.get("auto_map"):
        raise UnsafeCheckpointError(
            f"{path} asks for custom model code (auto_map). bert_keras never "
            "runs code from a checkpoint, whatever trust_remote_code says; it "
            "only builds its own BERT. Use a checkpoint of the standard BERT "
            "architecture, or remove auto_map if the weights are standard BERT. "
            f"Received: auto_map={config_dict['auto_map']!r}"
        )
    return config_dict


def save_pretrained(
    model,
    save_directory,
    *,
    tokenizer=None,
    max_shard_size=None,
    safe_serialization=True,
):
    """Writes config.json and safetensors weights that transformers opens.

    All files, the tokenizer's included, are written atomically: to temporary
    files first, moved into place only once all are complete, so a failed or
    killed save leaves the previous save whole. Files of an earlier save that
    this one replaces (other weight files; with a tokenizer, its files this
    tokenizer does not write) are removed at the same commit. Saves into one
    directory take turns, and `from_pretrained` waits for a running one.
    Two saves of the same model are byte-identical.

    Args:
        model: a bert_keras model.
        save_directory: str or path; created if missing. May be the directory
            the model was loaded from.
        tokenizer: optional transformers tokenizer, saved alongside.
        max_shard_size: int (bytes) or str such as `"2GB"`; if the weights are
            larger, they are split into `model-0000k-of-0000n.safetensors`
            shards with a `model.safetensors.index.json`.
        safe_serialization: must be True; bert_keras writes no pickles.

    Returns:
        list of the paths written.

    Example:

    >>> save_pretrained(model, "out/", tokenizer=tokenizer)
    ['out/config.json', 'out/model.safetensors', 'out/tokenizer.json', ...]
    """
    if not safe_serialization:
        raise CheckpointError(
            "bert_keras only writes safetensors weights (pickle files can run "
            "code when loaded, and transformers reads safetensors). Expected "
            "safe_serialization=True. Received: safe_serialization=False"
        )
    max_shard_size = (
        None if max_shard_size is None else (writing.parse_size(max_shard_size))
    )
    save_directory = os.fspath(save_directory)
    os.makedirs(save_directory, exist_ok=True)
    tensors = {}
    for key, (variable, transpose) in model.hf_variables().items():
        value = keras.ops.convert_to_numpy(variable)
        tensors[key] = value.T if transpose else value  # torch layout
    writers = {CONFIG_NAME: writing.text_writer(_config_json(model, tensors))}
    writers.update(writing.weight_writers(tensors, max_shard_size))
    if tokenizer is not None:
        writers.update(_tokenizer_writers(tokenizer))
    with writing.directory_lock(save_directory):
        stale = writing.stale_files(
            save_directory, set(writers), tokenizer=tokenizer is not None
        )
        written = writing.write_atomically(save_directory, writers, remove=stale)
    logger.info(f"Model weights saved in {save_directory}")
    return written


def _tokenizer_writers(tokenizer):
    """The tokenizer's files as writers of the model's atomic save.

    The tokenizer saves into a scratch directory first (transformers writes
    its files in place, one by one); their bytes then join the save.
    """
    with tempfile.TemporaryDirectory(prefix="bert_keras-tokenizer-") as scratch:
        tokenizer.save_pretrained(scratch)
        writers = {}
        for name in sorted(os.listdir(scratch)):
            path = os.path.join(scratch, name)
            if (
                not os.path.isfile(path)
                or name.startswith(".")
                or name in (CONFIG_NAME,)
            ):
                raise CheckpointError(
                    f"The tokenizer wrote {name!r}, which bert_keras cannot save "
                    "beside the model (expected plain tokenizer files such as "
                    "tokenizer.json and tokenizer_config.json). Save the "
                    "tokenizer separately with tokenizer.save_pretrained. "
                    f"Received: {type(tokenizer).__name__}"
                )
            with open(path, "rb") as file:
                writers[name] = writing.bytes_writer(file.read())
    return writers


def _config_json(model, tensors):
    """config.json as transformers writes it, naming the architecture."""
    config = copy.deepcopy(model.config)
    config.architectures = [model.hf_architecture]
    dtypes = {value.dtype.name for value in tensors.values()}
    if len(dtypes) == 1:
        config.dtype = dtypes.pop()
    return config.to_json_string(use_diff=True)


def push_to_hub(
    model,
    repo_id,
    *,
    tokenizer=None,
    commit_message="Upload model",
    private=None,
    token=None,
    create_pr=False,
    max_shard_size=None,
    card=None,
    **model_card_kwargs,
):
    """Uploads the checkpoint and a model card to the Hub in a single commit.

    Args:
        model: a bert_keras model.
        repo_id: str, e.g. `"me/bert-sst2"`; the repo is created if missing.
        tokenizer: optional transformers tokenizer uploaded alongside.
        commit_message: str.
        private: bool or None; visibility of a newly created repo.
        token: str or None; a Hub token with write access (default: the
            logged-in user's).
        create_pr: bool; open a pull request instead of committing to main.
        max_shard_size: as in `save_pretrained`.
        card: optional `huggingface_hub.ModelCard` (or markdown str) to upload
            as README.md instead of the generated one.
        **model_card_kwargs: passed to `bert_keras.checkpoints.model_card.model_card`
            (`license`, `datasets`, `results`, `training_hyperparameters`, ...).

    Returns:
        `huggingface_hub.CommitInfo` of the upload.

    Example:

    >>> push_to_hub(model, "me/bert-sst2", tokenizer=tokenizer,  # doctest: +SKIP
    ...             datasets=["nyu-mll/glue"], results={"accuracy": 0.92})
    """
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as folder:
        save_pretrained(
            model, folder, tokenizer=tokenizer, max_shard_size=max_shard_size
        )
        if card is None:
            model_card_kwargs.setdefault("model_name", repo_id)
            card = model_card(model, **model_card_kwargs)
        elif isinstance(card, str):
            card = ModelCard(card)
        card.save(os.path.join(folder, "README.md"))
        repo = api.create_repo(repo_id, exist_ok=True, private=private)
        return api.upload_folder(
            repo_id=repo.repo_id,
            folder_path=folder,
            commit_message=commit_message,
            create_pr=create_pr,
        )
