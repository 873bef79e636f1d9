"""The nine GLUE tasks as data (files, columns, labels, metrics), their loader,
the tokenization and the scores `tasks.glue` and the PyTorch reference share.

Local data uses the layout of GLUE's own download script
(`DIR/<TaskDir>/train.tsv`, `dev.tsv`; MNLI `dev_matched.tsv` and
`dev_mismatched.tsv`). The files are tab-separated with no quoting: a field
may start with `"` and must not swallow the next row, so rows are split on tabs
only and every line is accounted for.
"""

import csv
import dataclasses
import io
import logging
import math
import os

import datasets

from .cli import encoding_fingerprint
from .data_files import read_utf8

METRICS_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "metrics", "glue"
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GlueTask:
    name: str  # CLI / Hub config name, e.g. "sst2"
    directory: str  # GLUE folder name, e.g. "SST-2"
    text_columns: tuple  # TSV column indices of sentence (and pair)
    label_column: int  # TSV column index of the label (-1 = last)
    label_names: tuple  # id -> name, in the Hub dataset's order; () = regression
    metric_name: str  # config of tasks/metrics/glue
    dev_splits: tuple = ("dev",)  # file stems of the evaluation sets
    header: bool = True
    # Raw label strings in the files, when they are not the ids themselves.
    raw_labels: tuple = ()
    num_columns: int = 0  # expected fields per row; 0 = any

    @property
    def num_labels(self):
        return len(self.label_names) or 1

    @property
    def is_regression(self):
        return not self.label_names

    @property
    def is_pair(self):
        return len(self.text_columns) == 2

    def head_config(self):
        """`from_pretrained` keywords of this task's classifier, either framework."""
        config = {
            "num_labels": self.num_labels,
            "problem_type": "regression"
            if self.is_regression
            else "single_label_classification",
        }
        if not self.is_regression:
            config["id2label"] = dict(enumerate(self.label_names))
            config["label2id"] = {name: i for i, name in enumerate(self.label_names)}
        return config


TASKS = {
    task.name: task
    for task in (
        GlueTask(
            "cola",
            "CoLA",
            (3,),
            1,
            ("unacceptable", "acceptable"),
            "cola",
            header=False,
            num_columns=4,
        ),
        GlueTask(
            "sst2", "SST-2", (0,), 1, ("negative", "positive"), "sst2", num_columns=2
        ),
        GlueTask(
            "mrpc",
            "MRPC",
            (3, 4),
            0,
            ("not_equivalent", "equivalent"),
            "mrpc",
            num_columns=5,
        ),
        GlueTask("stsb", "STS-B", (7, 8), -1, (), "stsb", num_columns=10),
        GlueTask(
            "qqp",
            "QQP",
            (3, 4),
            5,
            ("not_duplicate", "duplicate"),
            "qqp",
            num_columns=6,
        ),
        GlueTask(
            "mnli",
            "MNLI",
            (8, 9),
            -1,
            ("entailment", "neutral", "contradiction"),
            "mnli",
            dev_splits=("dev_matched", "dev_mismatched"),
            raw_labels=("entailment", "neutral", "contradiction"),
        ),
        GlueTask(
            "qnli",
            "QNLI",
            (1, 2),
            3,
            ("entailment", "not_entailment"),
            "qnli",
            raw_labels=("entailment", "not_entailment"),
            num_columns=4,
        ),
        GlueTask(
            "rte",
            "RTE",
            (1, 2),
            3,
            ("entailment", "not_entailment"),
            "rte",
            raw_labels=("entailment", "not_entailment"),
            num_columns=4,
        ),
        GlueTask(
            "wnli",
            "WNLI",
            (1, 2),
            3,
            ("not_entailment", "entailment"),
            "wnli",
            num_columns=4,
        ),
    )
}
# Aliases people type: GLUE folder names and the usual spellings.
ALIASES = {
    **{task.directory.lower(): name for name, task in TASKS.items()},
    "sts-b": "stsb",
    "sst-2": "sst2",
}


