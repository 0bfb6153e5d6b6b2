"""Tables and figures of the per-model analyses (``sdclr.analyses.run``): PIE rates per
group, class-mean geometry and where difficult pairs fall, mean ± population std over splits
(the seeds of a split averaged first, as in ``sdclr.reporting.tables``), a figure of PIE rate
against
D_i count, the class-mean cosine heatmaps, and the difficult pairs' share per class rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sdclr.analyses.difficult_pairs import SUMMARY_COLUMNS, TOP_FRACTION  # noqa: E402
from sdclr.analyses.run import ANALYSIS_TITLES  # noqa: E402
from sdclr.errors import InputError  # noqa: E402
from sdclr.io import read_json, save_figure, write_text  # noqa: E402
from sdclr.reporting.figures import label_of, plot_class_rank_bars, plot_per_class_vs_frequency  # noqa: E402

PIE_COLUMNS = ("Many", "Medium", "Few", "All")
GEOMETRY_COLUMNS = (
    "Few-Few cosine",
    "Medium-Medium cosine",
    "Many-Many cosine",
    "All-pairs cosine",
    "Within-class spread",
)
COLUMNS = {"pie": PIE_COLUMNS, "geometry": GEOMETRY_COLUMNS, "difficult_pairs": SUMMARY_COLUMNS}
NOTES = {
    "pie": "PIE rate (%): share of a class's test images on which the probe's predictions from "
    "the pruned and the dense network differ; Many/Medium/Few/All: mean over the classes of the "
    "group (thirds by D_i frequency) or over all classes. Ratio: the share of conv weights "
    "pruned; BN: the pruned network's BatchNorm.",
    "geometry": "Cosines between the class means of the L2-normalised dense test features, "
    "averaged over the pairs of distinct classes of a group; within-class spread: mean over "
    "classes of the mean (1 - cosine) of a class's features to its mean direction.",
    "difficult_pairs": "Runs that tune difficult pairs only. Rate: the group's fraction of its "
    "pairs flagged difficult (given the margin and the smaller temperature) over the whole "
    "run, divided by the run's fraction (1: a fair share; above 1: the group's images are "
    f"re-weighted more). Top {TOP_FRACTION:.0%}: the % of the group's images among the "
    f"{TOP_FRACTION:.0%} of the pretraining set with the largest fraction "
    f"({100 * TOP_FRACTION:g} is a fair share). Difficult: the run's % of pairs flagged.",
}


def load_analysis_records(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read analysis records written by ``sdclr.analyses.run.run_analysis``."""
    records = []
    for path in paths:
        record = read_json(path)
        if "analyses" not in record or "dataset" not in record:
            raise ValueError(f"{path} is not an analysis record; re-run its analysis job")
        records.append(record)
    return records


def analysis_frame(records: Sequence[dict[str, Any]], analysis: str) -> pd.DataFrame:
    """One row per record holding ``analysis``: its keys and the analysis's summary numbers."""
    columns = COLUMNS[analysis]
    rows = []
    for r in records:
        if analysis not in r:
            continue
        part = r[analysis]
        extra = {}
        if analysis == "pie":
            extra = {"probe": part["probe"], "ratio": part["prune_ratio"], "bn": part["batchnorm"]}
        elif analysis == "difficult_pairs":
            extra = {"difficult": part["difficult_percent"]}
        keys = {k: r[k] for k in ("dataset", "method", "split", "seed")}
        keys["pretrain_set"] = r.get("pretrain_set", "D_i")
        rows.append({**keys, **extra, **{c: part["summary"][c] for c in columns}})
    return pd.DataFrame(rows)


