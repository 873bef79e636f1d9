"""What int8 costs: SST-2 dev accuracy of the float32 and int8 TFLite exports.

    .venv/bin/python benchmarks/tflite_int8_accuracy.py --model RUN_DIR \\
        [--data-dir tasks/data/glue] [--max-length 128] \\
        [--output tflite_int8_accuracy.json]

RUN_DIR is a `python -m tasks.glue --task sst2` output directory (a model
fine-tuned on SST-2, with its tokenizer). The script exports its id-input
signature to TFLite twice, float32 and with dynamic-range int8 weights
(`bert_keras.serving.tflite`), runs both with the LiteRT interpreter on every
dev sentence (tokenized by the HF tokenizer, padded to --max-length) and
reports both accuracies, the Keras model's, the file sizes and how many
predictions int8 changes.
"""

import argparse
import csv
import os
import tempfile

import numpy as np
from harness import results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="tasks.glue sst2 output dir")
    parser.add_argument("--data-dir", default="tasks/data/glue")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", default="tflite_int8_accuracy.json")
    return parser.parse_args(argv)


def read_dev(data_dir):
    path = os.path.join(data_dir, "SST-2", "dev.tsv")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row["sentence"] for row in rows], np.array([int(r["label"]) for r in rows])


def predict(run, batches):
    """Argmax of `run(batch)["logits"]` over every batch."""
    return np.concatenate([np.argmax(run(batch)["logits"], -1) for batch in batches])


def main(argv=None):
    args = parse_args(argv)
    import bert_keras as bk
    from bert_keras.serving.tflite import convert_to_tflite
    from bert_keras.serving.tflite import tflite_runner

    sentences, labels = read_dev(args.data_dir)
    tokenizer = bk.AutoTokenizer.from_pretrained(args.model)
    model = bk.BertForSequenceClassification.from_pretrained(args.model)
    encoded = tokenizer(
        sentences,
        padding="max_length",
        truncation=True,
        max_length=args.max_length,
        return_tensors="np",
    )
    names = ("input_ids", "token_type_ids", "attention_mask")
    batches = [
        {
            name: encoded[name][start : start + args.batch_size].astype(np.int32)
            for name in names
        }
        for start in range(0, len(sentences), args.batch_size)
    ]
    predictions = {"keras": predict(lambda b: model(b, training=False), batches)}
    sizes = {}
    with tempfile.TemporaryDirectory() as directory:
        for name, int8 in (("tflite_float32", False), ("tflite_int8", True)):
            path = os.path.join(directory, f"{name}.tflite")
            with open(path, "wb") as handle:
                handle.write(convert_to_tflite(model, args.max_length, int8=int8))
            sizes[name] = os.path.getsize(path)
            runner = tflite_runner(path)
            predictions[name] = predict(lambda b, r=runner: r(**b), batches)
    accuracy = {name: float(np.mean(p == labels)) for name, p in predictions.items()}
    changed = int(np.sum(predictions["tflite_int8"] != predictions["tflite_float32"]))
    payload = {
        **results.header(
            {
                "model": os.path.basename(os.path.normpath(args.model)),
                "max_length": args.max_length,
                "batch_size": args.batch_size,
            }
        ),
        "dev_examples": len(labels),
        "accuracy": accuracy,
        "int8_accuracy_cost": accuracy["tflite_float32"] - accuracy["tflite_int8"],
        "int8_changed_predictions": changed,
        "bytes": sizes,
    }
    # No absolute paths in results files: the run directory by its name.
    payload["command"] = payload["command"].replace(
        args.model, payload["settings"]["model"]
    )
    results.write_json(args.output, payload)
    print(
        f"SST-2 dev ({len(labels)}): keras {accuracy['keras']:.4f}, tflite "
        f"float32 {accuracy['tflite_float32']:.4f} ({sizes['tflite_float32']:,} B), "
        f"int8 {accuracy['tflite_int8']:.4f} ({sizes['tflite_int8']:,} B); "
        f"int8 changes {changed} predictions"
    )
    return payload


if __name__ == "__main__":
    main()
