"""Writes the legacy TensorFlow checkpoints of tests/test_legacy_checkpoints.py.

Every checkpoint here is written by the ORIGINAL code, and so are the outputs
beside it (`expected.npz`), so the tests compare bert_keras with that code, not
with itself. This script holds no code of those projects: it imports them.

Environment used (2026-12-05), nothing of it inside the repository:

- Python 3.11, tensorflow 2.21.0 (the project venv), plus, at the front of
  PYTHONPATH, a `pip install --target /tmp/v4lib --no-deps` of
  transformers==4.57.6 (the last line with TF classes), tf-keras==2.21.0,
  huggingface_hub==0.36.2 and tokenizers==0.22.2.
- google-research/bert at commit eedf5716ce1268e56f0a50264a88cafad334ac61
  (Apache-2.0): `modeling.py`, `run_pretraining.py`, `run_classifier.py`,
  `optimization.py`, `tokenization.py` extracted with `git show HEAD:<file>`
  into a scratch directory (the `--bert-source`).

Commands, from the repository root:

    TF_USE_LEGACY_KERAS=1 PYTHONPATH=/tmp/v4lib .venv/bin/python \\
        tests/data/legacy/make_fixtures.py h5
    TF_USE_LEGACY_KERAS=1 PYTHONPATH=/tmp/v4lib .venv/bin/python \\
        tests/data/legacy/make_fixtures.py tf1 --bert-source /tmp/gbert
    TF_USE_LEGACY_KERAS=1 PYTHONPATH=/tmp/v4lib .venv/bin/python \\
        tests/data/legacy/make_fixtures.py tf1_classifier --bert-source /tmp/gbert
    TF_USE_LEGACY_KERAS=1 PYTHONPATH=/tmp/mglib:/tmp/v4lib .venv/bin/python \\
        tests/data/legacy/make_fixtures.py model_garden

where /tmp/mglib is `pip install --target /tmp/mglib --no-deps
tf-models-official==2.20.0 gin-config==0.5.0` (TF Model Garden).

Outputs, each directory with an `expected.npz` of the original outputs on the
fixed inputs `INPUT_IDS`, `TOKEN_TYPE_IDS`, `ATTENTION_MASK` (stored in it):

- `h5_pretraining/`, `h5_classification/`, `h5_model/`: `config.json` and
  `tf_model.h5` of `TFBertForPreTraining`, `TFBertForSequenceClassification`
  (3 labels) and `TFBertModel` written by transformers 4 `save_pretrained`.
- `tf1_pretraining/`: `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*`
  of google-research/bert's `BertModel` plus the pretraining heads that
  `run_pretraining.py` builds, saved with `tf.compat.v1.train.Saver`.
- `tf1_classifier/`: `bert_config.json` and `bert_model.ckpt.*` of
  `run_classifier.py`'s `create_model` (2 labels) after one training step with
  its `optimization.create_optimizer` (so with Adam slots and `global_step`),
  and the logits of its prediction graph restored from that checkpoint.
- `model_garden_encoder/`: `bert_config.json` and `bert_model.ckpt.*` of TF
  Model Garden's `BertEncoderV2` (default tanh GELU, as its "gelu"), saved
  with `tf.train.Checkpoint(encoder=...).write`.

Weights are random (seeded) and not small, so a wrong transpose, head or
LayerNorm mapping changes the outputs by far more than the 1e-5 tolerance.
"""

