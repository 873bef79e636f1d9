"""Results files: the machine a run saw, a common header, atomic JSON writes."""

import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time


def machine():
    """CPU, cores, bf16 support and framework versions, for every results file."""
    model_name, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name") and not model_name:
                    model_name = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    versions = {}
    for package in ("tensorflow", "keras", "torch", "transformers", "bert_keras"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": model_name,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def header(settings):
    """The fields every results file starts with: when, how, with what, where.

    Absolute paths in the command and settings are cut (`shareable`): results
    files are committed and shared.
    """
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(shareable([os.path.basename(sys.executable), *sys.argv])),
        "settings": shareable(settings),
        "machine": machine(),
    }


def shareable(value):
    """`value` with each absolute path made relative to the repository when
    inside it, else cut to its last part (dicts and lists too)."""
    if isinstance(value, dict):
        return {key: shareable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [shareable(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        path = os.path.normpath(value)
        if path.startswith(os.path.abspath(root) + os.sep):
            return os.path.relpath(path, os.path.abspath(root))
        return os.path.basename(path)
    return value


def write_json(path, payload, sort_keys=False):
    """Writes `payload` whole or not at all (a run interrupted mid-write keeps
    the previous file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=sort_keys)
        handle.write("\n")
    os.replace(tmp, path)


def read_run_results(output_dir, drop_weights=False):
    """The `results.json` a fine-tuning run wrote into `output_dir`.

    `drop_weights=True` deletes the run's `*.safetensors`: comparisons need
    only the scores, and 90 MB a run adds up.
    """
    with open(os.path.join(output_dir, "results.json"), encoding="utf-8") as handle:
        results = json.load(handle)
    if drop_weights:
        for name in os.listdir(output_dir):
            if name.endswith(".safetensors"):
                os.remove(os.path.join(output_dir, name))
    return results


def seed_statistics(values):
    """Mean, sample standard deviation (0 for one value) and the values."""
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }
