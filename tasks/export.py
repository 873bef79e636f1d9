"""Export a bert_keras checkpoint for serving: SavedModel, TFLite or ONNX.

    python -m tasks.export --model DIR --output DIR --format savedmodel
    python -m tasks.export --model DIR --output DIR --format tflite --int8
    python -m tasks.export --model DIR --output DIR --format onnx

--model is a directory written by `save_pretrained` (a `tasks.glue` or
`tasks.squad` output directory, or any HF BERT checkpoint) holding its
tokenizer; the task class is the one config.json's `architectures` names.

- savedmodel: --output becomes a SavedModel with `serving_default` over raw
  strings (the in-graph tokenizer) and `serve_ids` over token ids.
- tflite: --output/model.tflite, the id-input signature (`--int8`:
  dynamic-range int8 weights), with the tokenizer's files beside it.
- onnx: --output/model.onnx, the id-input signature, with the tokenizer's
  files beside it.

The id-input models take sequences padded to exactly --max-length tokens.
docs/serving.md shows how to serve each.
"""

import argparse
import json
import logging
import os
import sys

from .cli import configure_logging
from .cli import model_max_positions

FORMATS = ("savedmodel", "tflite", "onnx")
# The file each single-file format writes into --output.
FILE_NAMES = {"tflite": "model.tflite", "onnx": "model.onnx"}
logger = logging.getLogger("tasks.export")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tasks.export", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model", required=True, help="checkpoint dir (config.json, weights)"
    )
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="savedmodel (string and id signatures), tflite or onnx (id "
        "signature, tokenizer files beside it)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=128,
        help="tokens per sequence: text past it is truncated (savedmodel); "
        "the id inputs' fixed length (tflite, onnx) (default: %(default)s)",
    )
    parser.add_argument(
        "--int8", action="store_true", help="tflite: int8 weights (dynamic range)"
    )
    parser.add_argument(
        "--text-pair",
        action="store_true",
        help="savedmodel: single-text tasks take `text` and `text_pair` "
        "(MRPC, STS-B, ...)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace what --output holds"
    )
    args = parser.parse_args(argv)
    if args.int8 and args.format != "tflite":
        parser.error(
            "--int8 quantizes TFLite models only. Use --format tflite, or drop "
            f"--int8. Received: --format {args.format} --int8"
        )
    if args.text_pair and args.format != "savedmodel":
        parser.error(
            "--text-pair shapes the string signature, which only --format "
            f"savedmodel has. Received: --format {args.format} --text-pair"
        )
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        parser.error(
            "--model must be a checkpoint directory holding config.json (as "
            "save_pretrained writes). Received: --model " + args.model
        )
    # [CLS] and [SEP] plus one token of text.
    if args.max_length < 3:
        parser.error(
            "--max-length must leave room for [CLS], [SEP] and text: at least "
            f"3. Received: --max-length {args.max_length}"
        )
    limit = model_max_positions(args.model)
    if limit is not None and args.max_length > limit:
        parser.error(
            f"--max-length {args.max_length} is longer than the model's "
            f"max_position_embeddings ({limit}): positions past it have no "
            f"embedding. Use --max-length {limit} or less. "
            f"Received: --max-length {args.max_length}"
        )
    target = _target(args)
    if os.path.exists(target) and _holds_files(target):
        if not args.overwrite:
            parser.error(
                f"{target} already exists. Pass --overwrite to replace it, or "
                f"choose another --output. Received: --output {args.output}"
            )
        # --overwrite removes a SavedModel directory, never other files.
        if os.path.isdir(target) and not os.path.isfile(
            os.path.join(target, "saved_model.pb")
        ):
            parser.error(
                f"--overwrite replaces an earlier export, but {target} holds "
                "files that are not a SavedModel. Choose an empty or new "
                f"--output. Received: --output {args.output}"
            )
    return args


def _target(args):
    if args.format == "savedmodel":
        return args.output
    return os.path.join(args.output, FILE_NAMES[args.format])


def _holds_files(path):
    return os.path.isfile(path) or bool(os.listdir(path))


def model_class(directory):
    """The bert_keras class config.json's `architectures` names (BertModel if none).

    Raises:
        ValueError: the architecture is not a BERT class bert_keras has.
    """
    import bert_keras as bk
    from bert_keras.checkpoints.files import read_json

    config = read_json(os.path.join(directory, "config.json"), ValueError)
    names = config.get("architectures") or ["BertModel"]
    name = names[0]
    cls = getattr(bk, name, None)
    if cls is None or getattr(cls, "hf_architecture", None) != name:
        raise ValueError(
            f"{directory}/config.json names architecture {name!r}, which "
            "bert_keras does not have. Expected one of BertModel, "
            "BertForSequenceClassification, BertForTokenClassification, "
            "BertForQuestionAnswering, BertForMaskedLM, ... "
            f"Received: architectures={names}"
        )
    return cls


def export(args):
    """Loads --model and writes --format into --output; returns what it wrote."""
    import shutil

    cls = model_class(args.model)
    model = cls.from_pretrained(args.model)
    target = _target(args)
    if args.overwrite and os.path.isdir(target):
        shutil.rmtree(target)
    if args.format == "savedmodel":
        from bert_keras.serving.savedmodel import export_saved_model

        tokenizer = _tokenizer(args.model)
        export_saved_model(
            model,
            target,
            tokenizer=tokenizer,
            max_length=args.max_length,
            text_pair=args.text_pair,
        )
    else:
        if args.format == "tflite":
            from bert_keras.serving.tflite import export_tflite

            export_tflite(model, target, max_length=args.max_length, int8=args.int8)
        else:
            from bert_keras.serving.onnx import export_onnx

            export_onnx(model, target, max_length=args.max_length)
        # The id models ship with the tokenizer that makes their inputs.
        _tokenizer(args.model).save_pretrained(args.output)
    return {
        "format": args.format,
        "output": target,
        "architecture": cls.hf_architecture,
        "max_length": args.max_length,
        "int8": args.int8,
        "bytes": _size(target),
    }


def _tokenizer(directory):
    from .cli import load_tokenizer

    return load_tokenizer(directory, "--model")


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def main(argv=None):
    configure_logging()
    args = parse_args(argv)
    result = export(args)
    logger.info("wrote %s", json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
