"""Which classes' samples a run's difficult-pair tuning re-weighted, by D_i frequency (the
``difficult_pairs`` analysis): the long-tail view of margin tuning and temperature scaling
(``difficult_examples``, arXiv 2501.01317), which the paper does not give.

The run counted, for every sample k of its pretraining set, its difficult pairs ``d_k`` and
its candidate pairs ``c_k`` over the whole run (``sdclr.methods.difficult_examples``; model.pt's
``sample_statistics``). With ``f = sum_k d_k / sum_k c_k`` the run's fraction of difficult
pairs and ``f_k = d_k / c_k`` sample k's, for a class (or a group G of classes: Many / Medium /
Few from the D_i counts, as in the tables)::

    difficult_percent_G = 100 sum_{k in G} d_k / sum_{k in G} c_k
    rate_G              = (sum_{k in G} d_k / sum_{k in G} c_k) / f        (1: a fair share)
    top_tenth_G         = 100 |{k in G : k among the ceil(N / 10) largest f_k}| / n_G

``top_tenth`` (ties: the lower position first; 10 is a fair share) is the share of the class
that removing the 10 % most re-weighted samples would take: the quantity the removal figure
shows for a removal run. A model of a run without difficult-pair tuning has no such numbers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from sdclr.analyses.base import Analysis, AnalysisContext, by_dataset_method, register
from sdclr.analyses.geometry import frequency_order
from sdclr.errors import ConfigError, InputError
from sdclr.groups import GROUPS
from sdclr.io import save_figure
from sdclr.plots import label_of, plot_class_rank_bars

log = logging.getLogger(__name__)

#: The share of the pretraining set counted as the most re-weighted (``top_tenth``).
TOP_FRACTION = 0.1
#: The summary's columns: each group's rate, then each group's top-tenth share.
SUMMARY_COLUMNS = tuple(f"{g} rate" for g in GROUPS) + tuple(f"{g} top 10 %" for g in GROUPS)


def sample_counts(meta: dict[str, Any], where: str) -> dict[str, np.ndarray] | None:
    """``pretrain_indices``, ``difficult_pairs``, ``candidate_pairs`` (a row per pretraining
    position) and ``counted_epochs`` from a model.pt's metadata; None for a run that does not
    tune difficult pairs or counted no epoch (a warning when it counted fewer than it ran)."""
    statistics = meta.get("sample_statistics") or {}
    counts = statistics.get("difficult_examples")
    if not counts or int(counts["counted_epochs"]) == 0:  # none kept, or resumed at its end
        return None
    if int(counts["counted_epochs"]) < int(meta.get("epochs", 0)):
        log.warning(
            "%s: its difficult pairs were counted over the last %d of %d epochs only (it "
            "resumed from a checkpoint written before they were kept)",
            where, int(counts["counted_epochs"]), int(meta["epochs"]),
        )  # fmt: skip
    out = {key: np.asarray(value) for key, value in counts.items()}
    out["pretrain_indices"] = np.asarray(statistics["pretrain_indices"], dtype=np.int64)
    sizes = {len(out[k]) for k in ("pretrain_indices", "difficult_pairs", "candidate_pairs")}
    if len(sizes) != 1:
        raise InputError(f"{where}: its difficult-pair counts do not match its indices")
    return out


def _shares(
    mine: np.ndarray, difficult: np.ndarray, candidates: np.ndarray, top: np.ndarray, f: float
) -> tuple[float, float, float]:
    """(difficult_percent, rate, top_tenth) of the samples ``mine`` (NaN when there are none
    or they were never seen)."""
    seen, n = candidates[mine].sum(), int(mine.sum())
    if n == 0 or seen == 0:
        return float("nan"), float("nan"), float("nan")
    fraction = difficult[mine].sum() / seen
    return 100.0 * fraction, fraction / f if f else float("nan"), 100.0 * top[mine].sum() / n


def difficult_pairs_analysis(
    counts: dict[str, np.ndarray],
    train_labels: np.ndarray,
    d_i_counts: Sequence[int],
    groups: dict[str, list[int]],
) -> dict[str, Any]:
    """The module docstring's numbers of one model: per class (ordered by D_i frequency, most
    first), per group (``summary``) and for the run (``difficult_percent``)."""
    classes = train_labels[counts["pretrain_indices"]]
    difficult = counts["difficult_pairs"].astype(np.float64)
    candidates = counts["candidate_pairs"].astype(np.float64)
    fraction = np.divide(difficult, candidates, out=np.zeros_like(difficult), where=candidates > 0)
    order = np.lexsort((np.arange(len(fraction)), -fraction))  # by -f_k, then position
    top = np.zeros(len(fraction), dtype=bool)
    top[order[: math.ceil(TOP_FRACTION * len(fraction))]] = True
    f = difficult.sum() / max(candidates.sum(), 1.0)
    group_of = {c: name for name, members in groups.items() for c in members}
    per_class = []
    for c in frequency_order(d_i_counts):
        mine = classes == c
        percent, rate, tenth = _shares(mine, difficult, candidates, top, f)
        per_class.append(
            {"class": c, "group": group_of.get(c, ""), "D_i": int(d_i_counts[c]),
             "images": int(mine.sum()), "difficult_percent": round(percent, 4),
             "rate": round(rate, 6), "top_tenth": round(tenth, 4)}
        )  # fmt: skip
    summary = {}
    for name in GROUPS:
        mine = np.isin(classes, groups.get(name, []))
        _, rate, tenth = _shares(mine, difficult, candidates, top, f)
        summary[f"{name} rate"], summary[f"{name} top 10 %"] = rate, tenth
    return {
        "counted_epochs": int(counts["counted_epochs"]),
        "difficult_percent": round(100.0 * f, 4),
        "summary": summary,
        "per_class": per_class,
    }


@register
class DifficultPairsAnalysis(Analysis):
    """Where a run's difficult pairs fell, by D_i frequency (this module's docstring)."""

    name = "difficult_pairs"
    title = (
        "Where the difficult pairs fall: each group's share of the margin and temperature, "
        "relative to the run's"
    )
    columns = SUMMARY_COLUMNS
    info = {"difficult": ("Difficult (%)", "difficult_percent", "{:.1f}")}
    note = (
        "Runs that tune difficult pairs only. Rate: the group's fraction of its pairs flagged "
        "difficult (given the margin and the smaller temperature) over the whole run, divided "
        "by the run's fraction (1: a fair share; above 1: the group's images are re-weighted "
        f"more). Top {TOP_FRACTION:.0%}: the % of the group's images among the "
        f"{TOP_FRACTION:.0%} of the pretraining set with the largest fraction "
        f"({100 * TOP_FRACTION:g} is a fair share). Difficult: the run's % of pairs flagged."
    )
    empty = (
        "no analysis record holds difficult-pair counts: every run with difficult_examples "
        "was trained before they were kept; delete those runs' folders in "
        "results/checkpoints/ (resume.pt too) and run again"
    )

    def check(self, config: dict[str, Any]) -> None:
        runs = [*config["methods"].values(), *(config.get("removal_methods") or [])]
        if not any("difficult_examples" in run for run in runs):
            raise ConfigError(
                "analyses: difficult_pairs reads the counts of runs that tune difficult pairs, "
                "and no method has difficult_examples; drop it from analyses or add such a "
                "method"
            )

    def compute(self, context: AnalysisContext) -> dict[str, Any] | None:
        counts = sample_counts(context.meta, context.model_path)
        if counts is None:  # only runs that tune difficult pairs have them
            return None
        labels = context.inputs.dataset.train_labels.numpy()
        d_i = context.inputs.split["counts"]["D_i"]
        return difficult_pairs_analysis(counts, labels, d_i, context.groups)

    def plot(
        self, records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None
    ) -> None:
        _plot_difficult_pairs_by_class(records, path, labels)


def _plot_difficult_pairs_by_class(
    records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None = None
) -> None:
    """One row per run that tunes difficult pairs (every dataset), two panels per row: per
    class rank in D_i, the class's rate of difficult pairs relative to the run's (1: a fair
    share) and the % of the class among the most re-weighted images; bars the mean over
    splits and seeds, dots each."""
    grouped = by_dataset_method(records, "difficult_pairs")
    rows = [(d, m, runs) for d, methods in grouped.items() for m, runs in methods.items()]
    classes = max(len(runs[0]["difficult_pairs"]["per_class"]) for _, _, runs in rows)
    width = max(5.5, 0.1 * classes + 3.5)
    fig, axes = plt.subplots(len(rows), 2, figsize=(2 * width, 4.0 * len(rows)), squeeze=False)
    fair = 100 * TOP_FRACTION
    panels = (  # key, label, fair share, colour, the bars' baseline (a rate's: 1)
        ("rate", "difficult-pair rate / the run's", 1.0, "tab:purple", 1.0),
        ("top_tenth", f"% of the class in the top {TOP_FRACTION:.0%}", fair, "tab:red", 0.0),
    )
    for (dataset, method, runs), pair in zip(rows, axes, strict=True):
        per_class = [r["difficult_pairs"]["per_class"] for r in runs]
        name = f"{label_of(labels, 'datasets', dataset)}: {label_of(labels, 'methods', method)}"
        for ax, (key, ylabel, level, colour, base) in zip(pair, panels, strict=True):
            plot_class_rank_bars(ax, per_class, key, colour, "mean over splits and seeds", base)
            ax.axhline(level, color="black", lw=1, ls="--")
            ax.set_ylabel(ylabel)
            ax.set_title(name, fontsize=9, pad=16)
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)
