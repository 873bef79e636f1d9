"""Legacy TensorFlow BERT checkpoints, read under Hugging Face keys.

Three older formats hold BERT weights under TensorFlow variable names:

- `tf_model.h5`, written by the TF classes of transformers 4 (`TFBertModel`,
  `TFBertForPreTraining`, ...): a Keras 2 weights file whose names look like
  `tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0`;
- TF1 name-based checkpoints (`bert_model.ckpt.index` + `.data-*`) of
  google-research/bert, the format BERT, BioBERT and SciBERT were published
  in, beside a `bert_config.json`;
- TF2 object-based checkpoints of TF Model Garden's `BertEncoderV2`
  (`encoder/_transformer_layers/0/_attention_layer/_query_dense/kernel/...`).

`LegacyCheckpoint` renames their variables to the transformers PyTorch
state-dict keys, in torch layout, and offers the same `shapes` / `read`
interface as `reading.Checkpoint`, so the usual key matching and loading do the
rest. docs/legacy_checkpoints.md has the full name map.
"""

import glob
import os
import re

import numpy as np

from bert_keras.checkpoints.files import CONFIG_NAME
from bert_keras.checkpoints.files import GOOGLE_CONFIG_NAME
from bert_keras.checkpoints.files import PICKLE_WEIGHTS_INDEX_NAME
from bert_keras.checkpoints.files import PICKLE_WEIGHTS_NAME
from bert_keras.checkpoints.files import SAFE_WEIGHTS_INDEX_NAME
from bert_keras.checkpoints.files import SAFE_WEIGHTS_NAME
from bert_keras.checkpoints.files import TF_WEIGHTS_INDEX_NAME
from bert_keras.checkpoints.files import TF_WEIGHTS_NAME
from bert_keras.errors import CheckpointError