import argparse
import json
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=2,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    initializer_range=0.02,
)
INPUT_IDS = np.array(
    [[2, 17, 45, 98, 7, 3, 0], [2, 61, 5, 88, 3, 30, 3]], dtype=np.int32
)
TOKEN_TYPE_IDS = np.array(
    [[0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1]], dtype=np.int32
)
ATTENTION_MASK = np.array(
    [[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=np.int32
)
INPUTS = dict(
    input_ids=INPUT_IDS, token_type_ids=TOKEN_TYPE_IDS, attention_mask=ATTENTION_MASK
)


def random_value(name, shape, rng):
    """A seeded random weight; LayerNorm scales stay near 1."""
    value = rng.normal(0.0, 0.3, size=shape)
    if name.endswith(("gamma", "gamma:0")):
        value = 1.0 + 0.2 * value
    return value.astype(np.float32)


def save_npz(directory, **arrays):
    np.savez(os.path.join(directory, "expected.npz"), **INPUTS, **arrays)


def make_h5():
    """tf_model.h5 checkpoints of transformers 4's TF classes."""
    import tensorflow as tf
    import transformers

    if not transformers.__version__.startswith("4."):
        sys.exit(f"needs transformers 4.x, found {transformers.__version__}")
    inputs = {key: tf.constant(value) for key, value in INPUTS.items()}
    cases = [
        ("h5_pretraining", transformers.TFBertForPreTraining, {}),
        ("h5_classification", transformers.TFBertForSequenceClassification, {}),
        ("h5_model", transformers.TFBertModel, {}),
    ]
    for seed, (folder, cls, extra) in enumerate(cases):
        config = transformers.BertConfig(**TINY, **extra)
        if cls is transformers.TFBertForSequenceClassification:
            config.num_labels = 3
        model = cls(config)
        model(inputs, training=False)  # builds the variables
        rng = np.random.default_rng(seed)
        model.set_weights([random_value(w.name, w.shape, rng) for w in model.weights])
        outputs = model(inputs, training=False)
        directory = os.path.join(HERE, folder)
        model.save_pretrained(directory)
        save_npz(
            directory,
            **{
                key: outputs[key].numpy()
                for key in (
                    "prediction_logits",
                    "seq_relationship_logits",
                    "logits",
                    "last_hidden_state",
                    "pooler_output",
                )
                if key in outputs
            },
        )
        print(folder, sorted(os.listdir(directory)))


def _layer_norm(inputs, begin_norm_axis=-1, begin_params_axis=-1, scope=None):
    """Stands in for TF1's `tf.contrib.layers.layer_norm` (gone in TF2).

    Same variables (`<scope>/beta`, `<scope>/gamma`, default scope
    `LayerNorm`) and the same formula, epsilon 1e-12.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    del begin_norm_axis, begin_params_axis  # BERT only normalises the last axis
    with v1.variable_scope(scope, default_name="LayerNorm"):
        size = inputs.shape[-1]
        beta = v1.get_variable("beta", [size], initializer=v1.zeros_initializer())
        gamma = v1.get_variable("gamma", [size], initializer=v1.ones_initializer())
        mean, variance = tf.nn.moments(inputs, [-1], keepdims=True)
        return tf.nn.batch_normalization(inputs, mean, variance, beta, gamma, 1e-12)


def import_google_bert(source, script):
    """Imports google-research/bert's `modeling` and `script` (a module name),
    with `tf` bound to tf.compat.v1."""
    import tensorflow as tf

    v1 = tf.compat.v1
    v1.contrib = types.SimpleNamespace(
        layers=types.SimpleNamespace(layer_norm=_layer_norm)
    )
    sys.path.insert(0, source)
    real = sys.modules["tensorflow"]
    sys.modules["tensorflow"] = v1
    try:
        import modeling

        module = __import__(script)
    finally:
        sys.modules["tensorflow"] = real
    return modeling, module


def make_tf1(source):
    """A google-research/bert pretraining checkpoint (TF1 name-based)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    modeling, run_pretraining = import_google_bert(source, "run_pretraining")
    directory = os.path.join(HERE, "tf1_pretraining")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "bert_config.json"), "w") as file:
        json.dump(TINY, file, indent=2, sort_keys=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"w{i}" for i in range(TINY["vocab_size"] - len(vocab))]
    with open(os.path.join(directory, "vocab.txt"), "w") as file:
        file.write("\n".join(vocab) + "\n")

    graph = tf.Graph()
    with graph.as_default():
        config = modeling.BertConfig.from_json_file(
            os.path.join(directory, "bert_config.json")
        )
        model = modeling.BertModel(
            config=config,
            is_training=False,
            input_ids=v1.constant(INPUT_IDS),
            input_mask=v1.constant(ATTENTION_MASK),
            token_type_ids=v1.constant(TOKEN_TYPE_IDS),
            use_one_hot_embeddings=False,
        )
        batch, length = INPUT_IDS.shape
        positions = np.tile(np.arange(length, dtype=np.int32), (batch, 1))
        # Every position is "masked", so the MLM head scores every token.
        _, _, mlm_log_probs = run_pretraining.get_masked_lm_output(
            config,
            model.get_sequence_output(),
            model.get_embedding_table(),
            v1.constant(positions),
            v1.constant(np.zeros_like(positions)),
            v1.constant(np.ones_like(positions, dtype=np.float32)),
        )
        _, _, nsp_log_probs = run_pretraining.get_next_sentence_output(
            config, model.get_pooled_output(), v1.constant(np.zeros([batch], np.int32))
        )
        variables = v1.global_variables()
        rng = np.random.default_rng(7)
        with v1.Session() as session:
            for variable in variables:
                shape = variable.shape.as_list()
                variable.load(random_value(variable.op.name, shape, rng), session)
            sequence, pooled, mlm, nsp = session.run(
                [
                    model.get_sequence_output(),
                    model.get_pooled_output(),
                    mlm_log_probs,
                    nsp_log_probs,
                ]
            )
            v1.train.Saver(variables).save(
                session,
                os.path.join(directory, "bert_model.ckpt"),
                write_meta_graph=False,
            )
    # The Saver's `checkpoint` file holds absolute paths; releases ship none.
    os.remove(os.path.join(directory, "checkpoint"))
    save_npz(
        directory,
        sequence_output=sequence,
        pooled_output=pooled,
        mlm_log_probs=mlm.reshape(batch, length, -1),
        nsp_log_probs=nsp,
    )
    print("tf1_pretraining", sorted(os.listdir(directory)))


def make_tf1_classifier(source):
    """A google-research/bert `run_classifier.py` checkpoint after one step.

    Trained one step with the original `optimization.create_optimizer`, so it
    also holds the Adam slots and `global_step` that fine-tuned releases carry.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    v1.disable_v2_tensorshape()  # run_classifier reads `shape[-1].value`
    modeling, run_classifier = import_google_bert(source, "run_classifier")
    import optimization

    directory = os.path.join(HERE, "tf1_classifier")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "bert_config.json"), "w") as file:
        json.dump(TINY, file, indent=2, sort_keys=True)
    config = modeling.BertConfig.from_json_file(
        os.path.join(directory, "bert_config.json")
    )

    def arguments():  # in the current graph
        return dict(
            bert_config=config,
            input_ids=v1.constant(INPUT_IDS),
            input_mask=v1.constant(ATTENTION_MASK),
            segment_ids=v1.constant(TOKEN_TYPE_IDS),
            labels=v1.constant(np.array([0, 1], np.int32)),
            num_labels=2,  # bert_config.json has no num_labels: HF's default
            use_one_hot_embeddings=False,
        )

    with tf.Graph().as_default():
        v1.set_random_seed(0)  # the training step's dropout
        loss, _, _, _ = run_classifier.create_model(is_training=True, **arguments())
        train_op = optimization.create_optimizer(loss, 1e-3, 10, 1, False)
        rng = np.random.default_rng(5)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            for variable in v1.trainable_variables():
                shape = variable.shape.as_list()
                variable.load(random_value(variable.op.name, shape, rng), session)
            session.run(train_op)
            v1.train.Saver().save(
                session,
                os.path.join(directory, "bert_model.ckpt"),
                write_meta_graph=False,
            )
    # Then predict as run_classifier does: a new graph restoring the checkpoint.
    with tf.Graph().as_default():
        _, _, logits, _ = run_classifier.create_model(is_training=False, **arguments())
        with v1.Session() as session:
            v1.train.Saver().restore(
                session, os.path.join(directory, "bert_model.ckpt")
            )
            logits = session.run(logits)
    os.remove(os.path.join(directory, "checkpoint"))
    save_npz(directory, logits=logits)
    print("tf1_classifier", sorted(os.listdir(directory)))


def make_model_garden():
    """A TF Model Garden `BertEncoderV2` object-based checkpoint."""
    import tensorflow as tf
    from official.nlp.modeling import networks

    encoder = networks.BertEncoderV2(
        vocab_size=TINY["vocab_size"],
        hidden_size=TINY["hidden_size"],
        num_layers=TINY["num_hidden_layers"],
        num_attention_heads=TINY["num_attention_heads"],
        inner_dim=TINY["intermediate_size"],
        max_sequence_length=TINY["max_position_embeddings"],
        type_vocab_size=TINY["type_vocab_size"],
    )
    inputs = dict(
        input_word_ids=tf.constant(INPUT_IDS),
        input_mask=tf.constant(ATTENTION_MASK),
        input_type_ids=tf.constant(TOKEN_TYPE_IDS),
    )
    encoder(inputs, training=False)  # builds the variables
    rng = np.random.default_rng(11)
    encoder.set_weights([random_value(w.name, w.shape, rng) for w in encoder.weights])
    outputs = encoder(inputs, training=False)
    directory = os.path.join(HERE, "model_garden_encoder")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "bert_config.json"), "w") as file:
        json.dump(TINY, file, indent=2, sort_keys=True)
    tf.train.Checkpoint(encoder=encoder).write(
        os.path.join(directory, "bert_model.ckpt")
    )
    save_npz(
        directory,
        sequence_output=outputs["sequence_output"].numpy(),
        pooled_output=outputs["pooled_output"].numpy(),
    )
    print("model_garden_encoder", sorted(os.listdir(directory)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["h5", "tf1", "tf1_classifier", "model_garden"])
    parser.add_argument(
        "--bert-source", help="directory with google-research/bert's modules"
    )
    args = parser.parse_args()
    if args.kind == "h5":
        make_h5()
    elif args.kind == "tf1":
        make_tf1(args.bert_source)
    elif args.kind == "tf1_classifier":
        make_tf1_classifier(args.bert_source)
    else:
        make_model_garden()


if __name__ == "__main__":
    main()
