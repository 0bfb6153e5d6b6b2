"""Figures: group accuracies with error bars, split class profiles, accuracy vs frequency."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from sdclr.groups import GROUPS, class_groups  # noqa: E402
from sdclr.io import save_figure  # noqa: E402
from sdclr.plots import (  # noqa: E402
    GROUP_COLOURS,
    label_of,
    plot_class_rank_bars,
    plot_per_class_vs_frequency,
    shade_ranks,
)
from sdclr.reporting.tables import PROBE_TITLES, aggregate, records_frame  # noqa: E402


def _method_colours(methods: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _panels(datasets: int, probes: int, per_row: int = 3) -> tuple[Any, Any]:
    """A figure with one panel per dataset x probe, at most ``per_row`` probes a row;
    returns it and ``panel(dataset_index, probe_index) -> axes`` (unused panels hidden)."""
    ncols = min(per_row, probes)
    rows_per_dataset = -(-probes // ncols)
    fig, axes = plt.subplots(
        datasets * rows_per_dataset,
        ncols,
        figsize=(6.0 * ncols, 4.2 * datasets * rows_per_dataset),
        squeeze=False,
    )
    for r in range(datasets):
        for j in range(probes, rows_per_dataset * ncols):
            axes[r * rows_per_dataset + j // ncols][j % ncols].set_visible(False)

    def panel(i: int, j: int) -> Any:
        return axes[i * rows_per_dataset + j // ncols][j % ncols]

    return fig, panel


def plot_group_accuracy(
    records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None = None
) -> None:
    """Bars of Many / Medium / Few / All per method, mean ± std over splits, one panel per
    dataset x probe; the Std (balancedness) value is printed above each method's bars."""
    frame = records_frame(records)
    datasets = list(dict.fromkeys(frame["dataset"]))
    probes = [p for p in PROBE_TITLES if p in set(frame["probe"])]
    fig, panel = _panels(len(datasets), len(probes))
    columns = [*GROUPS, "All"]
    for i, dataset in enumerate(datasets):
        for j, probe in enumerate(probes):
            ax = panel(i, j)
            table = aggregate(frame[(frame.dataset == dataset) & (frame.probe == probe)])
            methods = list(table["method"])
            colours = _method_colours(methods)
            width = 0.8 / max(1, len(methods))
            x = np.arange(len(columns))
            for k, row in table.iterrows():
                means = [row[f"{c}_mean"] for c in columns]
                stds = [row[f"{c}_std"] for c in columns]
                ax.bar(
                    x + (k - (len(methods) - 1) / 2) * width,
                    means,
                    width,
                    yerr=stds,
                    capsize=3,
                    color=colours[row.method],
                    label=f"{label_of(labels, 'methods', row.method)} (Std {row.Std_mean:.2f})",
                )
            ax.set_xticks(x, columns)
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{label_of(labels, 'datasets', dataset)}: {PROBE_TITLES[probe]}")
            lows = [
                row[f"{c}_mean"] - row[f"{c}_std"] for _, row in table.iterrows() for c in columns
            ]
            ax.set_ylim(max(0.0, min(lows) - 10), 100)
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("Group accuracy, mean ± std over splits (Many / Medium / Few by D_i frequency)")
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)