# How a TF array becomes its torch tensor, by name of layout.
AS_IS = "as_is"
KERNEL = "kernel"  # Dense kernel (in, ...out) -> Linear weight (out, in)
HEADS_IN_KERNEL = "heads_in_kernel"  # (heads, head size, out) -> (out, in)
FLAT = "flat"  # per-head bias (heads, head size) -> (hidden,)
_LAYOUTS = {
    AS_IS: lambda value: value,
    KERNEL: lambda value: value.reshape(value.shape[0], -1).T,
    HEADS_IN_KERNEL: lambda value: value.reshape(-1, value.shape[-1]).T,
    FLAT: lambda value: value.reshape(-1),
}
# Last TF name component -> (torch name, layout).
_LEAVES = {
    "kernel": ("weight", KERNEL),
    "gamma": ("weight", AS_IS),
    "beta": ("bias", AS_IS),
    "bias": ("bias", AS_IS),
    "weight": ("weight", AS_IS),  # h5 word_embeddings/weight
    "embeddings": ("weight", AS_IS),  # h5 position/token_type embeddings
}
# google-research/bert variables named unlike their torch module. The heads'
# `output_weights` are created as (out, in), torch's Linear layout already.
_TF1_NAMES = {
    "bert/embeddings/word_embeddings": "bert.embeddings.word_embeddings.weight",
    "bert/embeddings/position_embeddings": (
        "bert.embeddings.position_embeddings.weight"
    ),
    "bert/embeddings/token_type_embeddings": (
        "bert.embeddings.token_type_embeddings.weight"
    ),
    "cls/predictions/output_bias": "cls.predictions.bias",
    "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",
    "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
    "output_weights": "classifier.weight",  # run_classifier.py
    "output_bias": "classifier.bias",
    "cls/squad/output_weights": "qa_outputs.weight",  # run_squad.py
    "cls/squad/output_bias": "qa_outputs.bias",
}
# Training state in fine-tuned TF1 checkpoints: not weights of the model.
_TF1_TRAINING_STATE = ("adam_m", "adam_v", "global_step")
# TF Model Garden `BertEncoderV2` attribute paths (after any root such as
# `encoder/`): (HF key, layout); `{}` is the layer of `_transformer_layers/{}`.
_MODEL_GARDEN_NAMES = {
    "_embedding_layer/embeddings": ("embeddings.word_embeddings.weight", AS_IS),
    "_position_embedding_layer/embeddings": (
        "embeddings.position_embeddings.weight",
        AS_IS,
    ),
    "_type_embedding_layer/embeddings": (
        "embeddings.token_type_embeddings.weight",
        AS_IS,
    ),
    "_embedding_norm_layer/gamma": ("embeddings.LayerNorm.weight", AS_IS),
    "_embedding_norm_layer/beta": ("embeddings.LayerNorm.bias", AS_IS),
    "_pooler_layer/kernel": ("pooler.dense.weight", KERNEL),
    "_pooler_layer/bias": ("pooler.dense.bias", AS_IS),
}
_MODEL_GARDEN_LAYER_NAMES = {
    # Attention projections keep a heads axis: (hidden, heads, head size).
    **{
        f"_attention_layer/_{part}_dense/{leaf}": (
            f"attention.self.{part}.{'weight' if leaf == 'kernel' else 'bias'}",
            KERNEL if leaf == "kernel" else FLAT,
        )
        for part in ("query", "key", "value")
        for leaf in ("kernel", "bias")
    },
    "_attention_layer/_output_dense/kernel": (
        "attention.output.dense.weight",
        HEADS_IN_KERNEL,
    ),
    "_attention_layer/_output_dense/bias": ("attention.output.dense.bias", AS_IS),
    "_attention_layer_norm/gamma": ("attention.output.LayerNorm.weight", AS_IS),
    "_attention_layer_norm/beta": ("attention.output.LayerNorm.bias", AS_IS),
    "_intermediate_dense/kernel": ("intermediate.dense.weight", KERNEL),
    "_intermediate_dense/bias": ("intermediate.dense.bias", AS_IS),
    "_output_dense/kernel": ("output.dense.weight", KERNEL),
    "_output_dense/bias": ("output.dense.bias", AS_IS),
    "_output_layer_norm/gamma": ("output.LayerNorm.weight", AS_IS),
    "_output_layer_norm/beta": ("output.LayerNorm.bias", AS_IS),
}
_OBJECT_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def h5_key(name):
    """The HF key of a transformers-4 `tf_model.h5` weight, and its layout.

    Example:

    >>> h5_key("tf_bert_model/bert/encoder/layer_._0/output/dense/kernel:0")
    ('bert.encoder.layer.0.output.dense.weight', 'kernel')
    """
    parts = name.removesuffix(":0").split("/")[1:]  # drop the model's scope
    # `mlm___cls` is the `cls` module of the MLM head: keep the module name.
    parts = [part.rpartition("___")[2] for part in parts]
    return _torch_key(parts)


def tf1_key(name):
    """The HF key of a google-research/bert variable, and its layout.

    Returns None for training state (Adam slots, `global_step`).

    Example:

    >>> tf1_key("bert/encoder/layer_1/attention/self/query/kernel")
    ('bert.encoder.layer.1.attention.self.query.weight', 'kernel')
    >>> tf1_key("cls/seq_relationship/output_weights")
    ('cls.seq_relationship.weight', 'as_is')
    """
    parts = name.split("/")
    if parts[-1] in _TF1_TRAINING_STATE:
        return None
    if name in _TF1_NAMES:
        return _TF1_NAMES[name], AS_IS
    return _torch_key(parts)


