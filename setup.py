"""Packaging for bert_keras: BERT for Keras 3 with exact Hugging Face checkpoints."""

import pathlib
import re

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (HERE / "bert_keras" / "version.py").read_text(),
    re.M,
).group(1)

setup(
    name="bert_keras",
    version=VERSION,
    description=(
        "BERT for Keras 3 on TensorFlow, loading and saving Hugging Face "
        "checkpoints exactly."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # The task CLIs install as `bert_keras_tasks` (a plain `tasks` would clash
    # in site-packages); from a checkout they stay `python -m tasks.glue`.
    packages=find_packages(include=["bert_keras", "bert_keras.*"])
    + ["bert_keras_tasks"]
    + [f"bert_keras_tasks.{name}" for name in find_packages("tasks")],
    package_dir={"bert_keras_tasks": "tasks"},
    include_package_data=True,
    package_data={"bert_keras_tasks": ["data/**/*", "metrics/**/*"]},
    # What `import bert_keras` needs, and no more.
    install_requires=[
        "tensorflow",
        "keras>=3.12",
        "transformers",
        "huggingface_hub",
        "safetensors",
        "ml_dtypes",
        "numpy",
    ],
    extras_require={
        # The task CLIs (`bert-keras glue|squad|pretrain|demo`).
        "tasks": [
            "datasets",
            "evaluate",
            "tokenizers",
            "matplotlib",
            # TensorBoard logs are written by TensorFlow; this reads them
            # (`tensorboard --logdir OUT/runs`).
            "tensorboard",
            "scipy",
            "scikit-learn",
        ],
        # Serving (`bert_keras.serving`): the in-graph tokenizer's WordPiece op;
        # the ONNX converter and runtime; the LiteRT (TFLite) interpreter.
        "export": [
            "tensorflow-text==2.21.1",
            "tf2onnx==1.17.0",
            "onnxruntime==1.32.0",
            "ai-edge-litert==2.3.0",
        ],
        # The test suite and benchmarks: the CLIs, the PyTorch reference, keras-hub.
        "test": [
            "bert_keras[tasks]",
            "bert_keras[export]",
            "pytest",
            "pytest-xdist",
            "ruff",
            "torch==2.13.0",
            "keras-hub",
            # LoRA adapters are checked against PEFT itself.
            "peft",
        ],
    },
    entry_points={"console_scripts": ["bert-keras = bert_keras_tasks.cli:main"]},
)
