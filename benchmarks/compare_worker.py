"""One measurement of `benchmarks/compare.py`, in a fresh interpreter.

    python benchmarks/compare_worker.py --system {bert_keras,keras_hub,torch} \\
        --workload {peak,train,infer,pretrain,sst2} [--shape minilm|base] \\
        [--precision fp32|bf16] [--batch-size 32] [--seq-length 128] \\
        [--warmup 3] [--steps 10] [--threads N] --output RESULT.json

Each run imports only its own framework (the TensorFlow systems never import
torch, the PyTorch system never imports TensorFlow), times `--steps` steps
after `--warmup` untimed ones, and writes the per-step wall times, their
median and the process's peak resident memory (`ru_maxrss`) as JSON.

Workloads: `peak` times square matrix products (the FLOP/s ceiling for MFU);
`train` a classification training step (forward, backward, AdamW) on random
ids; `infer` a forward pass; `pretrain` an MLM + NSP training step with
`--masked-positions` masked tokens per sequence; `sst2` a real fine-tuning
epoch on SST-2 (see `compare.py`).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time
import types

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHAPES = {
    "minilm": {"layers": 6, "hidden": 384, "heads": 12, "intermediate": 1536},
    "base": {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072},
}
VOCAB_SIZE = 30522
MAX_POSITIONS = 512
LEARNING_RATE = 5e-5
WEIGHT_DECAY = 0.01


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/compare_worker.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--system", required=True, choices=("bert_keras", "keras_hub", "torch")
    )
    parser.add_argument(
        "--workload",
        required=True,
        choices=("peak", "train", "infer", "pretrain", "sst2"),
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="minilm")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--masked-positions", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--matrix-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--model", default=None, help="sst2: checkpoint dir")
    parser.add_argument("--data-dir", default=None, help="sst2: GLUE layout")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--work-dir", default=None, help="sst2: scratch dir")
    parser.add_argument("--output", required=True)
    return parser.parse_args(argv)


def random_batch(args, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (args.batch_size, args.seq_length)
    ids = rng.integers(1000, VOCAB_SIZE, size=shape, dtype=np.int32)
    ids[:, 0] = 101  # [CLS]
    ids[:, -1] = 102  # [SEP]
    half = args.seq_length // 2
    segments = np.zeros(shape, dtype=np.int32)
    segments[:, half:] = 1
    positions = np.stack(
        [
            np.sort(
                rng.choice(
                    np.arange(1, args.seq_length - 1),
                    args.masked_positions,
                    replace=False,
                )
            )
            for _ in range(args.batch_size)
        ]
    ).astype(np.int32)
    return {
        "input_ids": ids,
        "token_type_ids": segments,
        "attention_mask": np.ones(shape, dtype=np.int32),
        "labels": rng.integers(0, 2, size=(args.batch_size,), dtype=np.int32),
        "masked_lm_positions": positions,
        "masked_lm_ids": rng.integers(
            1000, VOCAB_SIZE, size=positions.shape, dtype=np.int32
        ),
        "next_sentence_label": rng.integers(
            0, 2, size=(args.batch_size,), dtype=np.int32
        ),
    }


def set_tf_threads(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)


# === TensorFlow systems ===


class StepTimer:
    """Wall time of every batch `fit`/`predict` runs (a Keras callback)."""

    def __new__(cls, kind):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.marks = []

            def _mark(self, batch, logs=None):
                self.marks.append(time.perf_counter())

            def _begin(self, logs=None):
                self.marks.append(time.perf_counter())

        timer = _Timer()
        if kind == "train":
            timer.on_train_begin = timer._begin
            timer.on_train_batch_end = timer._mark
        else:
            timer.on_predict_begin = timer._begin
            timer.on_predict_batch_end = timer._mark
        return timer


def step_times(marks, warmup):
    deltas = [b - a for a, b in zip(marks, marks[1:])]
    return deltas[warmup:]


def keras_policy(precision):
    import keras

    keras.config.set_dtype_policy(
        "mixed_bfloat16" if precision == "bf16" else "float32"
    )


def bert_keras_model(args, workload):
    import bert_keras as bk

    shape = SHAPES[args.shape]
    config = bk.BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=shape["hidden"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        intermediate_size=shape["intermediate"],
        max_position_embeddings=MAX_POSITIONS,
        num_labels=2,
    )
    dtype = "mixed_bfloat16" if args.precision == "bf16" else "float32"
    if workload == "pretrain":
        return bk.BertForPreTraining(
            config, max_predictions_per_seq=args.masked_positions, dtype=dtype
        )
    return bk.BertForSequenceClassification(config, dtype=dtype)


def keras_hub_model(args):
    import keras_hub

    keras_policy(args.precision)
    shape = SHAPES[args.shape]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB_SIZE,
        num_layers=shape["layers"],
        num_heads=shape["heads"],
        hidden_dim=shape["hidden"],
        intermediate_dim=shape["intermediate"],
        max_sequence_length=MAX_POSITIONS,
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

    set_tf_threads(args.threads)
    keras.utils.set_random_seed(0)
    if args.system == "bert_keras":
        from bert_keras.optimization import create_optimizer

        model = bert_keras_model(args, args.workload)
        model.compile(optimizer=create_optimizer(LEARNING_RATE))
    else:
        model = keras_hub_model(args)
        model.compile(
            optimizer=keras.optimizers.AdamW(
                LEARNING_RATE,
                weight_decay=WEIGHT_DECAY,
                epsilon=1e-6,
                global_clipnorm=1.0,
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    data = keras_data(args, args.system, args.workload)
    total = args.warmup + args.steps
    if args.workload == "infer":
        timer = StepTimer("predict")
        model.predict(data, steps=total, verbose=0, callbacks=[timer])
    else:
        timer = StepTimer("train")
        model.fit(data, steps_per_epoch=total, epochs=1, verbose=0, callbacks=[timer])
    return {"step_seconds": step_times(timer.marks, args.warmup)}


def keras_peak(args):
    import tensorflow as tf

    set_tf_threads(args.threads)
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


def torch_autocast(args):
    import contextlib

    import torch

    if args.precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_torch(args):
    torch = torch_setup(args)
    import torch_glue
    import transformers

    shape = SHAPES[args.shape]
    config = transformers.BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=shape["hidden"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        intermediate_size=shape["intermediate"],
        max_position_embeddings=MAX_POSITIONS,
        num_labels=2,
    )
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
    times = []
    if args.workload == "infer":
        model.eval()
        with torch.inference_mode():
            for _ in range(args.warmup + args.steps):
                start = time.perf_counter()
                with torch_autocast(args):
                    model(**features).logits.float().sum().item()
                times.append(time.perf_counter() - start)
        return {"step_seconds": times[args.warmup :]}
    model.train()
    # torch_glue's AdamW (same exclusions); no warmup, so the rate is constant.
    recipe = types.SimpleNamespace(
        learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY, warmup_ratio=0.0
    )
    optimizer, _, _ = torch_glue.create_optimizer(model, recipe, total_steps=10**9)
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        with torch_autocast(args):
            loss = model(**features, **targets).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())
        times.append(time.perf_counter() - start)
    return {"step_seconds": times[args.warmup :]}


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


# === SST-2: a real fine-tuning epoch, each system as its docs recommend ===


def glue_argv(args, out):
    """The flags `tasks.glue` and `torch_glue.py` share for the SST-2 epoch."""
    argv = [
        "--task", "sst2", "--model", args.model, "--output-dir", out,
        "--epochs", "1", "--batch-size", str(args.batch_size),
        "--learning-rate", str(LEARNING_RATE), "--max-seq-length", str(args.seq_length),
        "--max-train-samples", str(args.train_samples), "--seed", "1", "--verbose", "0",
    ]  # fmt: skip
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.precision == "bf16":
        argv.append("--mixed-precision")
    return argv


def sst2_bert_keras(args):
    from tasks import glue

    out = os.path.join(args.work_dir, "bert_keras")
    glue.main(glue_argv(args, out))
    return read_glue_results(out)


def sst2_torch(args):
    import torch_glue

    out = os.path.join(args.work_dir, "torch")
    torch_glue.main(glue_argv(args, out) + ["--num-threads", str(args.threads)])
    return read_glue_results(out)


def read_glue_results(out):
    with open(os.path.join(out, "results.json"), encoding="utf-8") as handle:
        results = json.load(handle)
    return {
        "train_seconds": results["train_time_seconds"],
        "accuracy": 100 * results["eval_accuracy"],
    }


def sst2_keras_hub(args):
    """keras-hub's documented path: raw strings through its preprocessor."""
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    from tasks.glue_tasks import get_task
    from tasks.glue_tasks import load_glue

    set_tf_threads(args.threads)
    keras.utils.set_random_seed(1)
    keras_policy(args.precision)
    splits, _ = load_glue(get_task("sst2"), args.data_dir, splits=("train", "dev"))
    train = splits["train"].select(range(min(args.train_samples, len(splits["train"]))))
    dev = splits["dev"]
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        args.model, sequence_length=args.seq_length
    )
    classifier = keras_hub.models.BertTextClassifier.from_preset(
        args.model, num_classes=2, preprocessor=preprocessor
    )
    steps = -(-len(train) // args.batch_size)
    schedule = keras.optimizers.schedules.PolynomialDecay(
        LEARNING_RATE, decay_steps=steps, end_learning_rate=0.0
    )
    classifier.compile(
        optimizer=keras.optimizers.AdamW(
            schedule, weight_decay=WEIGHT_DECAY, epsilon=1e-6, global_clipnorm=1.0
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    # Raw strings in, batched: the task maps its preprocessor over them.
    train_ds = (
        tf.data.Dataset.from_tensor_slices(
            (list(train["sentence1"]), np.asarray(train["label"]))
        )
        .shuffle(len(train), seed=1)
        .batch(args.batch_size)
    )
    dev_ds = tf.data.Dataset.from_tensor_slices(
        (list(dev["sentence1"]), np.asarray(dev["label"]))
    ).batch(128)
    start = time.perf_counter()
    classifier.fit(train_ds, epochs=1, verbose=0)
    _, accuracy = classifier.evaluate(dev_ds, verbose=0)  # one dev pass, as the others
    train_seconds = time.perf_counter() - start
    return {"train_seconds": train_seconds, "accuracy": 100 * float(accuracy)}


def hide_torch():
    """Makes this process see no `torch`, as on a TensorFlow user's machine.

    bert_keras installs without PyTorch, but this venv has it for the PyTorch
    peer, and transformers (which bert_keras imports for `BertConfig`) loads
    torch whenever `importlib.util.find_spec` finds it: 230 MB of resident
    memory a TensorFlow user's process does not have. Here `find_spec` reports
    torch missing and importing it fails, as if it were not installed.
    """
    import importlib.abc
    import importlib.util

    def is_torch(name):
        return name == "torch" or name.startswith("torch.")

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if is_torch(name):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    find_spec = importlib.util.find_spec

    def find_spec_without_torch(name, package=None):
        return None if is_torch(name) else find_spec(name, package)

    importlib.util.find_spec = find_spec_without_torch
    sys.meta_path.insert(0, NoTorch())


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.system != "torch":
        hide_torch()
    sys.path.insert(0, REPO_ROOT)
    start = time.perf_counter()
    if args.workload == "sst2":
        if args.model is None or args.work_dir is None:
            raise SystemExit("sst2 needs --model and --work-dir")
        run = {
            "bert_keras": sst2_bert_keras,
            "keras_hub": sst2_keras_hub,
            "torch": sst2_torch,
        }
        result = run[args.system](args)
        result["examples_per_second"] = args.train_samples / result["train_seconds"]
    elif args.workload == "peak":
        result = torch_peak(args) if args.system == "torch" else keras_peak(args)
    elif args.system == "torch":
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
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        wall_seconds=time.perf_counter() - start,
    )
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")


if __name__ == "__main__":
    main()
