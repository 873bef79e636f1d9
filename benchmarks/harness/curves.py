"""compare.py's cost curves: the plan of points, their summaries and plots.

A point is one (kind, workload, shape, precision, batch, seq) every system of
its workload is measured at. Kinds: `seq` (train and infer, sequence 64 to
512 at 4,096 tokens a batch), `batch` (infer at batch 1, 8, 32, sequence 128)
and `large` (BERT-large, train and infer at `--large-batch` x 128).
"""

import collections
import os
import statistics

from harness import workloads

Point = collections.namedtuple(
    "Point", "kind workload shape precision batch_size seq_length"
)

KINDS = ("seq", "batch", "large")
SEQ_LENGTHS = (64, 128, 256, 512)
SEQ_TOKENS = 4096  # tokens a batch along the seq curve: batch 64, 32, 16, 8
BATCH_SIZES = (1, 8, 32)
SYSTEMS = {
    "train": ("bert_keras", "keras_hub", "torch", "torch_compile"),
    "infer": ("bert_keras", "keras_hub", "torch", "torch_compile", "onnxruntime"),
}
ALL_SYSTEMS = SYSTEMS["infer"]
# Acceptance: bert_keras time over a peer's at most this.
TRAIN_BOUND = 0.85
INFER_BOUNDS = {
    "keras_hub": 0.85,
    "torch": 0.85,
    "torch_compile": 0.85,
    "onnxruntime": 1.0,
}


def plan(kinds, shapes, precisions, large_batch, curve_shapes=None):
    """The points to measure, in order.

    Args:
        kinds: subset of `KINDS`.
        shapes: the shapes of the `seq` and `batch` kinds (minilm, base).
        precisions: "bf16" and/or "fp32"; every point runs in each.
        large_batch: int, the batch of the `large` kind (sequence 128).
        curve_shapes: None, or shapes replacing those of every kind, `large`
            included (smoke runs: `["tiny"]`).

    Returns:
        list of `Point`.
    """
    points = []
    for kind in kinds:
        if curve_shapes:
            kind_shapes = curve_shapes
        else:
            kind_shapes = ["large"] if kind == "large" else shapes
        for shape in kind_shapes:
            for precision in precisions:
                if kind == "seq":
                    for workload in ("train", "infer"):
                        for seq in SEQ_LENGTHS:
                            points.append(
                                Point(
                                    kind,
                                    workload,
                                    shape,
                                    precision,
                                    SEQ_TOKENS // seq,
                                    seq,
                                )
                            )
                elif kind == "batch":
                    for batch in BATCH_SIZES:
                        points.append(
                            Point(kind, "infer", shape, precision, batch, 128)
                        )
                else:
                    for workload in ("train", "infer"):
                        points.append(
                            Point(kind, workload, shape, precision, large_batch, 128)
                        )
    return points


def systems_of(point, chosen):
    """The systems of `point`'s workload among `chosen`, in the plan's order."""
    return tuple(s for s in SYSTEMS[point.workload] if s in chosen)


def run_key(run):
    """What identifies one measurement, for `--resume`."""
    if run["workload"] == "peak":
        return ("peak", run["precision"], run["system"], run.get("repeat"))
    return (
        run.get("kind"),
        run["workload"],
        run["shape"],
        run["precision"],
        run.get("batch_size"),
        run.get("seq_length"),
        run["system"],
        run.get("repeat"),
    )


def point_of(run):
    return Point(
        run["kind"],
        run["workload"],
        run["shape"],
        run["precision"],
        run["batch_size"],
        run["seq_length"],
    )


# === Summaries ===


def summarize(runs, peaks):
    """One entry per point measured: per system the median over repeats of its
    median step time, tokens/s, MFU and peak RSS; bert_keras's time over each
    peer's and over the fastest peer's."""
    groups = {}
    for run in runs:
        if run.get("kind") in KINDS:
            groups.setdefault(point_of(run), {}).setdefault(run["system"], [])
            groups[point_of(run)][run["system"]].append(run)
    entries = []
    for point in sorted(groups, key=_order):
        flops = workloads.step_flops(
            point.workload, point.shape, point.batch_size, point.seq_length
        )
        systems = {}
        for system in ALL_SYSTEMS:
            group = groups[point].get(system)
            if not group:
                continue
            seconds = statistics.median(r["median_step_seconds"] for r in group)
            ran = group[0].get("ran_precision", point.precision)
            peak = peaks.get(ran)
            systems[system] = {
                "runs": len(group),
                "step_seconds": seconds,
                "tokens_per_second": point.batch_size * point.seq_length / seconds,
                "tflops": flops / seconds / 1e12,
                "mfu": flops / seconds / peak if peak else None,
                "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in group),
                "ran_precision": ran,
            }
        entry = {**point._asdict(), "flops": flops, "systems": systems}
        ours = systems.get("bert_keras")
        peers = {s: row for s, row in systems.items() if s != "bert_keras"}
        if ours and peers:
            fastest = min(peers, key=lambda s: peers[s]["step_seconds"])
            entry["fastest_peer"] = fastest
            entry["time_ratio"] = {
                s: ours["step_seconds"] / row["step_seconds"]
                for s, row in peers.items()
            }
            entry["time_ratio_fastest_peer"] = entry["time_ratio"][fastest]
        entries.append(entry)
    return entries


def _order(point):
    return (
        KINDS.index(point.kind),
        point.shape,
        point.precision,
        point.workload != "train",
        point.seq_length,
        point.batch_size,
    )


def label(entry):
    return (
        f"{entry['kind']} {entry['workload']} {entry['shape']} {entry['precision']} "
        f"{entry['batch_size']}x{entry['seq_length']}"
    )


def targets(entries):
    """(name, measured ratio, pass) for every acceptance check the points decide."""
    checks = []
    for entry in entries:
        ratios = entry.get("time_ratio")
        if not ratios:
            continue
        if entry["workload"] == "train":
            worst = entry["time_ratio_fastest_peer"]
            checks.append(
                (
                    f"{label(entry)}: bert_keras / fastest peer "
                    f"({entry['fastest_peer']}) ≤ {TRAIN_BOUND}",
                    worst,
                    worst <= TRAIN_BOUND,
                )
            )
        else:
            for peer, bound in INFER_BOUNDS.items():
                if peer in ratios:
                    checks.append(
                        (
                            f"{label(entry)}: bert_keras / {peer} ≤ {bound}",
                            ratios[peer],
                            ratios[peer] <= bound,
                        )
                    )
    return checks


def format_report(entries, checks, peaks):
    lines = [
        "| kind | workload | shape | precision | batch x seq | system | step ms "
        "| tokens/s | MFU | peak RSS MiB | bert_keras / system |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        for system, row in entry["systems"].items():
            precision = entry["precision"]
            if row["ran_precision"] != precision:
                precision += f" (ran {row['ran_precision']})"
            ratio = entry.get("time_ratio", {}).get(system)
            if ratio is None:
                ratio = "–"
            else:
                ratio = f"{ratio:.2f}"
                if system == entry["fastest_peer"]:
                    ratio += " (fastest)"
            mfu = "–" if row["mfu"] is None else f"{100 * row['mfu']:.1f}%"
            lines.append(
                f"| {entry['kind']} | {entry['workload']} | {entry['shape']} "
                f"| {precision} | {entry['batch_size']}x{entry['seq_length']} "
                f"| {system} | {1000 * row['step_seconds']:.1f} "
                f"| {row['tokens_per_second']:.0f} | {mfu} "
                f"| {row['peak_rss_mib']:.0f} | {ratio} |"
            )
    lines.append("")
    lines.append(
        "onnxruntime runs float32 in the bf16 rows too (no bfloat16 matrix "
        "kernels on ORT's CPU provider); its MFU is over the fp32 peak."
    )
    return "\n".join(lines + peak_and_targets(peaks, checks))


def peak_and_targets(peaks, checks):
    """A report's closing lines: the measured peaks, then PASS/FAIL per target."""
    lines = [
        "Peak (matrix product): "
        + ", ".join(f"{p} {v / 1e12:.2f} TFLOP/s" for p, v in peaks.items()),
        "",
    ]
    for name, value, ok in checks:
        lines.append(f"- {'PASS' if ok else 'FAIL'} {name} (measured {value:.3f})")
    return lines


# === Plots ===

STYLE = {
    "bert_keras": {"color": "tab:red", "marker": "o"},
    "keras_hub": {"color": "tab:orange", "marker": "s"},
    "torch": {"color": "tab:blue", "marker": "^"},
    "torch_compile": {"color": "tab:purple", "marker": "v"},
    "onnxruntime": {"color": "tab:green", "marker": "D"},
}


def _legend_name(system, entries):
    ran = {
        e["systems"][system]["ran_precision"] for e in entries if system in e["systems"]
    }
    shown = {e["precision"] for e in entries}
    return f"{system} (ran fp32)" if ran == {"fp32"} and shown != ran else system


def _line_panel(axis, entries, x_key, title):
    """Step ms against `x_key`, one line per system, the bert_keras / fastest
    peer ratio written above each bert_keras point."""
    for system in ALL_SYSTEMS:
        points = [
            (e[x_key], 1000 * e["systems"][system]["step_seconds"])
            for e in entries
            if system in e["systems"]
        ]
        if points:
            axis.plot(
                *zip(*points),
                label=_legend_name(system, entries),
                markersize=4,
                **STYLE[system],
            )
    for e in entries:
        if "time_ratio_fastest_peer" in e:
            axis.annotate(
                f"×{e['time_ratio_fastest_peer']:.2f}",
                (e[x_key], 1000 * e["systems"]["bert_keras"]["step_seconds"]),
                textcoords="offset points",
                xytext=(0, -12),
                ha="center",
                fontsize=7,
                color=STYLE["bert_keras"]["color"],
            )
    xs = sorted({e[x_key] for e in entries})
    axis.set_xscale("log", base=2)
    axis.set_xticks(xs, [str(x) for x in xs])
    axis.minorticks_off()
    axis.set_yscale("log")
    axis.margins(y=0.12)  # room for the ratios under the lowest points
    axis.set_title(title, fontsize=10)
    axis.set_ylabel("ms per step")
    axis.grid(alpha=0.3)
    if axis.lines:
        axis.legend(fontsize=7)


def plot(entries, plot_dir):
    """Draws every curve the entries allow into `plot_dir`; returns the paths.

    `curves_seq_{shape}_{precision}.png`: train and infer step time against
    sequence length at 4,096 tokens a batch; `curves_batch_{shape}_{precision}
    .png`: inference latency against batch; `curves_large.png`: BERT-large
    bars. Each bert_keras point carries its time over the fastest peer's (×).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(plot_dir, exist_ok=True)
    paths = []

    def by(kind):
        groups = {}
        for e in entries:
            if e["kind"] == kind:
                groups.setdefault((e["shape"], e["precision"]), []).append(e)
        return groups

    for (shape, precision), group in sorted(by("seq").items()):
        figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for axis, workload in zip(axes, ("train", "infer")):
            _line_panel(
                axis,
                [e for e in group if e["workload"] == workload],
                "seq_length",
                f"{workload} ({SEQ_TOKENS} tokens a batch)",
            )
            axis.set_xlabel("sequence length")
        figure.suptitle(
            f"{shape}, {precision}: step time vs sequence length "
            "(× = bert_keras / fastest peer)"
        )
        figure.tight_layout()
        paths.append(os.path.join(plot_dir, f"curves_seq_{shape}_{precision}.png"))
        figure.savefig(paths[-1], dpi=100)
        plt.close(figure)

    for (shape, precision), group in sorted(by("batch").items()):
        figure, axis = plt.subplots(figsize=(6, 4.2))
        _line_panel(axis, group, "batch_size", "inference, sequence 128")
        axis.set_xlabel("batch size")
        axis.set_ylabel("latency ms per batch")
        figure.suptitle(f"{shape}, {precision}: inference latency vs batch")
        figure.tight_layout()
        paths.append(os.path.join(plot_dir, f"curves_batch_{shape}_{precision}.png"))
        figure.savefig(paths[-1], dpi=100)
        plt.close(figure)

    large = [e for e in entries if e["kind"] == "large"]
    if large:
        figure, axis = plt.subplots(figsize=(max(6, 2.2 * len(large)), 4.2))
        width = 0.8 / len(ALL_SYSTEMS)
        for index, system in enumerate(ALL_SYSTEMS):
            xs, heights = [], []
            for position, e in enumerate(large):
                if system in e["systems"]:
                    xs.append(position + (index - 2) * width)
                    heights.append(1000 * e["systems"][system]["step_seconds"])
            if xs:
                axis.bar(
                    xs,
                    heights,
                    width,
                    label=_legend_name(system, large),
                    color=STYLE[system]["color"],
                )
        for position, e in enumerate(large):
            if "time_ratio_fastest_peer" in e:
                ours = 1000 * e["systems"]["bert_keras"]["step_seconds"]
                axis.annotate(
                    f"×{e['time_ratio_fastest_peer']:.2f}",
                    (position - 2 * width, ours),
                    textcoords="offset points",
                    xytext=(0, 3),
                    ha="center",
                    fontsize=7,
                )
        axis.set_xticks(
            range(len(large)),
            [
                f"{e['workload']} {e['precision']}\n{e['shape']} "
                f"{e['batch_size']}x{e['seq_length']}"
                for e in large
            ],
        )
        axis.set_yscale("log")
        axis.set_ylabel("ms per step")
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize=7)
        figure.suptitle("BERT-large: step time (× = bert_keras / fastest peer)")
        figure.tight_layout()
        paths.append(os.path.join(plot_dir, "curves_large.png"))
        figure.savefig(paths[-1], dpi=100)
        plt.close(figure)
    return paths