def plot_class_profile(
    splits: Sequence[dict[str, Any]],
    path: str | Path,
    group_rules: dict[str, dict] | None = None,
    labels: dict | None = None,
) -> None:
    """Per dataset, top: D_i images per class rank (log scale) for every split, with the
    Many / Medium / Few ranges shaded and the sizes of D_i, D_b and S_b in the legend.
    Bottom: which class holds each rank in each split (the splits differ only in this order),
    coloured by its group."""
    datasets = list(dict.fromkeys(s["dataset"] for s in splits))
    most_splits = max(sum(s["dataset"] == d for s in splits) for d in datasets)
    fig, axes = plt.subplots(
        2,
        len(datasets),
        figsize=(6.5 * len(datasets), 5.0 + 0.45 * most_splits),
        squeeze=False,
        gridspec_kw={"height_ratios": [4.2, 0.8 + 0.45 * most_splits]},
    )
    for column, dataset in enumerate(datasets):
        ax, order_ax = axes[0][column], axes[1][column]
        ds_splits = [s for s in splits if s["dataset"] == dataset]
        rule = (group_rules or {}).get(dataset, {"kind": "thirds"})
        _shade_groups(ax, np.asarray(ds_splits[0]["counts"]["D_i"]), rule)
        for s in ds_splits:
            sorted_counts = sorted(s["counts"]["D_i"], reverse=True)
            sizes = s["sizes"]
            ax.plot(
                range(len(sorted_counts)),
                sorted_counts,
                marker="o",
                ms=3,
                label=f"split {s['split']}: |D_i|={sizes['D_i']}, |D_b|={sizes['D_b']}, "
                f"|S_b|={sizes['S_b']}",
            )
        ax.set_yscale("log")
        ax.set_xlabel("class rank in D_i (most to least frequent)")
        ax.set_ylabel("training images in D_i")
        ax.set_title(f"{label_of(labels, 'datasets', dataset)}: long-tail profile", pad=16)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        _plot_class_order(order_ax, ds_splits, rule)
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)


def _shade_groups(ax: Any, counts: np.ndarray, rule: dict) -> None:
    """Shade and name the rank range of each of Many / Medium / Few (``_shade_ranks``)."""
    group_of = {c: name for name, members in class_groups(counts, rule).items() for c in members}
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    shade_ranks(ax, [group_of.get(c, "") for c in order])


def _plot_class_order(ax: Any, splits: Sequence[dict[str, Any]], rule: dict) -> None:
    """One row per split: the class at each D_i rank, coloured Many / Medium / Few."""
    cmap = ListedColormap([GROUP_COLOURS[g] for g in GROUPS])
    rows, names = [], []
    for s in splits:
        counts = np.asarray(s["counts"]["D_i"])
        order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
        groups = class_groups(counts, rule)
        group_of = {c: i for i, g in enumerate(GROUPS) for c in groups[g]}
        rows.append([group_of[c] for c in order])
        classes = s.get("classes") or [str(c) for c in range(len(counts))]
        names.append([classes[c] for c in order])
    ax.imshow(np.asarray(rows), cmap=cmap, vmin=0, vmax=len(GROUPS) - 1, aspect="auto", alpha=0.35)
    if len(names[0]) <= 20:
        for i, row in enumerate(names):
            for j, name in enumerate(row):
                wrapped = name.replace("/", "/\n").replace(" ", "\n")
                ax.text(j, i, wrapped, ha="center", va="center", fontsize=6.5)
    ax.set_yticks(range(len(splits)), [f"split {s['split']}" for s in splits], fontsize=8)
    ax.set_xticks([])
    ax.set_xlabel("class at each rank (most to least frequent)", fontsize=8)


