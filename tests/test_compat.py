"""bert_keras.compat: transformers v4's TF names, behaving as v4's did."""

import keras
import numpy as np
import pytest
import torch
import transformers
from conftest import tiny_config

import bert_keras as bk
from bert_keras import compat
from bert_keras.errors import ConfigError

CLASSES = (
    "Model",
    "ForPreTraining",
    "ForMaskedLM",
    "ForNextSentencePrediction",
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForMultipleChoice",
)


@pytest.mark.parametrize("suffix", CLASSES)
def test_tf_names_are_the_bert_keras_classes(suffix):
    v4_class = getattr(compat, "TFBert" + suffix)
    # The bert_keras class under its v4 name, adding nothing.
    assert v4_class.__name__ == "TFBert" + suffix
    assert v4_class.__bases__ == (getattr(bk, "Bert" + suffix),)
    methods = {name for name, value in vars(v4_class).items() if callable(value)}
    assert methods == {"call"}  # the signature every class gets
    auto = getattr(compat, "TFAutoModel" + suffix.replace("Model", ""))
    assert auto.model_class is v4_class


def test_auto_class_loads_a_checkpoint_with_v4_keywords(tiny_checkpoint):
    model = compat.TFAutoModelForSequenceClassification.from_pretrained(
        tiny_checkpoint, num_labels=3, from_pt=True
    )
    assert type(model) is compat.TFBertForSequenceClassification
    assert isinstance(model, bk.BertForSequenceClassification)
    assert model.config.num_labels == 3
    embeddings = model.get_input_embeddings()
    assert isinstance(embeddings, keras.layers.Embedding)
    assert embeddings.embeddings.shape[0] == model.config.vocab_size


def test_auto_class_from_config_refuses_other_architectures():
    model = compat.TFAutoModel.from_config(tiny_config())
    assert type(model) is compat.TFBertModel
    with pytest.raises(ConfigError, match="BERT models only.*'gpt2'"):
        compat.TFAutoModel.from_config(transformers.GPT2Config())
    with pytest.raises(TypeError, match="from_pretrained"):
        compat.TFAutoModel()


def test_create_optimizer_follows_the_linear_warmup_schedule():
    optimizer, schedule = compat.create_optimizer(
        2e-5, num_train_steps=100, num_warmup_steps=10, weight_decay_rate=0.01
    )
    # The PyTorch twin of v4's TF schedule: transformers' linear warmup + decay.
    parameter = torch.nn.Parameter(torch.zeros(1))
    torch_optimizer = torch.optim.AdamW([parameter], lr=2e-5)
    reference = transformers.get_linear_schedule_with_warmup(torch_optimizer, 10, 100)
    for step in range(0, 105):
        expected = 2e-5 * reference.lr_lambdas[0](step)
        assert abs(float(schedule(step)) - expected) <= 1e-7 * 2e-5, step  # float32
    assert optimizer.weight_decay == 0.01
    assert optimizer.epsilon == 1e-8  # v4's default, not Keras'
    with pytest.raises(ConfigError, match="power"):
        compat.create_optimizer(2e-5, 100, 10, power=2.0)


def test_other_names_come_from_transformers():
    # The tokenizers are transformers' own, taught return_tensors="tf" again.
    assert issubclass(compat.AutoTokenizer, transformers.AutoTokenizer)
    assert compat.BertConfig is transformers.BertConfig
    with pytest.raises(AttributeError, match="TFGPT2Model.*TFBertModel"):
        _ = compat.TFGPT2Model


def test_v4_feature_extraction_snippet_runs_with_the_import_changed(
    tiny_checkpoint, tokenizer
):
    # transformers v4's TFBertModel docs example, the tokenizer returning numpy
    # (v5 tokenizers no longer return TF tensors).
    from bert_keras.compat import TFBertModel

    model = TFBertModel.from_pretrained(tiny_checkpoint)
    inputs = tokenizer("Hello, my dog is cute", return_tensors="np")
    outputs = model(inputs)
    last_hidden_states = outputs.last_hidden_state
    assert last_hidden_states.shape[:2] == inputs["input_ids"].shape
    sequence_output, pooled_output = model(**inputs, return_dict=False)
    assert np.allclose(sequence_output, last_hidden_states)
    assert pooled_output.shape == (1, model.config.hidden_size)


def test_prepare_tf_dataset_feeds_fit_as_in_v4(tiny_checkpoint, tokenizer):
    import datasets

    raw = datasets.Dataset.from_dict(
        {
            "sentence": ["a fine film", "dull", "a delight", "a mess"],
            "label": [1, 0, 1, 0],
        }
    )
    encoded = raw.map(lambda batch: tokenizer(batch["sentence"]), batched=True)
    model = compat.TFAutoModelForSequenceClassification.from_pretrained(
        tiny_checkpoint, num_labels=2
    )
    dataset = model.prepare_tf_dataset(
        encoded, batch_size=2, shuffle=False, tokenizer=tokenizer
    )
    features, labels = next(iter(dataset))
    assert sorted(features) == ["attention_mask", "input_ids", "token_type_ids"]
    assert labels.numpy().tolist() == [1, 0]
    model.compile(optimizer="adam")
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(ConfigError, match="collate_fn"):
        model.prepare_tf_dataset(encoded, collate_fn=lambda rows: rows)
    # v4's batches: batch_size examples each, shuffled or not (no length groups).
    many = datasets.concatenate_datasets([encoded] * 10)
    for shuffle in (False, True):
        sizes = [
            len(batch[1])
            for batch in model.prepare_tf_dataset(many, batch_size=16, shuffle=shuffle)
        ]
        assert sizes == [16, 16, 8], shuffle
    qa = bk.BertForQuestionAnswering(tiny_config(num_labels=2))
    spans = encoded.add_column("start_positions", [1, 1, 1, 1]).add_column(
        "end_positions", [2, 1, 2, 1]
    )
    _, labels = next(iter(qa.prepare_tf_dataset(spans, batch_size=4, shuffle=False)))
    assert sorted(labels) == ["end_positions", "start_positions"]