def aggregate_analysis(
    frame: pd.DataFrame, analysis: str, order: Sequence[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """Per (dataset, method): ``splits`` and ``<column>_mean`` / ``<column>_std`` over splits
    (population std), the seeds of a split averaged first; rows in ``order`` when given."""
    columns = list(COLUMNS[analysis])
    keys = ["dataset", "method"]
    info = [c for c in ("pretrain_set", "probe", "ratio", "bn", "difficult") if c in frame.columns]
    per_split = frame.groupby([*keys, "split"], sort=False)[columns].mean()
    grouped = per_split.groupby(level=keys, sort=False)
    out = frame.groupby(keys, sort=False)[info].first()
    out["splits"] = grouped.size()
    for c in columns:
        out[f"{c}_mean"] = grouped[c].mean()
        out[f"{c}_std"] = grouped[c].agg(lambda s: float(np.std(s.to_numpy(), ddof=0)))
    out = out.reset_index()
    if order is not None:
        rank = {tuple(pair): i for i, pair in enumerate(order)}
        out["_rank"] = [rank.get(p, len(rank)) for p in zip(out.dataset, out.method, strict=True)]
        out = out.sort_values("_rank", kind="stable").drop(columns="_rank")
    return out.reset_index(drop=True)


def analysis_markdown(table: pd.DataFrame, analysis: str, labels: dict | None = None) -> str:
    """The aggregated table in Markdown, with a note on how to read it."""
    labels = labels or {"datasets": {}, "methods": {}}
    columns = COLUMNS[analysis]
    info = {"pie": ["Probe", "Ratio", "BN"], "difficult_pairs": ["Difficult (%)"]}.get(analysis, [])
    unit = "%, " if analysis == "pie" else ""
    fmt = "{:.3f}" if analysis == "geometry" else "{:.2f}"
    header = ["Dataset", "Method", "Pretrained on", *info, *columns, "Splits"]
    lines = [
        f"## {ANALYSIS_TITLES[analysis]} ({unit}mean ± std over splits)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in table.to_dict("records"):
        cells = [
            labels["datasets"].get(row["dataset"], row["dataset"]),
            labels["methods"].get(row["method"], row["method"]),
            row["pretrain_set"],
        ]
        if analysis == "pie":
            cells += [row["probe"], f"{row['ratio']:g}", row["bn"]]
        elif analysis == "difficult_pairs":
            cells.append(f"{row['difficult']:.1f}")
        for c in columns:
            mean, std = row[f"{c}_mean"], row[f"{c}_std"]
            cells.append("n/a" if np.isnan(mean) else f"{fmt.format(mean)} ± {fmt.format(std)}")
        cells.append(str(row["splits"]))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join([*lines, "", NOTES[analysis], ""])


def _by_dataset_method(records: Sequence[dict[str, Any]], analysis: str) -> dict:
    """``{dataset: {method: [records]}}`` of the records holding ``analysis``, in order."""
    out: dict[str, dict[str, list]] = {}
    for r in records:
        if analysis in r:
            out.setdefault(r["dataset"], {}).setdefault(r["method"], []).append(r)
    return out


def plot_pie_vs_frequency(
    records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None = None
) -> None:
    """Per-class PIE rate against the class's D_i count (log x), one panel per dataset: every
    class of every split a point, each method's trend the mean rate at each frequency rank."""
    grouped = _by_dataset_method(records, "pie")
    fig, axes = plt.subplots(1, len(grouped), figsize=(6.5 * len(grouped), 4.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (dataset, methods) in zip(axes[0], grouped.items(), strict=True):
        for k, (method, runs) in enumerate(methods.items()):
            ratio = runs[0]["pie"]["prune_ratio"]
            plot_per_class_vs_frequency(
                ax,
                runs,
                [r["pie"]["per_class_pie_rate"] for r in runs],
                cmap(k % 10),
                f"{label_of(labels, 'methods', method)} (p = {ratio:g})",
            )
        ax.set_ylabel("PIE rate (% of the class's test images)")
        ax.set_title(f"{label_of(labels, 'datasets', dataset)}: pruned vs dense disagreement")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)


def plot_class_mean_cosines(
    records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None = None
) -> None:
    """Heatmaps of the class-mean cosine matrix, one per method side by side (a row per
    dataset), classes ordered by D_i count (most frequent first). Each cell is the mean over
    the splits (and seeds) of the cosine between the classes at those frequency ranks: which
    class holds a rank differs between splits, its D_i count does not."""
    grouped = _by_dataset_method(records, "geometry")
    ncols = max(len(m) for m in grouped.values())
    fig, axes = plt.subplots(
        len(grouped), ncols, figsize=(4.4 * ncols, 4.2 * len(grouped)), squeeze=False
    )
    image = None
    for i, (dataset, methods) in enumerate(grouped.items()):
        for j in range(len(methods), ncols):
            axes[i][j].set_visible(False)
        for j, (method, runs) in enumerate(methods.items()):
            ax = axes[i][j]
            matrix = np.nanmean([np.asarray(r["geometry"]["cosine_matrix"]) for r in runs], axis=0)
            image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, np.nanmin(matrix)), vmax=1.0)
            counts = sorted(runs[0]["train_counts"], reverse=True)
            if len(counts) <= 20:
                ax.set_xticks(range(len(counts)), counts, rotation=90, fontsize=7)
                ax.set_yticks(range(len(counts)), counts, fontsize=7)
            few_few = np.nanmean([r["geometry"]["summary"]["Few-Few cosine"] for r in runs])
            ax.set_title(
                f"{label_of(labels, 'datasets', dataset)}: {label_of(labels, 'methods', method)}\n"
                f"Few-Few cosine {few_few:.3f}",
                fontsize=9,
            )
            ax.set_xlabel("class (D_i count, most frequent first)", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="cosine of class means (mean over splits)")
    save_figure(path, fig)
    plt.close(fig)


def plot_difficult_pairs_by_class(
    records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None = None
) -> None:
    """One row per run that tunes difficult pairs (every dataset), two panels per row: per
    class rank in D_i, the class's rate of difficult pairs relative to the run's (1: a fair
    share) and the % of the class among the most re-weighted images; bars the mean over
    splits and seeds, dots each."""
    grouped = _by_dataset_method(records, "difficult_pairs")
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


PLOTS = {
    "pie": plot_pie_vs_frequency,
    "geometry": plot_class_mean_cosines,
    "difficult_pairs": plot_difficult_pairs_by_class,
}


def write_analysis_report(
    records: Sequence[dict[str, Any]],
    analysis: str,
    outputs: dict[str, str | Path],
    order: Sequence[tuple[str, str]] | None = None,
    labels: dict | None = None,
) -> pd.DataFrame:
    """Write ``analysis``'s table (``outputs["md"]``, ``outputs["csv"]``) and figure
    (``outputs["figure"]``); return the aggregated table."""
    frame = analysis_frame(records, analysis)
    if frame.empty and analysis == "difficult_pairs":
        raise InputError(
            "no analysis record holds difficult-pair counts: every run with "
            "difficult_examples was trained before they were kept; delete those runs' folders "
            "in results/checkpoints/ (resume.pt too) and run again"
        )
    if frame.empty:
        raise ValueError(f"no analysis records hold the {analysis!r} analysis")
    table = aggregate_analysis(frame, analysis, order)
    write_text(outputs["md"], analysis_markdown(table, analysis, labels))
    write_text(outputs["csv"], table.to_csv(index=False, float_format="%.4f"))
    PLOTS[analysis](records, outputs["figure"], labels)
    return table
