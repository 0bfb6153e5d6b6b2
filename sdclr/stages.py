"""One function per pipeline stage: read its input files, call the library, write its outputs.

The scripts in ``scripts/`` parse arguments and call these; Snakemake rules and DVC stages
call the scripts. Every output is written atomically (``sdclr.io``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from sdclr import paths
from sdclr.data.datasets import dataset_summary, load_dataset, load_saved_dataset, save_dataset
from sdclr.data.reference_splits import import_reference_split
from sdclr.data.splits import (
    LongTailConfig,
    check_split,
    load_split,
    make_longtail_split,
    save_split,
)
from sdclr.device import pick_device
from sdclr.difficult_removal import kept_indices
from sdclr.errors import InputError
from sdclr.evaluation import run_probe
from sdclr.io import remove_stale_temporaries, write_json
from sdclr.runlock import run_directory_lock
from sdclr.settings import load
from sdclr.signals import Terminated, exit_on_sigterm
from sdclr.train import pretrain

log = logging.getLogger(__name__)


def prepare_dataset_stage(
    settings: dict[str, Any], out: str | Path, summary_out: str | Path
) -> None:
    """Raw dataset -> one uint8 tensor file plus a JSON summary (sizes, per-class counts)."""
    source = settings["source"]
    dataset = load_dataset(source, settings["data_root"], download=settings["download"])
    save_dataset(dataset, out)
    write_json(summary_out, dataset_summary(dataset))
    log.info(
        "%s: %d train / %d test images, %d classes",
        source["name"],
        len(dataset.train_labels),
        len(dataset.test_labels),
        dataset.num_classes,
    )


def make_split_stage(
    data: str | Path, settings: dict[str, Any], split: int, out: str | Path
) -> None:
    """Cut long-tail split ``split`` of the prepared dataset (or import the reference
    implementation's files when ``reference_splits`` is set) and write it as JSON."""
    dataset = load_saved_dataset(data)
    longtail = dict(settings["longtail"])
    reference = longtail.pop("reference_splits", None)
    if reference:
        record = import_reference_split(reference, dataset, settings["dataset"], split)
    else:
        config = load(LongTailConfig, longtail, "longtail")
        record = make_longtail_split(
            dataset.train_labels.numpy(), dataset.num_classes, config, settings["dataset"], split
        )
    check_split(record, len(dataset.train_labels), str(out), record.get("fewshot_inside_di", True))
    record["classes"] = list(dataset.classes)
    save_split(record, out)
    log.info("split %d: %s", split, record["sizes"])


def _job_inputs(
    data: str | Path, split_path: str | Path, settings: dict[str, Any], threads: int | None
) -> tuple[Any, dict[str, Any], torch.device]:
    """What a training or probe job starts from: torch threads set, the prepared dataset, the
    split record and the device."""
    if threads:
        torch.set_num_threads(threads)
    dataset = load_saved_dataset(data)
    return (
        dataset,
        load_split(split_path, dataset),
        pick_device(settings.get("device", "auto")),
    )


def pretrain_stage(
    data: str | Path,
    split_path: str | Path,
    settings: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    threads: int | None = None,
    progress: bool = True,
    removal: str | Path | None = None,
) -> dict[str, Any]:
    """Pretrain on the split's ``D_i`` (or ``D_b``) images; resumes from ``out_dir/resume.pt``.
    A removal run (``remove_difficult``) pretrains on the D_i images its removal record
    ``removal`` keeps (``sdclr.difficult_removal``).

    The job holds ``out_dir/run.lock`` while it runs (``sdclr.runlock``): a second job on the
    same run directory (an orphan of a killed Snakemake and its rerun, say) stops at once with
    a message naming the holder. SIGTERM (what SLURM sends before SIGKILL on preemption,
    ``scancel`` or the time limit) and SIGINT (Ctrl-C) stop the run cleanly with exit status
    143 / 130: a checkpoint being written is finished first, and the last complete one is kept
    for the next attempt to resume from.
    """
    with exit_on_sigterm(), _main_process_lock(out_dir):
        try:
            remove_stale_temporaries(out_dir)  # under the lock: no other job writes here
            dataset, split, device = _job_inputs(data, split_path, settings, threads)
            indices = torch.as_tensor(_pretraining_indices(split, settings, removal))
            images = dataset.train_images[indices]
            return pretrain(settings, images, out_dir, seed, device, progress, sample_ids=indices)
        except Terminated as stop:
            log.warning(
                "%s received: stopped; a rerun resumes from the last checkpoint in %s",
                stop.signame,
                out_dir,
            )
            raise


def _pretraining_indices(
    split: dict[str, Any], settings: dict[str, Any], removal: str | Path | None
) -> list[int]:
    """The training-set indices a run pretrains on: its subset, or what its removal keeps."""
    method = settings["method"]
    if "remove_difficult" not in method:
        if removal is not None:
            raise InputError(f"method {method['name']!r} removes no examples; drop --removal")
        return split["indices"][method["pretrain_set"]]
    if removal is None:
        raise InputError(
            f"method {method['name']!r} removes difficult examples: pass its removal record "
            "(--removal, written by the select_difficult rule)"
        )
    return kept_indices(removal, split, method["name"])


def select_difficult_stage(
    data: str | Path,
    split_path: str | Path,
    model_path: str | Path,
    settings: dict[str, Any],
    out: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Score D_i with the selector's features, pick the difficult examples and write the
    removal record (``sdclr.difficult_removal``)."""
    from sdclr.difficult_removal import (
        RemovalSettings,
        difficulty_scores,
        removal_record,
        select_difficult,
    )
    from sdclr.evaluation.features import center_crop, extract_features, load_backbone

    dataset, split, device = _job_inputs(data, split_path, settings, threads)
    rule = load(RemovalSettings, settings["remove"], f"removal_methods.{settings['method']}")
    backbone, _ = load_backbone(model_path)
    d_i = torch.as_tensor(split["indices"]["D_i"], dtype=torch.long)
    images = center_crop(dataset.train_images[d_i], settings["crop_size"])
    features = extract_features(backbone.to(device), images, device)
    scores = difficulty_scores(features, rule.pos_high, rule.pos_low)
    removed = select_difficult(scores, rule.fraction)
    record = removal_record(split, dataset.train_labels.numpy(), removed, settings)
    write_json(out, record)
    log.info("%s: removed %d of %d D_i images", settings["method"], len(removed), len(d_i))
    return record


@contextmanager
def _main_process_lock(out_dir: str | Path) -> Iterator[None]:
    """The run directory's lock, taken by the main process only (rank 0 under torchrun)."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    with run_directory_lock(out_dir):
        yield


def probe_stage(
    data: str | Path,
    split_path: str | Path,
    model_path: str | Path,
    settings: dict[str, Any],
    seed: int,
    out: str | Path,
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the linear or few-shot probe of one pretrained model and write its record."""
    dataset, split, device = _job_inputs(data, split_path, settings, threads)
    record = run_probe(model_path, dataset, split, settings, seed, device, progress)
    write_json(out, record)
    return record


def analysis_stage(
    data: str | Path,
    split_path: str | Path,
    model_path: str | Path,
    settings: dict[str, Any],
    seed: int,
    out: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run the analyses (PIE rates, class-mean geometry) of one pretrained model, write its
    record."""
    from sdclr.evaluation.analysis import run_analysis

    dataset, split, device = _job_inputs(data, split_path, settings, threads)
    record = run_analysis(model_path, dataset, split, settings, seed, device)
    write_json(out, record)
    return record


def analysis_report_stage(
    report: dict[str, Any], analysis: str, outputs: dict[str, str | Path]
) -> None:
    """The table (md, csv) and the figure of one analysis over every model's record."""
    from sdclr.analysis_report import load_analysis_records, write_analysis_report

    records = load_analysis_records(report["analysis_files"])
    order = [tuple(pair) for pair in report["row_order"]]
    write_analysis_report(records, analysis, outputs, order, report["labels"])


def tables_stage(report: dict[str, Any], probe: str, outputs: dict[str, str | Path]) -> None:
    """Aggregate ``probe``'s evaluation records (listed in the report settings) into its table
    in every requested format."""
    # pandas/matplotlib load here, not at module import: the many training jobs never need them.
    from sdclr.report import load_records, write_tables

    order = [tuple(pair) for pair in report["row_order"]]
    write_tables(load_records(report["evals"][probe]), probe, outputs, order, report["labels"])


def figures_stage(report: dict[str, Any], outputs: dict[str, str | Path]) -> None:
    """Write the figures (``outputs``: name -> path, the keys of ``sdclr.paths.FIGURES``)."""
    from sdclr.figures import plot_accuracy_vs_frequency, plot_class_profile, plot_group_accuracy
    from sdclr.report import load_records

    records = load_records([f for files in report["evals"].values() for f in files])
    labels = report["labels"]
    plot_group_accuracy(records, outputs["group_accuracy"], labels)
    splits = [load_split(p) for p in report["splits"]]
    plot_class_profile(splits, outputs["class_profile"], report["group_rules"], labels)
    plot_accuracy_vs_frequency(records, outputs["accuracy_vs_frequency"], labels)


def comparison_stage(
    report: dict[str, Any], reported: str | Path, outputs: dict[str, str | Path]
) -> None:
    """Tables per probe (``outputs["<probe>_md"]``, ``outputs["<probe>_csv"]``) and a figure
    (``outputs["figure"]``) of our mean ± std next to the paper's reported numbers."""
    from sdclr.figures import plot_paper_comparison
    from sdclr.paper import compare_with_paper, load_reported, write_comparison
    from sdclr.report import load_records

    reported_numbers = load_reported(reported)
    labels = report["labels"]
    comparisons = {}
    for probe in paths.PAPER_PROBES:  # every paper probe has its output, if empty
        records = load_records(report["evals"].get(probe, []))
        comparisons[probe] = compare_with_paper(
            records, reported_numbers, probe, report["paper_names"]
        )
        md, csv = outputs[f"{probe}_md"], outputs[f"{probe}_csv"]
        write_comparison(comparisons[probe], probe, md, csv, labels)
    plot_paper_comparison(comparisons, outputs["figure"], labels)


def removal_figure_stage(
    report: dict[str, Any], records: list[str | Path], out: str | Path
) -> None:
    """The figure of where a removal run's difficult examples come from (its records: every
    split and seed of one dataset)."""
    from sdclr.figures import plot_removal
    from sdclr.io import read_json

    files = [f for p in map(Path, records) for f in (sorted(p.glob("split*/seed*.json")) or [p])]
    plot_removal([read_json(f) for f in files], out, report["labels"])


__all__ = [
    "analysis_report_stage",
    "analysis_stage",
    "comparison_stage",
    "figures_stage",
    "make_split_stage",
    "prepare_dataset_stage",
    "pretrain_stage",
    "probe_stage",
    "removal_figure_stage",
    "select_difficult_stage",
    "tables_stage",
]