def get_task(name):
    """Returns the `GlueTask` for a task name ("sst2", "SST-2", "mnli", ...)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise ValueError(
            f"Unknown GLUE task. Expected one of {sorted(TASKS)}. Received: "
            f"task={name!r}"
        )
    return TASKS[key]


def read_tsv(path, task):
    """Reads one GLUE file into columns `sentence1` (`sentence2`) and `label`.

    Returns:
        `(datasets.Dataset, stats)` where stats counts the lines, the rows
        kept and the malformed rows (wrong number of fields), which are
        skipped and reported, never merged.

    Raises:
        ValueError: naming the file and line, for text that is not UTF-8, a
            field over the csv field limit (no GLUE line is that long), a label
            outside the task's label set (a NaN or infinite STS-B score
            included), and a file with no usable row.
    """
    texts = [[] for _ in task.text_columns]
    labels = []
    stats = {"file": path, "lines": 0, "rows": 0, "malformed_rows": 0}
    bad_examples = []
    reader = csv.reader(
        io.StringIO(read_utf8(path), newline=""),
        delimiter="\t",
        quoting=csv.QUOTE_NONE,
    )
    try:
        if task.header:
            next(reader, None)
        for row in reader:
            line_number = reader.line_num
            stats["lines"] += 1
            if (task.num_columns and len(row) != task.num_columns) or (
                max(task.text_columns) >= len(row)
            ):
                stats["malformed_rows"] += 1
                bad_examples.append(line_number)
                continue
            label = _parse_label(row, task)
            if label is None:
                raise ValueError(
                    f"{path}, line {line_number}: "
                    + (
                        "the label is not a finite number. Expected a finite "
                        "similarity score (STS-B: 0 to 5). "
                        if task.is_regression
                        else f"the label is outside the {task.name} label set. "
                        f"Expected {list(task.raw_labels or range(task.num_labels))}. "
                    )
                    + f"Received: label={row[task.label_column]!r}"
                )
            for column, index in zip(texts, task.text_columns):
                column.append(row[index])
            labels.append(label)
    except csv.Error as error:
        # The csv module's only error without quoting: a field over its
        # limit (128 KiB), which no GLUE sentence comes near.
        raise ValueError(
            f"{path}, line {reader.line_num}: a field is longer than the csv "
            f"limit of {csv.field_size_limit()} characters. Expected GLUE "
            f"{task.name} text, a sentence or two per field; a field this long "
            "means this is not the task's tab-separated file or the file lost "
            f"its line breaks. Received: {error}"
        ) from None
    stats["rows"] = len(labels)
    if not labels:
        fields = (
            f"{task.num_columns} tab-separated fields"
            if task.num_columns
            else f"at least {max(task.text_columns) + 1} tab-separated fields"
        )
        raise ValueError(
            f"{path} has no examples: {stats['lines']} line(s)"
            + (" after the header" if task.header else "")
            + (
                f", all malformed (lines {bad_examples[:5]}"
                + ("...)" if len(bad_examples) > 5 else ")")
                if bad_examples
                else ""
            )
            + f". Expected GLUE {task.name} rows of {fields}"
            + (", after a header line" if task.header else "")
            + ". Give the task's own file, as GLUE's download script writes it "
            f"({task.directory}/{os.path.basename(path)})."
        )
    if stats["malformed_rows"]:
        logger.warning(
            "%s: skipped %d malformed row(s) of %d (lines %s%s)",
            path,
            stats["malformed_rows"],
            stats["lines"],
            bad_examples[:5],
            "..." if len(bad_examples) > 5 else "",
        )
    columns = {f"sentence{i + 1}": column for i, column in enumerate(texts)}
    columns["label"] = labels
    features = datasets.Features(
        {
            **{name: datasets.Value("string") for name in columns if name != "label"},
            "label": datasets.Value("float32")
            if task.is_regression
            else datasets.ClassLabel(names=list(task.label_names)),
        }
    )
    return datasets.Dataset.from_dict(columns, features=features), stats


def _parse_label(row, task):
    raw = row[task.label_column].strip()
    if task.is_regression:
        try:
            value = float(raw)
        except ValueError:
            return None
        # float() also reads "nan" and "inf", which would turn every
        # correlation (and the loss) into NaN.
        return value if math.isfinite(value) else None
    if task.raw_labels:
        return task.raw_labels.index(raw) if raw in task.raw_labels else None
    # Strictly ASCII digits: str.isdigit() also accepts "²" or "٣".
    if raw.isascii() and raw.isdigit() and int(raw) < task.num_labels:
        return int(raw)
    return None


def load_glue(task, data_dir=None, splits=("train",)):
    """Loads a GLUE task: local TSVs when `data_dir` is given, else the Hub.

    Args:
        task: `GlueTask`.
        data_dir: str or None, folder holding `<TaskDir>/train.tsv` etc.
        splits: file stems to load ("train", "dev", "dev_matched", ...).

    Returns:
        `(dict split -> datasets.Dataset, dict split -> stats)`.
    """
    if data_dir is None:
        return _load_from_hub(task, splits)
    folder = os.path.join(data_dir, task.directory)
    loaded, stats = {}, {}
    for split in splits:
        path = os.path.join(folder, f"{split}.tsv")
        if not os.path.isfile(path):
            found = sorted(os.listdir(folder)) if os.path.isdir(folder) else None
            raise FileNotFoundError(
                f"GLUE {task.name}: no {split}.tsv in {folder}. Expected the GLUE "
                f"layout DIR/{task.directory}/{split}.tsv. Received: "
                f"data_dir={data_dir!r}, "
                + (f"{folder} contains {found}" if found else f"{folder} is missing")
            )
        loaded[split], stats[split] = read_tsv(path, task)
        scores = set(loaded[split]["label"]) if task.is_regression else ()
        if split != "train" and len(scores) == 1:
            raise ValueError(
                f"{path}: every score is {scores.pop()}, so the Pearson and "
                "Spearman correlations are undefined (NaN). Expected an "
                f"evaluation file with at least two different scores. Received: "
                f"{len(loaded[split])} row(s)"
            )
    return loaded, stats


_HUB_SPLITS = {
    "train": "train",
    "dev": "validation",
    "dev_matched": "validation_matched",
    "dev_mismatched": "validation_mismatched",
}


def _load_from_hub(task, splits):
    loaded, stats = {}, {}
    for split in splits:
        ds = datasets.load_dataset("nyu-mll/glue", task.name, split=_HUB_SPLITS[split])
        names = {
            "sentence": "sentence1",
            "question": "sentence1",
            "question1": "sentence1",
            "question2": "sentence2",
            "premise": "sentence1",
            "hypothesis": "sentence2",
        }
        if task.name == "qnli":
            names["sentence"] = "sentence2"
        ds = ds.rename_columns({k: v for k, v in names.items() if k in ds.column_names})
        keep = [c for c in ds.column_names if c.startswith("sentence") or c == "label"]
        loaded[split] = ds.select_columns(keep)
        stats[split] = {"file": f"nyu-mll/glue/{task.name}", "rows": len(ds)}
    return loaded, stats


def tokenize(dataset, tokenizer, task, max_seq_length):
    def encode(batch):
        texts = [batch["sentence1"]]
        if task.is_pair:
            texts.append(batch["sentence2"])
        return tokenizer(*texts, truncation=True, max_length=max_seq_length)

    fingerprint = encoding_fingerprint(
        dataset, tokenizer, "glue-encode-1", task.is_pair, max_seq_length
    )
    return dataset.map(
        encode, batched=True, desc="Tokenizing", new_fingerprint=fingerprint
    )


class GlueScores:
    """Task metrics (accuracy, F1, MCC, correlations) via the local module."""

    def __init__(self, task):
        import evaluate

        self.task = task
        self.modules = {
            split: evaluate.load(
                METRICS_PATH,
                "mnli_mismatched" if split == "dev_mismatched" else task.metric_name,
            )
            for split in task.dev_splits
        }

    def predictions(self, logits):
        if self.task.is_regression:
            return logits[:, 0]
        return logits.argmax(-1)

    def compute(self, split, logits, references):
        return self.modules[split].compute(
            predictions=self.predictions(logits), references=references
        )
