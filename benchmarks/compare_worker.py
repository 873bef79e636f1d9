"""One measurement of `benchmarks/compare.py`, in a fresh interpreter.

    python benchmarks/compare_worker.py \\
        --system {bert_keras,keras_hub,torch,torch_compile,onnxruntime} \\
        --workload {peak,train,infer,pretrain,sst2,export_onnx} \\
        [--shape minilm|base|large|tiny] [--precision fp32|bf16] \\
        [--batch-size 32] [--seq-length 128] [--warmup 3] [--steps 10] \\
        [--threads N] [--onnx-path MODEL.onnx] --output RESULT.json

Each run imports only its own framework (the TensorFlow systems never import
torch, the PyTorch systems never import TensorFlow, onnxruntime imports
neither), times `--steps` steps after `--warmup` untimed ones, and writes the
per-step wall times, their median and the process's peak resident memory
(`ru_maxrss`) as JSON.

Systems: `torch_compile` is the `torch` model under `torch.compile` (inductor,
compiled in the untimed warm-up steps, in this process; a failed compile
raises, never falls back to eager). `onnxruntime` runs inference only, on the
`export_onnx` file of `--onnx-path`, always in float32 (ORT's CPU provider has
no bfloat16 matrix kernels): its result says `"ran_precision": "fp32"`.

Workloads: `peak` times square matrix products (the FLOP/s ceiling for MFU);
`train` a classification training step (forward, backward, AdamW) on random
ids; `infer` a forward pass; `pretrain` an MLM + NSP training step with
`--masked-positions` masked tokens per sequence; `sst2` a real fine-tuning
epoch on SST-2 (see `compare.py`); `export_onnx` (system torch, untimed)
writes transformers' `BertForSequenceClassification` of `--shape` to
`--onnx-path` (opset 17, dynamic batch and sequence).
"""

import argparse
import os
import resource
import statistics
import sys
import time
import types

from harness import flags
from harness import frameworks
from harness import results
from harness import sst2_epoch
from harness import workloads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/compare_worker.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--system",
        required=True,
        choices=("bert_keras", "keras_hub", "torch", "torch_compile", "onnxruntime"),
    )
    parser.add_argument(
        "--workload",
        required=True,
        choices=("peak", "train", "infer", "pretrain", "sst2", "export_onnx"),
    )
    parser.add_argument("--shape", choices=sorted(workloads.SHAPES), default="minilm")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    workloads.add_step_flags(parser)
    parser.add_argument("--matrix-size", type=int, default=4096)
    flags.add_threads(parser)
    parser.add_argument("--model", default=None, help="sst2: checkpoint dir")
    parser.add_argument("--data-dir", default=None, help="sst2: GLUE layout")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--work-dir", default=None, help="sst2: scratch dir")
    parser.add_argument("--onnx-path", default=None, help="export_onnx, onnxruntime")
    parser.add_argument(
        "--runtime",
        choices=("tensorflow", "onnxruntime"),
        default="tensorflow",
        help="bert_keras infer: the Predictor's runtime",
    )
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    if args.runtime != "tensorflow" and (
        args.system != "bert_keras" or args.workload != "infer"
    ):
        parser.error("--runtime applies to --system bert_keras --workload infer")
    allowed = {
        "torch_compile": ("train", "infer"),
        "onnxruntime": ("infer",),
    }.get(args.system)
    if allowed is not None and args.workload not in allowed:
        parser.error(f"--system {args.system} runs only {', '.join(allowed)}")
    if args.workload == "export_onnx" and args.system != "torch":
        parser.error("--workload export_onnx runs with --system torch")
    if "onnx" in f"{args.system} {args.workload}" and not args.onnx_path:
        parser.error("--onnx-path is required")
    return args


def random_batch(args):
    return workloads.random_batch(
        args.batch_size, args.seq_length, args.masked_positions
    )


# === TensorFlow systems ===


