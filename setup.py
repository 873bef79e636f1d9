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
    packages=find_packages(include=["bert_keras", "bert_keras.*", "tasks", "tasks.*"]),
    include_package_data=True,
    package_data={"tasks": ["data/**/*", "metrics/**/*"]},
    install_requires=[
        "tensorflow",
        "keras>=3.12",
        "keras-hub",
        "transformers",
        "tokenizers",
        "huggingface_hub",
        "safetensors",
        "datasets",
        "evaluate",
        "numpy",
        # tasks/: training curves.
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "ruff", "torch==2.13.0", "scipy", "scikit-learn"],
    },
)