def plot_accuracy_vs_frequency(
    records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None = None
) -> None:
    """Per-class test accuracy against the class's D_i count (log x), every class of every
    split as a point, with each method's trend as the mean accuracy of each frequency rank."""
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    probes = [p for p in PROBE_TITLES if any(r["probe"] == p for r in records)]
    fig, panel = _panels(len(datasets), len(probes))
    for i, dataset in enumerate(datasets):
        for j, probe in enumerate(probes):
            ax = panel(i, j)
            chosen = [r for r in records if r["dataset"] == dataset and r["probe"] == probe]
            methods = list(dict.fromkeys(r["method"] for r in chosen))
            colours = _method_colours(methods)
            for method in methods:
                runs = [r for r in chosen if r["method"] == method]
                plot_per_class_vs_frequency(
                    ax,
                    runs,
                    [r["per_class_accuracy"] for r in runs],
                    colours[method],
                    label_of(labels, "methods", method),
                )
            ax.set_ylabel("per-class test accuracy (%)")
            ax.set_title(f"{label_of(labels, 'datasets', dataset)}: {PROBE_TITLES[probe]}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)


def plot_paper_comparison(
    comparisons: dict[str, Any], path: str | Path, labels: dict | None = None
) -> None:
    """Ours (y) against the paper's (x) for every dataset x method x column, one panel per
    probe, with ± std error bars and the y = x line: points below the line fall short."""
    probes = [p for p in PROBE_TITLES if p in comparisons]
    fig, axes = plt.subplots(1, len(probes), figsize=(6.0 * len(probes), 5.4), squeeze=False)
    markers = {"Many": "^", "Medium": "s", "Few": "v", "Std": "x", "All": "o"}
    for ax, probe in zip(axes[0], probes, strict=True):
        frame = comparisons[probe]
        keys = list(
            dict.fromkeys(zip(frame["dataset"], frame["method"], frame["reported_as"], strict=True))
        )
        colours = _method_colours([f"{d}/{m}/{r}" for d, m, r in keys])
        for dataset, method, reported_as in keys:
            part = frame[
                (frame.dataset == dataset)
                & (frame.method == method)
                & (frame.reported_as == reported_as)
            ]
            colour = colours[f"{dataset}/{method}/{reported_as}"]
            for row in part.itertuples(index=False):
                ax.errorbar(
                    row.paper_mean,
                    row.ours_mean,
                    xerr=np.nan_to_num(row.paper_std),
                    yerr=row.ours_std,
                    fmt=markers[row.column],
                    color=colour,
                    ms=6,
                    capsize=2,
                    alpha=0.85,
                )
            name = f"{label_of(labels, 'datasets', dataset)} {label_of(labels, 'methods', method)}"
            ax.plot([], [], "o", color=colour, label=f"{name} vs {reported_as}")
        for column, marker in markers.items():
            ax.plot([], [], marker, color="grey", label=column)
        values = np.concatenate([frame["paper_mean"], frame["ours_mean"]]) if len(frame) else [0]
        lo, hi = max(0.0, float(np.min(values)) - 5), min(100.0, float(np.max(values)) + 5)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, alpha=0.6)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("paper (%)")
        ax.set_ylabel("ours (%)")
        ax.set_title(f"{PROBE_TITLES[probe]}: ours vs paper")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)


def plot_removal(records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None) -> None:
    """Where a removal run's difficult examples come from: per class rank in D_i, the
    percentage of the class removed (``plot_class_rank_bars``)."""
    rows = [r["per_class"] for r in records]  # each already ordered by D_i frequency
    removed = np.array([[c["removed_percent"] for c in row] for row in rows])
    counts = np.array([[c["D_i"] for c in row] for row in rows])
    fig, ax = plt.subplots(figsize=(max(6.5, 0.12 * removed.shape[1] + 4), 4.2))
    plot_class_rank_bars(ax, rows, "removed_percent", "tab:red", "removed (mean)")
    if removed.shape[1] <= 20:  # few classes: the counts on the bars (mean removed / mean D_i)
        gone = np.array([[c["removed"] for c in row] for row in rows]).mean(axis=0)
        for r, (g, n, h) in enumerate(
            zip(gone, counts.mean(axis=0), removed.mean(axis=0), strict=True)
        ):
            ax.text(r, h, f"{g:.0f}/{n:.0f}", ha="center", va="bottom", fontsize=6)
    ax.set_ylabel("% of the class's D_i images removed")
    total = (
        100.0
        * sum(r["sizes"]["removed"] for r in records)
        / sum(r["sizes"]["D_i"] for r in records)
    )
    first = records[0]
    ax.set_title(
        f"{label_of(labels, 'methods', first['method'])} on "
        f"{label_of(labels, 'datasets', first['dataset'])}: {total:.1f} % of D_i removed, "
        f"selected by {label_of(labels, 'methods', first['selector'])}",
        fontsize=9,
        pad=16,
    )
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)
