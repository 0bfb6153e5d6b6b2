"""Plotting pieces the figures of reports and analyses share: labels, the group colours, a
per-class value against the class's D_i count, and per-class-rank bars with Many / Medium / Few
shaded. Matplotlib draws off-screen (Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from sdclr.groups import GROUPS  # noqa: E402

GROUP_COLOURS = {"Many": "#4C72B0", "Medium": "#DD8452", "Few": "#C44E52"}


def label_of(labels: dict | None, kind: str, key: str) -> str:
    """The report's label of a dataset or method (``kind``), else its config name."""
    return (labels or {}).get(kind, {}).get(key, key)


def plot_per_class_vs_frequency(
    ax: Any,
    runs: Sequence[dict[str, Any]],
    values: Sequence[Sequence[float]],
    colour: Any,
    label: str,
) -> None:
    """One method's per-class ``values`` (one list per run, in class order) against each
    class's D_i count (log x): every class of every run a point, the trend the mean (NaNs
    left out) at each frequency rank, which has the same count in every split of an
    exponential profile."""
    counts = np.concatenate([r["train_counts"] for r in runs])
    ax.scatter(counts, np.concatenate(values), s=12, alpha=0.35, color=colour)
    ranked = np.array(
        [
            np.asarray(v)[np.argsort(-np.asarray(r["train_counts"]), kind="stable")]
            for r, v in zip(runs, values, strict=True)
        ]
    )
    rank_counts = np.sort(np.asarray(runs[0]["train_counts"]))[::-1]
    ax.plot(rank_counts, np.nanmean(ranked, axis=0), color=colour, lw=2, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class in D_i")
    ax.grid(alpha=0.3, which="both")


def shade_ranks(ax: Any, group_by_rank: Sequence[str]) -> None:
    """Shade and name the rank range of each of Many / Medium / Few (ranks' group names)."""
    for name in GROUPS:
        ranks = [r for r, g in enumerate(group_by_rank) if g == name]
        if ranks:
            lo, hi = min(ranks) - 0.5, max(ranks) + 0.5
            ax.axvspan(lo, hi, color=GROUP_COLOURS[name], alpha=0.08)
            ax.text((lo + hi) / 2, 1.02, name, transform=ax.get_xaxis_transform(), ha="center",
                    fontsize=9, color=GROUP_COLOURS[name])  # fmt: skip


def plot_class_rank_bars(
    ax: Any,
    per_class: Sequence[Sequence[dict[str, Any]]],
    key: str,
    colour: str,
    label: str,
    baseline: float = 0.0,
) -> Any:
    """Per class rank in D_i (most to least frequent, Many / Medium / Few shaded): ``key`` of
    ``per_class`` (one list of class entries per split and seed, each ordered by D_i frequency
    with its ``D_i`` count and ``group``) as bars of the mean from ``baseline`` with a dot for
    each run, and the class's D_i images as a line on a log right axis (returned)."""
    values = np.array([[c[key] for c in row] for row in per_class], dtype=float)
    counts = np.array([[c["D_i"] for c in row] for row in per_class])
    ranks = np.arange(values.shape[1])
    shade_ranks(ax, [c["group"] for c in per_class[0]])
    mean = np.nanmean(values, axis=0)
    ax.bar(ranks, mean - baseline, bottom=baseline, color=colour, alpha=0.7, label=label)
    for row in values:
        ax.plot(ranks, row, ".", color="black", ms=3, alpha=0.5)
    ax.set_xlabel("class rank in D_i (most to least frequent)")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(ranks, counts.mean(axis=0), color="tab:blue", marker="o", ms=3, label="D_i images")
    twin.set_yscale("log")
    twin.set_ylabel("D_i images of the class (mean)")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    return twin