def model_garden_key(name):
    """The HF key of a TF Model Garden `BertEncoderV2` variable, and its layout.

    Returns None for training state (`save_counter`, optimizer slots).

    Example:

    >>> model_garden_key(
    ...     "encoder/_transformer_layers/1/_attention_layer/_output_dense/kernel"
    ...     "/.ATTRIBUTES/VARIABLE_VALUE"
    ... )
    ('encoder.layer.1.attention.output.dense.weight', 'heads_in_kernel')
    """
    if not name.endswith(_OBJECT_SUFFIX) or ".OPTIMIZER_SLOT" in name:
        return None
    path = name.removesuffix(_OBJECT_SUFFIX)
    if path == "save_counter" or path.startswith("optimizer/"):
        return None
    layer = re.search(r"(?:^|/)_transformer_layers/(\d+)/(.+)$", path)
    if layer and layer[2] in _MODEL_GARDEN_LAYER_NAMES:
        key, layout = _MODEL_GARDEN_LAYER_NAMES[layer[2]]
        return f"encoder.layer.{layer[1]}.{key}", layout
    for suffix, entry in _MODEL_GARDEN_NAMES.items():
        if path == suffix or path.endswith("/" + suffix):
            return entry
    return path.replace("/", "."), AS_IS  # reported as an unexpected key


def _torch_key(parts):
    leaf, layout = _LEAVES.get(parts[-1], (parts[-1], AS_IS))
    path = "/".join(parts[:-1] + [leaf])
    # TF1 names layers `layer_3`, transformers 4's TF classes `layer_._3`.
    path = re.sub(r"/layer_(?:\._)?(\d+)/", r"/layer/\1/", path)
    return path.replace("/", "."), layout


