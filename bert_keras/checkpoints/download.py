"""Finding a checkpoint: a local directory, or a Hub repo in the HF cache.

Hub repos are fetched with `huggingface_hub.snapshot_download`, so the cache,
`cache_dir`, `revision`, `token`, `local_files_only` and `HF_HUB_OFFLINE`
behave as everywhere in the Hugging Face ecosystem: a model downloaded once
loads offline. Only the files bert_keras reads are fetched, and pickle weights
only when they are allowed and no safetensors file exists.
"""

import os

import huggingface_hub
import huggingface_hub.constants
from huggingface_hub import HfApi
from huggingface_hub import errors as hub_errors

from bert_keras.checkpoints import files
from bert_keras.checkpoints import reading
from bert_keras.errors import CheckpointNotFoundError
from bert_keras.errors import UnsafeCheckpointError
from bert_keras.version import __version__

_CONFIG_PATTERNS = ["config.json"]
_SAFE_PATTERNS = ["*.safetensors", files.SAFE_WEIGHTS_INDEX_NAME]
_PICKLE_PATTERNS = ["pytorch_model*.bin", files.PICKLE_WEIGHTS_INDEX_NAME]
_TOKENIZER_PATTERNS = [
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "added_tokens.json",
]
# Why a Hub look-up failed, by huggingface_hub error; the first match is used.
_HUB_FAILURES = (
    (hub_errors.HFValidationError, "is neither a local directory nor a valid Hub id"),
    (
        hub_errors.RepositoryNotFoundError,
        "is not a local directory, and the Hub has no such repository (or it is "
        "private or gated: pass token=... with access to it)",
    ),
    (hub_errors.RevisionNotFoundError, "has no such revision on the Hub"),
    (
        hub_errors.LocalEntryNotFoundError,
        "is not a local directory, is not in the Hugging Face cache, and the Hub "
        "could not be reached (offline, HF_HUB_OFFLINE=1 or local_files_only)",
    ),
    (OSError, "could not be downloaded from the Hub"),
)


def resolve(name_or_path, **download):
    """Returns `(local checkpoint directory, repo id or None)`.

    A local directory is used as is; anything else is a Hub id whose config,
    safetensors weights and tokenizer files are fetched with
    `huggingface_hub.snapshot_download` (honouring the cache, `cache_dir`,
    `local_files_only` and `HF_HUB_OFFLINE`).

    Raises:
        CheckpointNotFoundError: neither a directory nor an available Hub repo.

    Example:

    >>> _ = model.save_pretrained("out/")
    >>> resolve("out/")
    ('out/', None)
    """
    name_or_path = os.fspath(name_or_path)
    if os.path.isdir(name_or_path):
        return name_or_path, None
    if os.path.exists(name_or_path):
        raise CheckpointNotFoundError(
            f"{name_or_path!r} is a file; expected the directory that holds "
            "config.json and the weights. Pass that directory instead. "
            f"Received: name_or_path={name_or_path!r}"
        )
    patterns = _CONFIG_PATTERNS + _SAFE_PATTERNS + _TOKENIZER_PATTERNS
    return _download(name_or_path, patterns, download), name_or_path


def find_weights(directory, repo_id, download, *, allow_pickle=False):
    """Returns the weight files of a resolved checkpoint.

    For a Hub snapshot without safetensors weights, pickle weights are
    downloaded when `allow_pickle` is True.

    Args:
        directory: str, from `resolve`.
        repo_id: str or None, from `resolve`.
        download: dict of `snapshot_download` options (`cache_dir`,
            `revision`, `token`, `local_files_only`).
        allow_pickle: bool, whether `pytorch_model.bin` may be used.

    Returns:
        list of weight file paths (see `reading.find_weight_files`).

    Raises:
        UnsafeCheckpointError: only pickle weights exist and are not allowed.
        CheckpointNotFoundError: no weights at all.

    Example:

    >>> _ = model.save_pretrained("out/")
    >>> find_weights(*resolve("out/"), {})
    ['.../out/model.safetensors']
    """
    weight_names = {
        files.SAFE_WEIGHTS_NAME,
        files.SAFE_WEIGHTS_INDEX_NAME,
        files.PICKLE_WEIGHTS_NAME,
        files.PICKLE_WEIGHTS_INDEX_NAME,
    }
    if repo_id is None or weight_names & set(os.listdir(directory)):
        return reading.find_weight_files(directory, allow_pickle=allow_pickle)
    # Hub snapshots get pickle weights only when allowed and nothing else exists.
    if not allow_pickle:
        _raise_no_safetensors(repo_id, download)
    directory = _download(repo_id, _PICKLE_PATTERNS, download)
    return reading.find_weight_files(directory, allow_pickle=True)


def _download(repo_id, patterns, download):
    try:
        return huggingface_hub.snapshot_download(
            repo_id,
            allow_patterns=patterns,
            library_name="bert_keras",
            library_version=__version__,
            **download,
        )
    except (hub_errors.HFValidationError, OSError) as error:
        reason = next(text for kind, text in _HUB_FAILURES if isinstance(error, kind))
        raise CheckpointNotFoundError(
            f"{repo_id!r} {reason}. Expected a local checkpoint directory or a "
            "Hub model id such as 'google-bert/bert-base-uncased'. To fix, check "
            "the id and revision, pass a local directory, or download the model "
            "once online so that it loads offline (HF_HUB_OFFLINE=1) from the "
            f"cache. Received: {type(error).__name__}: {error}"
        ) from error


def _raise_no_safetensors(repo_id, download):
    """Raises the right error for a Hub snapshot without safetensors weights."""
    cached = huggingface_hub.try_to_load_from_cache(
        repo_id,
        files.PICKLE_WEIGHTS_NAME,
        cache_dir=download.get("cache_dir"),
        revision=download.get("revision"),
    )
    has_pickle = isinstance(cached, str)
    offline = (
        download.get("local_files_only") or huggingface_hub.constants.HF_HUB_OFFLINE
    )
    if not has_pickle and not offline:
        try:
            has_pickle = HfApi(token=download.get("token")).file_exists(
                repo_id,
                files.PICKLE_WEIGHTS_NAME,
                revision=download.get("revision"),
            )
        except Exception:  # offline or any Hub failure: we just cannot tell
            has_pickle = False
    if has_pickle:
        raise UnsafeCheckpointError(
            f"The Hub repo {repo_id!r} has no safetensors weights, only "
            f"{files.PICKLE_WEIGHTS_NAME}, a pickle that can run code "
            "when loaded. Expected model.safetensors. To fix, pass "
            "allow_pickle=True if you trust the repo, or use a revision with "
            f"safetensors weights. Received: {repo_id!r}"
        )
    raise CheckpointNotFoundError(
        f"The Hub repo {repo_id!r} has no model weights bert_keras can read, or "
        "they are not in the cache while the Hub is unreachable. Expected "
        f"{files.SAFE_WEIGHTS_NAME} or "
        f"{files.SAFE_WEIGHTS_INDEX_NAME}. Check the id and revision, "
        "or download the model once with network access. Received: "
        f"{repo_id!r}"
    )
