"""Serving latency: the exported SavedModel from raw strings vs Python pipelines.

    .venv/bin/python benchmarks/serving_latency.py [--model DIR] [--threads 2]
        [--repeats 3] [--output serving_latency.json] [--work-dir DIR]

all-MiniLM-L6-v2 (`BertModel`) at seq 128, batch 1 and batch 32, SST-2 dev
sentences, each call end to end (Python strings in, numpy out):

- `savedmodel_text`: the SavedModel's `serving_default` on raw strings
  (in-graph tokenizer, padded to 128), `tf.saved_model.load` with
  TensorFlow and TF Text only.
- `keras_hf_tokenizer`: HF fast tokenizer in Python + the bert_keras model,
  called eagerly (`model(inputs)`) and through `predict_on_batch`.
- `torch_hf_tokenizer`: HF fast tokenizer + transformers' PyTorch
  `BertModel` under `torch.inference_mode()`.
- `onnx_ids`, `tflite_ids`, `tflite_int8_ids`: HF fast tokenizer + the
  id-input export (onnxruntime, LiteRT interpreter).

Every tokenizer pads to 128 (`padding="max_length"`), so all systems run the
same shapes. Each system is a fresh process pinned to --threads (TensorFlow
ones cannot see torch, `harness.frameworks.hide_torch`); within each repeat
the systems take turns going first; a worker times --calls-1 / --calls-32
calls after --warmup untimed ones and reports their median; the table is the
median over repeats. Each worker also returns the [CLS] vector of the first
sentence, compared with PyTorch's as a check that all run the same model.
"""

import argparse
import json
import os
import statistics
import sys
import time

from harness import flags
from harness import processes
from harness import results

SYSTEMS = (
    "savedmodel_text",
    "keras_hf_tokenizer",
    "keras_predict_hf_tokenizer",
    "torch_hf_tokenizer",
    "onnx_ids",
    "tflite_ids",
    "tflite_int8_ids",
)
MAX_LENGTH = 128
BATCH_SIZES = (1, 32)
ID_NAMES = ("input_ids", "token_type_ids", "attention_mask")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    flags.add_model(parser)
    flags.add_threads(parser)
    flags.add_work_dir(parser, help="exports and logs (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calls-1", type=int, default=40)
    parser.add_argument("--calls-32", type=int, default=8)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--data-dir", default="tasks/data/glue")
    parser.add_argument("--output", default="serving_latency.json")
    # Internal: one system's measurement, in its own process.
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    flags.require_model(parser, args)
    return args


def sentences(data_dir, count):
    with open(os.path.join(data_dir, "SST-2", "dev.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t")[0] for line in f][1:]
    return rows[:count]


# --- Exports (parent process) ------------------------------------------------


def export_all(model_dir, work_dir):
    """SavedModel, ONNX and TFLite (float32, int8) of the model, in work_dir."""
    import bert_keras as bk
    from bert_keras.serving.onnx import export_onnx
    from bert_keras.serving.savedmodel import export_saved_model
    from bert_keras.serving.tflite import export_tflite

    paths = {
        "savedmodel": os.path.join(work_dir, "savedmodel"),
        "onnx": os.path.join(work_dir, "model.onnx"),
        "tflite": os.path.join(work_dir, "model.tflite"),
        "tflite_int8": os.path.join(work_dir, "model_int8.tflite"),
    }
    if all(os.path.exists(path) for path in paths.values()):
        return paths
    model = bk.BertModel.from_pretrained(model_dir)
    tokenizer = bk.AutoTokenizer.from_pretrained(model_dir)
    export_saved_model(model, paths["savedmodel"], tokenizer, max_length=MAX_LENGTH)
    export_onnx(model, paths["onnx"], max_length=MAX_LENGTH)
    export_tflite(model, paths["tflite"], max_length=MAX_LENGTH)
    export_tflite(model, paths["tflite_int8"], max_length=MAX_LENGTH, int8=True)
    return paths


# --- Workers: one system each, in a fresh process ----------------------------


def _tokenize(tokenizer, texts, tensors="np"):
    encoded = tokenizer(
        texts,
        padding="max_length",
        truncation=True,
        max_length=MAX_LENGTH,
        return_tensors=tensors,
    )
    if tensors == "np":
        return {name: encoded[name].astype("int32") for name in ID_NAMES}
    return encoded


def make_call(system, model_dir, paths, threads):
    """`fn(list of str) -> (batch, hidden) numpy [CLS] states` for `system`."""
    if system == "torch_hf_tokenizer":
        import torch
        import transformers

        torch.set_num_threads(threads)
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        model = transformers.BertModel.from_pretrained(model_dir).eval()

        def call(texts):
            with torch.inference_mode():
                out = model(**_tokenize(tokenizer, texts, "pt"))
            return out.last_hidden_state[:, 0].numpy()

        return call
    from harness.frameworks import hide_torch
    from harness.frameworks import set_tf_threads

    hide_torch()
    set_tf_threads(threads)
    if system == "savedmodel_text":
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the tokenizer's ops

        serve = tf.saved_model.load(paths["savedmodel"]).signatures["serving_default"]
        return lambda texts: serve(text=tf.constant(texts))["last_hidden_state"][
            :, 0
        ].numpy()
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    if system in ("keras_hf_tokenizer", "keras_predict_hf_tokenizer"):
        import bert_keras as bk

        model = bk.BertModel.from_pretrained(model_dir)
        if system == "keras_hf_tokenizer":
            run = lambda inputs: model(inputs, training=False)  # noqa: E731
        else:
            run = model.predict_on_batch
        return lambda texts: _numpy(
            run(_tokenize(tokenizer, texts))["last_hidden_state"]
        )[:, 0]
    if system == "onnx_ids":
        from bert_keras.serving.onnx import onnx_session

        session = onnx_session(paths["onnx"], num_threads=threads)
        return lambda texts: session.run(
            ["last_hidden_state"], _tokenize(tokenizer, texts)
        )[0][:, 0]
    from bert_keras.serving.tflite import tflite_runner

    path = paths["tflite_int8" if system == "tflite_int8_ids" else "tflite"]
    runner = tflite_runner(path, num_threads=threads)
    return lambda texts: runner(**_tokenize(tokenizer, texts))["last_hidden_state"][
        :, 0
    ]


def _numpy(value):
    return value.numpy() if hasattr(value, "numpy") else value


def worker(args):
    with open(os.path.join(args.work_dir, "paths.json"), encoding="utf-8") as f:
        paths = json.load(f)
    call = make_call(args.worker, args.model, paths, args.threads)
    texts = sentences(args.data_dir, max(BATCH_SIZES) * 4)
    timings, cls = {}, None
    for batch in BATCH_SIZES:
        calls = args.calls_1 if batch == 1 else args.calls_32
        batches = [
            texts[(i * batch) % len(texts) :][:batch]
            for i in range(args.warmup + calls)
        ]
        seconds = []
        for index, chunk in enumerate(batches):
            start = time.perf_counter()
            out = call(chunk)
            if index >= args.warmup:
                seconds.append(time.perf_counter() - start)
        timings[str(batch)] = 1000 * statistics.median(seconds)
        if batch == 1:
            cls = call(texts[:1])[0][:8].tolist()
        del out
    with open(args.worker_output, "w", encoding="utf-8") as f:
        json.dump({"median_ms": timings, "cls_head": cls}, f)


# --- Parent: exports, turns, table -------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    systems = args.systems.split(",")
    with processes.scratch_directory(args.work_dir, "serving_latency_") as work:
        paths = export_all(args.model, work)
        with open(os.path.join(work, "paths.json"), "w", encoding="utf-8") as f:
            json.dump(paths, f)
        runs = {system: [] for system in systems}
        for repeat in range(args.repeats):
            for system in processes.in_turn(systems, repeat):
                output = os.path.join(work, f"{repeat}_{system}.json")
                command = [
                    sys.executable,
                    os.path.abspath(__file__),
                    *("--model", args.model, "--threads", str(args.threads)),
                    *("--work-dir", work, "--data-dir", args.data_dir),
                    *("--warmup", str(args.warmup)),
                    *("--calls-1", str(args.calls_1)),
                    *("--calls-32", str(args.calls_32)),
                    *("--worker", system, "--worker-output", output),
                ]
                processes.run_logged(
                    command, output.replace(".json", ".log"), system, args.threads
                )
                with open(output, encoding="utf-8") as f:
                    runs[system].append(json.load(f))
        sizes = {
            name: _size(path) for name, path in paths.items() if os.path.exists(path)
        }
    payload = summarize(args, systems, runs, sizes)
    results.write_json(args.output, payload)
    print(table(payload))
    return payload


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def summarize(args, systems, runs, sizes):
    import numpy as np

    reference = np.array(
        runs.get("torch_hf_tokenizer", runs[systems[0]])[0]["cls_head"]
    )
    rows = {}
    for system in systems:
        rows[system] = {
            f"batch_{batch}_ms": statistics.median(
                run["median_ms"][str(batch)] for run in runs[system]
            )
            for batch in BATCH_SIZES
        }
        rows[system]["per_repeat_ms"] = [run["median_ms"] for run in runs[system]]
        head = np.array(runs[system][0]["cls_head"])
        rows[system]["cls_max_abs_diff_vs_reference"] = float(
            np.max(np.abs(head - reference))
        )
    default = args.model == flags.default_model()
    settings = {
        "model": "all-MiniLM-L6-v2"
        if default
        else os.path.basename(os.path.normpath(args.model)),
        "max_length": MAX_LENGTH,
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "calls_1": args.calls_1,
        "calls_32": args.calls_32,
        "load_average_at_end": os.getloadavg(),
    }
    payload = {**results.header(settings), "systems": rows, "bytes": sizes}
    # No absolute paths in results files.
    payload["command"] = payload["command"].replace(args.model, settings["model"])
    if args.work_dir:
        payload["command"] = payload["command"].replace(args.work_dir, "WORK_DIR")
    return payload


def table(payload):
    lines = [
        "| system | batch 1 (ms) | batch 32 (ms) |",
        "|---|---:|---:|",
    ]
    for system, row in payload["systems"].items():
        lines.append(
            f"| {system} | {row['batch_1_ms']:.1f} | {row['batch_32_ms']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
