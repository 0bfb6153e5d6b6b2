"""Where COLT's pool images went, by D_i frequency (the ``colt_resampling`` analysis): the
long-tail view of COLT's claim (Bai et al., ICLR 2023) that its tailness score and per-cluster
budgets send the out-of-distribution images towards the tail.

A COLT run (``sdclr.methods.colt``) keeps, for every sample k of its pretraining set, its
tailness score s_k (the moving average of its top-k negative probability mass; model.pt's
``sample_statistics``), and records every resampling r in ``colt_resampling.json`` next to the
model: per K-means cluster j its pool images b_rj and its most frequent D_i classes. With c(j)
the most frequent class of cluster j (its *dominant* class) and R the resamplings, for a class
c (or a group G of classes: Many / Medium / Few from the D_i counts)::

    pool_percent_c = 100 sum_r sum_{j : c(j) = c} b_rj / sum_r sum_j b_rj
    tailness_c     = mean over c's pretraining samples k of s_k

Attributing a cluster's pool images to its dominant class is this analysis' choice (COLT's
paper shows budgets per cluster, not per class): a cluster mixing classes credits all its
images to the one with most members. A fair share of the pool images is a class's share of
D_i; COLT's mechanism works when the Few classes take more than theirs. A run without COLT
has no such numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from sdclr.analyses.base import Analysis, AnalysisContext, by_dataset_method, register
from sdclr.analyses.geometry import frequency_order
from sdclr.errors import ConfigError
from sdclr.groups import GROUPS
from sdclr.io import read_json, save_figure
from sdclr.methods.colt import RECORD_NAME
from sdclr.plots import label_of, plot_class_rank_bars

#: The summary's columns: each group's share of the pool images, then its mean tailness.
SUMMARY_COLUMNS = tuple(f"{g} pool %" for g in GROUPS) + tuple(f"{g} tailness" for g in GROUPS)


def pool_images_by_class(resamplings: Sequence[dict[str, Any]], num_classes: int) -> np.ndarray:
    """Pool images credited to each class over ``resamplings`` (a COLT record's list): every
    cluster's ``pool_images`` to its dominant class (the first of its ``top_classes``)."""
    taken = np.zeros(num_classes, dtype=np.float64)
    for resampling in resamplings:
        for cluster in resampling["clusters"]:
            if cluster["top_classes"] and cluster["pool_images"]:
                taken[int(cluster["top_classes"][0][0])] += cluster["pool_images"]
    return taken


def colt_resampling_analysis(
    tailness: np.ndarray,
    classes: np.ndarray,
    resamplings: Sequence[dict[str, Any]],
    d_i_counts: Sequence[int],
    groups: dict[str, list[int]],
) -> dict[str, Any]:
    """The module docstring's numbers of one model: ``tailness`` and ``classes`` per
    pretraining sample; per class (ordered by D_i frequency, most first) and per group."""
    taken = pool_images_by_class(resamplings, len(d_i_counts))
    total = max(taken.sum(), 1.0)
    group_of = {c: name for name, members in groups.items() for c in members}
    per_class = []
    for c in frequency_order(d_i_counts):
        mine = classes == c
        per_class.append(
            {"class": c, "group": group_of.get(c, ""), "D_i": int(d_i_counts[c]),
             "pool_images": int(taken[c]), "pool_percent": round(100 * taken[c] / total, 4),
             "tailness": round(float(tailness[mine].mean()), 6) if mine.any() else np.nan}
        )  # fmt: skip
    summary = {}
    for name in GROUPS:
        members = groups.get(name, [])
        mine = np.isin(classes, members)
        summary[f"{name} pool %"] = float(100 * taken[members].sum() / total)
        summary[f"{name} tailness"] = float(tailness[mine].mean()) if mine.any() else np.nan
    return {
        "resamplings": len(resamplings),
        "pool_images": int(taken.sum()),
        "summary": summary,
        "per_class": per_class,
    }


@register
class ColtResamplingAnalysis(Analysis):
    """Where a COLT run's pool images went, by D_i frequency (this module's docstring)."""

    name = "colt_resampling"
    title = "Where COLT's pool images go: each group's share, and its samples' tailness"
    columns = SUMMARY_COLUMNS
    info = {"resamplings": ("Resamplings", "resamplings", "{:.0f}")}
    note = (
        "COLT runs only. Pool %: the group's share of the pool images the run added, summed "
        "over its resamplings, each K-means cluster's images credited to its most frequent D_i "
        "class (a fair share is the group's share of D_i). Tailness: the mean tailness score "
        "of the group's pretraining images at the end of the run (lower: more tail-like, "
        "fewer near negatives; the lowest cluster takes the most pool images)."
    )
    number_format = "{:.3f}"
    empty = "no analysis record holds COLT's numbers: no run of this config uses colt"

    def check(self, config: dict[str, Any]) -> None:
        runs = [*config["methods"].values(), *(config.get("removal_methods") or [])]
        if not any("colt" in run for run in runs):
            raise ConfigError(
                "analyses: colt_resampling reads COLT runs' records, and no method has colt; "
                "drop it from analyses or add such a method"
            )

    def compute(self, context: AnalysisContext) -> dict[str, Any] | None:
        statistics = (context.meta.get("sample_statistics") or {}).get("colt")
        if not statistics:  # only COLT runs keep a tailness score
            return None
        record = Path(context.model_path).parent / RECORD_NAME
        resamplings = read_json(record)["resamplings"] if record.exists() else []
        indices = np.asarray(context.meta["sample_statistics"]["pretrain_indices"])
        classes = context.inputs.dataset.train_labels.numpy()[indices]
        tailness = np.asarray(statistics["tail_score"], dtype=np.float64)
        d_i = context.inputs.split["counts"]["D_i"]
        return colt_resampling_analysis(tailness, classes, resamplings, d_i, context.groups)

    def plot(
        self, records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None
    ) -> None:
        _plot_colt_by_class(records, path, labels)


def _plot_colt_by_class(
    records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None = None
) -> None:
    """One row per COLT run (every dataset), two panels per row: per class rank in D_i, the %
    of the pool images credited to the class, and its images' mean tailness; bars the mean
    over splits and seeds, dots each."""
    grouped = by_dataset_method(records, "colt_resampling")
    rows = [(d, m, runs) for d, methods in grouped.items() for m, runs in methods.items()]
    classes = max(len(runs[0]["colt_resampling"]["per_class"]) for _, _, runs in rows)
    width = max(5.5, 0.1 * classes + 3.5)
    fig, axes = plt.subplots(len(rows), 2, figsize=(2 * width, 4.0 * len(rows)), squeeze=False)
    for (dataset, method, runs), (left, right) in zip(rows, axes, strict=True):
        per_class = [r["colt_resampling"]["per_class"] for r in runs]
        name = f"{label_of(labels, 'datasets', dataset)}: {label_of(labels, 'methods', method)}"
        plot_class_rank_bars(left, per_class, "pool_percent", "tab:purple", "pool images (mean)")
        left.set_ylabel("% of the pool images added")
        left.set_title(f"{name}: where the pool images go", fontsize=9)
        plot_class_rank_bars(right, per_class, "tailness", "tab:orange", "tailness (mean)")
        right.set_ylabel("mean tailness score of the class's images")
        right.set_title(f"{name}: tailness by class", fontsize=9)
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)
