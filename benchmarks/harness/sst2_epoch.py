"""compare.py's SST-2 workload: one real fine-tuning epoch, each system its
documented way (`tasks.glue`, keras-hub's preprocessor on raw strings, the
torch reference), in the calling process so its peak RSS is the run's."""

import os
import time

from harness import frameworks
from harness import results
from harness import workloads


def glue_argv(args, out):
    """The flags `tasks.glue` and `torch_glue.py` share for the SST-2 epoch."""
    argv = [
        "--task", "sst2", "--model", args.model, "--output-dir", out,
        "--epochs", "1", "--batch-size", str(args.batch_size),
        "--learning-rate", str(workloads.LEARNING_RATE),
        "--max-seq-length", str(args.seq_length),
        "--max-train-samples", str(args.train_samples),
        "--seed", "1", "--verbose", "0",
    ]  # fmt: skip
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.precision == "bf16":
        argv.append("--mixed-precision")
    return argv


def sst2_bert_keras(args):
    from bert_keras_tasks import glue

    out = os.path.join(args.work_dir, "bert_keras")
    glue.main(glue_argv(args, out))
    return read_glue_results(out)


def sst2_torch(args):
    from harness import torch_glue

    out = os.path.join(args.work_dir, "torch")
    torch_glue.main(glue_argv(args, out) + ["--num-threads", str(args.threads)])
    return read_glue_results(out)


def read_glue_results(out):
    run = results.read_run_results(out)
    return {
        "train_seconds": run["train_time_seconds"],
        "accuracy": 100 * run["eval_accuracy"],
    }


def sst2_keras_hub(args):
    """keras-hub's documented path: raw strings through its preprocessor."""
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf
    from bert_keras_tasks.glue_tasks import get_task
    from bert_keras_tasks.glue_tasks import load_glue

    frameworks.set_tf_threads(args.threads)
    keras.utils.set_random_seed(1)
    frameworks.keras_policy(args.precision)
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
        workloads.LEARNING_RATE, decay_steps=steps, end_learning_rate=0.0
    )
    classifier.compile(
        optimizer=keras.optimizers.AdamW(
            schedule,
            weight_decay=workloads.WEIGHT_DECAY,
            epsilon=1e-6,
            global_clipnorm=1.0,
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


def run(system, args):
    """Train seconds, dev accuracy and examples/s of `system`'s SST-2 epoch."""
    if args.model is None or args.work_dir is None:
        raise SystemExit("sst2 needs --model and --work-dir")
    epoch = {
        "bert_keras": sst2_bert_keras,
        "keras_hub": sst2_keras_hub,
        "torch": sst2_torch,
    }
    result = epoch[system](args)
    result["examples_per_second"] = args.train_samples / result["train_seconds"]
    return result
