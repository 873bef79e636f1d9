"""Model cards (the Hub's README.md) for bert_keras checkpoints."""

import os

import numpy as np
from huggingface_hub import ModelCard
from huggingface_hub import ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from bert_keras.version import __version__

# The Hub's task of each architecture (its widget and search filter).
PIPELINE_TAGS = {
    "BertModel": "feature-extraction",
    "BertForPreTraining": "fill-mask",
    "BertForMaskedLM": "fill-mask",
    "BertForSequenceClassification": "text-classification",
    "BertForTokenClassification": "token-classification",
    "BertForQuestionAnswering": "question-answering",
    "BertForMultipleChoice": "multiple-choice",
}
LIBRARY_TAGS = ["bert", "keras", "tensorflow"]


def model_card(
    model,
    *,
    model_name=None,
    description=None,
    base_model=None,
    language=None,
    license=None,
    datasets=None,
    metrics=None,
    results=None,
    training_hyperparameters=None,
    tags=None,
    eval_results=None,
):
    """Builds a Hub model card describing a bert_keras model.

    Args:
        model: a bert_keras model.
        model_name: str, the card's title and the id in the usage example
            (e.g. the repo id); defaults to the architecture name.
        description: str, a paragraph about the model; a default one names
            the architecture and base model.
        base_model: str, Hub id of the model this one was trained from;
            defaults to `model.config._name_or_path` when that is a Hub id.
        language, license, datasets, metrics: card metadata (see
            `huggingface_hub.ModelCardData`), e.g. `license="apache-2.0"`,
            `datasets=["nyu-mll/glue"]`.
        results: dict `{metric_name: value}` shown as an evaluation table.
        training_hyperparameters: dict `{name: value}` shown as a table
            (learning rate, batch size, epochs, ...).
        tags: list of extra tags, added to `["bert", "keras", "tensorflow"]`.
        eval_results: list of `huggingface_hub.EvalResult` for the structured
            `model-index` metadata (needs `model_name`).

    Returns:
        `huggingface_hub.ModelCard`; `.save("README.md")` writes it.

    Example:

    >>> card = model_card(model, model_name="me/bert-sst2",
    ...                   datasets=["nyu-mll/glue"], results={"accuracy": 0.92})
    >>> card.save("out/README.md")
    """
    architecture = model.hf_architecture
    config = model.config
    base_model = base_model or _hub_id(getattr(config, "_name_or_path", None))
    card_data = ModelCardData(
        library_name="bert_keras",
        tags=LIBRARY_TAGS + [tag for tag in tags or [] if tag not in LIBRARY_TAGS],
        base_model=base_model,
        pipeline_tag=PIPELINE_TAGS.get(architecture),
        language=language,
        license=license,
        datasets=datasets,
        metrics=metrics,
        model_name=model_name if eval_results else None,
        eval_results=eval_results,
    )
    title = model_name or architecture
    if description is None:
        description = (
            f"A BERT `{architecture}` for Keras 3 (TensorFlow), written by "
            f"[bert_keras](https://pypi.org/project/bert-keras/) {__version__} in "
            "the Hugging Face format."
        )
        if base_model:
            description += (
                f" Trained from [{base_model}](https://huggingface.co/{base_model})."
            )
    sections = [
        f"---\n{card_data.to_yaml()}\n---",
        f"# {title}",
        description,
        "## Model details",
        _table(("Field", "Value"), _details(model)),
    ]
    if results:
        sections += ["## Evaluation results", _table(("Metric", "Value"), results)]
    if training_hyperparameters:
        sections += [
            "## Training hyperparameters",
            _table(("Hyperparameter", "Value"), training_hyperparameters),
        ]
    sections += ["## How to use", _usage(model, model_name or "path/to/checkpoint")]
    return ModelCard("\n\n".join(sections) + "\n")


def _hub_id(name):
    """Returns `name` if it is a Hub repo id (not a local path), else None."""
    if not name or os.path.isabs(name) or os.path.exists(name):
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def _details(model):
    config = model.config
    parameters = sum(
        int(np.prod(variable.shape)) for variable, _ in model.hf_variables().values()
    )
    details = {
        "Architecture": f"`{model.hf_architecture}`",
        "Layers": config.num_hidden_layers,
        "Hidden size": config.hidden_size,
        "Attention heads": config.num_attention_heads,
        "Intermediate size": config.intermediate_size,
        "Vocabulary size": config.vocab_size,
        "Max positions": config.max_position_embeddings,
        "Activation": f"`{config.hidden_act}`",
        "Parameters": f"{parameters:,}",
    }
    if model.hf_architecture in (
        "BertForSequenceClassification",
        "BertForTokenClassification",
    ):
        labels = [config.id2label[i] for i in sorted(config.id2label)]
        details["Labels"] = ", ".join(f"`{label}`" for label in labels)
    return details


def _table(headers, rows):
    lines = [f"| {headers[0]} | {headers[1]} |", "| --- | --- |"]
    for name, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"| {name} | {value} |")
    return "\n".join(lines)


def _usage(model, name):
    architecture = model.hf_architecture
    return (
        "```python\n"
        "import bert_keras as bk\n\n"
        f'model = bk.{type(model).__name__}.from_pretrained("{name}")\n'
        f'tokenizer = bk.AutoTokenizer.from_pretrained("{name}")\n'
        "```\n\n"
        "The checkpoint is a regular transformers checkpoint too: "
        f'`transformers.{architecture}.from_pretrained("{name}")` loads it in '
        "PyTorch."
    )