class StepTimer:
    """Wall time of every batch `fit` runs (a Keras callback)."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.marks = []

            def on_train_begin(self, logs=None):
                self.marks.append(time.perf_counter())

            def on_train_batch_end(self, batch, logs=None):
                self.marks.append(time.perf_counter())

        return _Timer()


def step_times(marks, warmup):
    deltas = [b - a for a, b in zip(marks, marks[1:])]
    return deltas[warmup:]


def bert_keras_model(args, workload):
    import bert_keras as bk

    config = bk.BertConfig(**workloads.config_arguments(args.shape))
    dtype = "mixed_bfloat16" if args.precision == "bf16" else "float32"
    if workload == "pretrain":
        return bk.BertForPreTraining(
            config, max_predictions_per_seq=args.masked_positions, dtype=dtype
        )
    return bk.BertForSequenceClassification(config, dtype=dtype)


def keras_hub_model(args):
    import keras_hub

    frameworks.keras_policy(args.precision)
    shape = workloads.SHAPES[args.shape]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=workloads.VOCAB_SIZE,
        num_layers=shape["layers"],
        num_heads=shape["heads"],
        hidden_dim=shape["hidden"],
        intermediate_dim=shape["intermediate"],
        max_sequence_length=workloads.MAX_POSITIONS,
    )
    return keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=2, preprocessor=None
    )


def keras_data(args, system, workload):
    import tensorflow as tf

    batch = random_batch(args)
    if system == "keras_hub":
        features = {
            "token_ids": batch["input_ids"],
            "segment_ids": batch["token_type_ids"],
            "padding_mask": batch["attention_mask"].astype(bool),
        }
        labels = batch["labels"]
    else:
        features = {
            key: batch[key] for key in ("input_ids", "token_type_ids", "attention_mask")
        }
        labels = batch["labels"]
        if workload == "pretrain":
            features["masked_lm_positions"] = batch["masked_lm_positions"]
            labels = {
                "labels": batch["masked_lm_ids"],
                "next_sentence_label": batch["next_sentence_label"],
            }
    if workload == "infer":
        return tf.data.Dataset.from_tensors(features).repeat()
    return tf.data.Dataset.from_tensors((features, labels)).repeat()


def run_keras(args):
    import keras

    frameworks.set_tf_threads(args.threads)
    keras.utils.set_random_seed(0)
    if args.system == "bert_keras":
        from bert_keras.training.optimization import create_optimizer

        model = bert_keras_model(args, args.workload)
        model.compile(optimizer=create_optimizer(workloads.LEARNING_RATE))
    else:
        model = keras_hub_model(args)
        model.compile(
            optimizer=keras.optimizers.AdamW(
                workloads.LEARNING_RATE,
                weight_decay=workloads.WEIGHT_DECAY,
                epsilon=1e-6,
                global_clipnorm=1.0,
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    total = args.warmup + args.steps
    if args.workload == "infer":
        return time_keras_inference(args, model)
    data = keras_data(args, args.system, args.workload)
    timer = StepTimer()
    model.fit(data, steps_per_epoch=total, epochs=1, verbose=0, callbacks=[timer])
    return {"step_seconds": step_times(timer.marks, args.warmup)}


def time_keras_inference(args, model):
    """Each system's fastest public call, timed per call, numpy out: bert_keras'
    `Predictor` (on `--runtime`), a `tf.function` around the keras-hub model.
    Returns the step times and, for the Predictor, the seconds it took to make."""
    import tensorflow as tf

    features = next(iter(keras_data(args, args.system, "infer")))
    made = {}
    if args.system == "bert_keras":
        import bert_keras as bk

        model(features)  # builds it
        start = time.perf_counter()
        predictor = bk.Predictor(model, runtime=args.runtime)
        made = {"runtime": args.runtime, "made_seconds": time.perf_counter() - start}
        numpy_features = {name: value.numpy() for name, value in features.items()}

        def call():
            return predictor(numpy_features)["logits"]
    else:
        forward = tf.function(lambda inputs: model(inputs, training=False))

        def call():
            return forward(features).numpy()

    times = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"step_seconds": times[args.warmup :], **made}


def keras_peak(args):
    import tensorflow as tf

    frameworks.set_tf_threads(args.threads)
    dtype = tf.bfloat16 if args.precision == "bf16" else tf.float32
    n = args.matrix_size
    a = tf.random.normal((n, n), dtype=tf.float32)
    b = tf.random.normal((n, n), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)

    @tf.function
    def product(x, y):
        return tf.matmul(x, y)

    times = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        product(a, b).numpy()
        times.append(time.perf_counter() - start)
    return {"step_seconds": times[args.warmup :], "flops_per_step": 2 * n**3}


# === PyTorch ===


def torch_setup(args):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return torch


def compile_model(torch, model):
    """`torch.compile(model)` (inductor) that raises on a failed compile."""
    import torch._dynamo
    import torch._inductor.config

    torch._dynamo.config.suppress_errors = False  # no silent fallback to eager
    # Compiles in this process (untimed warm-up): no pool of compile workers
    # running beside the measured process.
    torch._inductor.config.compile_threads = 1
    return torch.compile(model)


def compile_stats(torch):
    """Graphs compiled and graph breaks; raises when nothing was compiled."""
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    if graphs == 0:
        raise RuntimeError("torch.compile compiled no graph: the run was eager")
    return {
        "compiled_graphs": graphs,
        "graph_breaks": sum(counters["graph_break"].values()),
    }


def run_torch(args):
    torch = torch_setup(args)
    import transformers

    # Loads `datasets`, as the torch rows always have: their RSS stays comparable.
    from harness import torch_glue  # noqa: F401
    from harness import torch_loop

    config = transformers.BertConfig(**workloads.config_arguments(args.shape))
    batch = {k: torch.from_numpy(v).long() for k, v in random_batch(args).items()}
    features = {
        key: batch[key] for key in ("input_ids", "token_type_ids", "attention_mask")
    }
    if args.workload == "pretrain":
        model = transformers.BertForPreTraining(config)
        # HF's own layout: labels over the whole sequence, -100 off the masks.
        labels = torch.full_like(batch["input_ids"], -100)
        labels.scatter_(1, batch["masked_lm_positions"], batch["masked_lm_ids"])
        targets = {
            "labels": labels,
            "next_sentence_label": batch["next_sentence_label"],
        }
    else:
        model = transformers.BertForSequenceClassification(config)
        targets = {"labels": batch["labels"]}
    bf16 = args.precision == "bf16"
    compiled = args.system == "torch_compile"
    forward = compile_model(torch, model) if compiled else model
    extra = {}
    times = []
    if args.workload == "infer":
        model.eval()
        with torch.inference_mode():
            for _ in range(args.warmup + args.steps):
                start = time.perf_counter()
                with torch_loop.bf16_autocast(bf16):
                    forward(**features).logits.float().sum().item()
                times.append(time.perf_counter() - start)
        if compiled:
            extra = compile_stats(torch)
        return {"step_seconds": times[args.warmup :], **extra}
    model.train()
    # The reference AdamW (same exclusions); no warmup, so the rate is constant.
    recipe = types.SimpleNamespace(
        learning_rate=workloads.LEARNING_RATE,
        weight_decay=workloads.WEIGHT_DECAY,
        warmup_ratio=0.0,
    )
    optimizer, _, _ = torch_loop.create_optimizer(model, recipe, total_steps=10**9)
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        with torch_loop.bf16_autocast(bf16):
            loss = forward(**features, **targets).loss
        torch_loop.apply_gradients(loss, model, optimizer)
        float(loss.detach())
        times.append(time.perf_counter() - start)
    if compiled:
        extra = compile_stats(torch)
    return {"step_seconds": times[args.warmup :], **extra}


ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_onnx(args):
    """transformers' classifier of `--shape` (seed 0, eval) as ONNX, untimed."""
    torch = torch_setup(args)
    import transformers

    config = transformers.BertConfig(**workloads.config_arguments(args.shape))
    model = transformers.BertForSequenceClassification(config).eval()
    batch = workloads.random_batch(args.batch_size, args.seq_length, 0)
    example = tuple(torch.from_numpy(batch[name]).long() for name in ONNX_INPUTS)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            model,
            example,
            args.onnx_path,
            input_names=list(ONNX_INPUTS),
            output_names=["logits"],
            dynamic_axes={
                **{name: axes for name in ONNX_INPUTS},
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    return {"onnx_bytes": os.path.getsize(args.onnx_path)}


# === ONNX Runtime ===


def run_onnxruntime(args):
    """Inference of the exported classifier; numpy and onnxruntime only, fp32."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        args.onnx_path, options, providers=["CPUExecutionProvider"]
    )
    names = sorted(i.name for i in session.get_inputs())
    if names != sorted(ONNX_INPUTS):
        raise RuntimeError(f"the ONNX model takes {names}, expected {ONNX_INPUTS}")
    batch = random_batch(args)
    feeds = {name: batch[name].astype(np.int64) for name in ONNX_INPUTS}
    times = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        session.run(["logits"], feeds)
        times.append(time.perf_counter() - start)
    loaded = [name for name in ("torch", "tensorflow") if name in sys.modules]
    if loaded:
        raise RuntimeError(f"the onnxruntime worker imported {loaded}")
    return {"step_seconds": times[args.warmup :], "ran_precision": "fp32"}


def torch_peak(args):
    torch = torch_setup(args)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    n = args.matrix_size
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    times = []
    with torch.inference_mode():
        for _ in range(args.warmup + args.steps):
            start = time.perf_counter()
            torch.matmul(a, b).sum().item()
            times.append(time.perf_counter() - start)
    return {"step_seconds": times[args.warmup :], "flops_per_step": 2 * n**3}


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.system not in ("torch", "torch_compile"):
        frameworks.hide_torch()
    start = time.perf_counter()
    if args.workload == "export_onnx":
        result = export_onnx(args)
    elif args.system == "onnxruntime":
        result = run_onnxruntime(args)
    elif args.workload == "sst2":
        result = sst2_epoch.run(args.system, args)
    elif args.workload == "peak":
        result = torch_peak(args) if args.system == "torch" else keras_peak(args)
    elif args.system in ("torch", "torch_compile"):
        result = run_torch(args)
    else:
        result = run_keras(args)
    if "step_seconds" in result:
        result["median_step_seconds"] = statistics.median(result["step_seconds"])
    result.update(
        system=args.system,
        workload=args.workload,
        shape=args.shape,
        precision=args.precision,
        batch_size=args.batch_size,
        seq_length=args.seq_length,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        wall_seconds=time.perf_counter() - start,
    )
    results.write_json(args.output, result)


if __name__ == "__main__":
    main()