class LegacyCheckpoint:
    """A TF checkpoint's weights, readable under HF keys in torch layout.

    Use as a context manager; `shapes` is known on entry, `read(key)` loads
    one tensor. Build it with `find_legacy_checkpoint`.

    Args:
        kind: `"h5"` (transformers 4 `tf_model.h5`) or `"tf1"` (a TF
            checkpoint prefix such as `.../bert_model.ckpt`; TF1 or Model
            Garden names, told apart on entry).
        path: str, the h5 file or the checkpoint prefix.

    Example:

    >>> kernel = tf.Variable(np.ones((32, 16), "float32"))  # (in, out)
    >>> saver = tf.compat.v1.train.Saver({"bert/pooler/dense/kernel": kernel})
    >>> prefix = saver.save(None, "tf1/bert_model.ckpt")
    >>> with LegacyCheckpoint("tf1", prefix) as checkpoint:
    ...     array = checkpoint.read("bert.pooler.dense.weight")
    >>> checkpoint.shapes, array.shape
    ({'bert.pooler.dense.weight': (16, 32)}, (16, 32))
    """

    def __init__(self, kind, path):
        self.kind = kind
        self.path = path
        self.directory = os.path.dirname(os.path.abspath(path))
        self.files = [path]
        self.shapes = {}
        self._names = {}  # HF key -> (TF name, layout)
        self._file = None  # h5py.File, open between enter and exit
        self._h5_paths = {}  # h5 weight name -> dataset path
        self._reader = None  # TF CheckpointReader

    @property
    def config_name(self):
        """The config file: `bert_config.json` beside a Google TF1 checkpoint."""
        google = os.path.join(self.directory, GOOGLE_CONFIG_NAME)
        if self.kind == "tf1" and os.path.isfile(google):
            return GOOGLE_CONFIG_NAME
        return CONFIG_NAME

    def config_fields(self, config_dict):
        """The BertConfig fields of the config file, in HF's meaning.

        google-research/bert's `gelu` is the tanh approximation, transformers'
        `gelu_new`; transformers' `gelu` is the exact erf form.
        """
        if self.config_name == GOOGLE_CONFIG_NAME:
            if config_dict.get("hidden_act") == "gelu":
                return {**config_dict, "hidden_act": "gelu_new"}
        return config_dict

    def __enter__(self):
        try:
            names = self._open_h5() if self.kind == "h5" else self._open_tf1()
        except BaseException:
            self.__exit__()
            raise
        key_of = h5_key if self.kind == "h5" else tf1_key
        if any(name.endswith(_OBJECT_SUFFIX) for name in names):
            key_of = model_garden_key
        for name, shape in names.items():
            mapped = key_of(name)
            if mapped is None:
                continue
            key, layout = mapped
            if key in self._names:
                raise CheckpointError(
                    f"{self.path} holds two variables for the weight {key!r} "
                    f"({self._names[key][0]!r} and {name!r}); which one to use "
                    "would be arbitrary. Remove one of them. Received: "
                    f"{name!r}"
                )
            self._names[key] = (name, layout)
            # A zero-stride array: the layout's shape, with no data allocated.
            placeholder = np.broadcast_to(np.zeros((), np.uint8), shape)
            self.shapes[key] = tuple(_LAYOUTS[layout](placeholder).shape)
        return self

    def __exit__(self, *exc_info):
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self, key):
        """Returns the tensor of HF key `key` as a numpy array, torch layout."""
        name, layout = self._names[key]
        try:
            if self.kind == "h5":
                value = np.asarray(self._file[self._h5_paths[name]][()])
            else:
                value = np.asarray(self._reader.get_tensor(name))
        except Exception as error:  # h5py and TF raise many types for bad data
            raise CheckpointError(
                f"Could not read {name!r} from {self.path}: the checkpoint is "
                "truncated or corrupt. Re-download it. Received: "
                f"{type(error).__name__}: {str(error)[:300]}"
            ) from error
        return _LAYOUTS[layout](value)

    def _open_h5(self):
        import h5py

        try:
            self._file = h5py.File(self.path, "r")
            layer_names = self._file.attrs.get("layer_names")
        except OSError as error:
            raise CheckpointError(
                f"{self.path} is not a readable HDF5 file (truncated or "
                "corrupt?). Re-download or re-save it. Received: "
                f"{type(error).__name__}: {error}"
            ) from error
        if layer_names is None:
            raise CheckpointError(
                f"{self.path} is not a Keras 2 weights file as transformers 4's "
                "TF classes write (no 'layer_names' attribute). Expected the "
                "tf_model.h5 of TFBert* save_pretrained. Received: "
                f"keys={sorted(self._file.keys())[:10]}"
            )
        shapes = {}
        for layer in layer_names:
            group = self._file[_text(layer)]
            for weight in group.attrs.get("weight_names", []):
                name = _text(weight)
                # A tied weight is listed under every layer using it: once here.
                if name not in self._h5_paths:
                    self._h5_paths[name] = f"{_text(layer)}/{name}"
                    shapes[name] = group[name].shape
        return shapes

    def _open_tf1(self):
        import tensorflow as tf

        self._check_data_files()
        try:
            self._reader = tf.train.load_checkpoint(self.path)
            shapes = self._reader.get_variable_to_shape_map()
        except (tf.errors.OpError, ValueError) as error:
            raise CheckpointError(
                f"TensorFlow could not open the checkpoint {self.path} (a "
                ".data-* file missing, truncated or corrupt?). Expected the "
                "prefix's .index and all its .data-NNNNN-of-NNNNN files. "
                f"Re-download it. Received: {type(error).__name__}: "
                f"{str(error)[:300]}"
            ) from error
        positional = [name for name in shapes if "/layer_with_weights-" in name]
        if positional:
            raise CheckpointError(
                f"{self.path} is a TF2 object-based checkpoint of a functional "
                "Keras model (TF Model Garden's BertEncoder v1), whose names "
                "number layers by position rather than naming BERT's modules; "
                "bert_keras reads BertEncoderV2 checkpoints, TF1 checkpoints of "
                "google-research/bert and transformers 4's tf_model.h5. Convert "
                "it with Model Garden to a BertEncoderV2 checkpoint. Received: "
                f"{positional[:3]}"
            )
        return shapes

    def _check_data_files(self):
        # TF opens the .data shards only when a tensor is read: check them now.
        found = glob.glob(glob.escape(self.path) + ".data-*-of-*")
        counts = [re.search(r"-of-(\d+)$", name) for name in found]
        count = max((int(match[1]) for match in counts if match), default=1)
        expected = [f"{self.path}.data-{i:05d}-of-{count:05d}" for i in range(count)]
        missing = [os.path.basename(name) for name in expected if name not in found]
        if missing:
            raise CheckpointError(
                f"The TensorFlow checkpoint {self.path} is incomplete: "
                f"{missing[0]} is missing. Expected its .index and every "
                ".data-NNNNN-of-NNNNN shard. Re-download the checkpoint. "
                f"Received: {sorted(os.path.basename(name) for name in found)}"
            )


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def find_legacy_checkpoint(name_or_path, *, allow_pickle=False):
    """Returns the legacy TF checkpoint at `name_or_path`, or None.

    `name_or_path` may be a directory, a `tf_model.h5` file, or a TF
    checkpoint prefix (`.../bert_model.ckpt`, or its `.index` file). A
    directory counts only when it has no weights in the HF formats
    (safetensors; `pytorch_model.bin` when `allow_pickle`), which win.

    Raises:
        CheckpointError: a sharded `tf_model.h5`, or several TF checkpoints
            in the directory and no `checkpoint` file saying which is current.

    Example:

    >>> kernel = tf.Variable(np.ones((32, 16), "float32"))
    >>> saver = tf.compat.v1.train.Saver({"bert/pooler/dense/kernel": kernel})
    >>> prefix = saver.save(None, "tf1/bert_model.ckpt")
    >>> find_legacy_checkpoint("tf1/").kind, find_legacy_checkpoint(prefix).path
    ('tf1', 'tf1/bert_model.ckpt')
    >>> _ = model.save_pretrained("out/")
    >>> find_legacy_checkpoint("out/") is None  # HF weights: not legacy
    True
    """
    path = os.fspath(name_or_path)
    if os.path.isfile(path) and path.endswith(".h5"):
        return LegacyCheckpoint("h5", path)
    if os.path.isfile(path) and path.endswith(".index"):
        return LegacyCheckpoint("tf1", path.removesuffix(".index"))
    if not os.path.isdir(path):
        if os.path.isfile(path + ".index"):
            return LegacyCheckpoint("tf1", path)
        return None
    names = set(os.listdir(path))
    if names & {SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME}:
        return None
    if allow_pickle and names & {PICKLE_WEIGHTS_NAME, PICKLE_WEIGHTS_INDEX_NAME}:
        return None
    if TF_WEIGHTS_NAME in names:
        return LegacyCheckpoint("h5", os.path.join(path, TF_WEIGHTS_NAME))
    if TF_WEIGHTS_INDEX_NAME in names:
        raise CheckpointError(
            f"{path} holds a sharded {TF_WEIGHTS_NAME} ({TF_WEIGHTS_INDEX_NAME}), "
            f"which bert_keras does not read. Expected a single {TF_WEIGHTS_NAME} "
            "or safetensors weights. To fix, load it once with transformers 4 "
            "(TFBert*.from_pretrained) and save_pretrained it with a larger "
            f"max_shard_size. Received: files={sorted(names)}"
        )
    prefixes = sorted(glob.glob(os.path.join(glob.escape(path), "*.index")))
    if not prefixes:
        return None
    if len(prefixes) > 1:
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(path)
        if latest is None or not os.path.isfile(latest + ".index"):
            raise CheckpointError(
                f"{path} holds several TensorFlow checkpoints and no 'checkpoint' "
                "file naming the current one. Pass the prefix of the one to load, "
                f"e.g. {prefixes[-1].removesuffix('.index')!r}. Received: "
                f"{[os.path.basename(p) for p in prefixes]}"
            )
        return LegacyCheckpoint("tf1", latest)
    return LegacyCheckpoint("tf1", prefixes[0].removesuffix(".index"))