def test_save_pretrained_writes_a_saved_model_as_v4_did(tmp_path):
    import tensorflow as tf

    model = bk.BertForSequenceClassification(tiny_config(num_labels=2))
    written = model.save_pretrained(tmp_path, saved_model=True, version=3)
    path = tmp_path / "saved_model" / "3"
    assert str(path) in [str(item) for item in written]
    assert (tmp_path / "model.safetensors").exists()
    ids = np.array([[2, 7, 9, 3]], np.int32)
    inputs = {
        "input_ids": ids,
        "token_type_ids": np.zeros_like(ids),
        "attention_mask": np.ones_like(ids),
    }
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    logits = served(**{k: tf.constant(v) for k, v in inputs.items()})["logits"]
    assert np.allclose(logits.numpy(), model(inputs).logits, atol=1e-5)


def test_from_config_takes_a_bert_config_as_in_transformers():
    model = bk.BertForTokenClassification(tiny_config(num_labels=4))
    again = bk.BertForTokenClassification.from_config(model.config)
    assert type(again) is bk.BertForTokenClassification
    assert again.config.to_dict() == model.config.to_dict()
    fields = bk.BertModel.from_config(tiny_config().to_dict())
    assert fields.config.hidden_size == tiny_config().hidden_size
    # Keras' own round trip still works.
    clone = bk.BertForTokenClassification.from_config(model.get_config())
    assert clone.config.num_labels == 4


def test_v4_keras_callbacks_are_bert_keras_ones():
    from bert_keras.training import hf_callbacks

    assert compat.KerasMetricCallback is hf_callbacks.KerasMetricCallback
    assert compat.PushToHubCallback is hf_callbacks.PushToHubCallback


def test_v4_model_surface():
    import tensorflow as tf

    config = tiny_config(output_hidden_states=True, output_attentions=True)
    model = compat.TFBertForMultipleChoice(config)
    assert model.can_generate() is False and model.main_input_name == "input_ids"
    model.build_in_name_scope()
    model.build()  # v4 code builds with no shape; the model already is
    specs = model.input_signature
    assert sorted(specs) == ["attention_mask", "input_ids", "token_type_ids"]
    assert all(
        s.shape.as_list() == [None] * 3 and s.dtype == tf.int32 for s in specs.values()
    )
    dummies = model.dummy_inputs
    assert (
        dummies["input_ids"].shape == (1, 2, 2)
        and dummies["input_ids"].dtype == tf.int32
    )
    assert int(tf.reduce_sum(dummies["token_type_ids"])) == 0
    outputs = model(dummies)
    # Per-layer outputs are tuples, as in transformers.
    assert isinstance(outputs.hidden_states, tuple) and isinstance(
        outputs.attentions, tuple
    )
    served = model.serving_output(outputs)
    layers = config.num_hidden_layers
    assert served.hidden_states.shape[0] == layers + 1
    assert served.attentions.shape[0] == layers
    assert np.array_equal(served.hidden_states[-1], outputs.hidden_states[-1])
    assert np.array_equal(served.logits, outputs.logits)


def test_out_of_range_ids_are_also_tensorflows_invalid_argument_error():
    import tensorflow as tf

    model = compat.TFBertModel(tiny_config())
    with pytest.raises(tf.errors.InvalidArgumentError, match="vocab_size"):
        model(np.full((2, 3), 10**6, "int32"))
    with pytest.raises(bk.InputError):
        model(np.full((2, 3), -1, "int32"))


def test_v4_label_names_and_metric_lists_in_fit():
    keras.utils.set_random_seed(0)
    ids = np.random.default_rng(0).integers(1, 99, (4, 6)).astype("int32")
    nsp = compat.TFBertForNextSentencePrediction(tiny_config())
    nsp.compile(optimizer=keras.optimizers.SGD(0.0))
    labels = np.array([0, 1, 0, 1])
    beside = nsp.evaluate(
        {"input_ids": ids}, {"next_sentence_label": labels}, verbose=0
    )
    inside = nsp.evaluate({"input_ids": ids, "next_sentence_label": labels}, verbose=0)
    assert beside == pytest.approx(inside)
    qa = compat.TFBertForQuestionAnswering(tiny_config(num_labels=2))
    qa.compile(optimizer="sgd", metrics=[keras.metrics.SparseCategoricalAccuracy()])
    starts, ends = np.array([1, 2, 3, 4]), np.array([2, 2, 5, 5])
    data = {"input_ids": ids, "start_positions": starts, "end_positions": ends}
    result = qa.evaluate(data, verbose=0, return_dict=True)
    outputs = qa(ids)
    for output, gold in (("start_logits", starts), ("end_logits", ends)):
        expected = np.mean(np.argmax(outputs[output], -1) == gold)
        got = result[f"{output}_sparse_categorical_accuracy"]
        assert got == pytest.approx(expected)
