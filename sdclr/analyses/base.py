"""The contract of an analysis of one pretrained model, and the name -> analysis registry.

An analysis computes a part of the model's analysis record (``compute``: per-class numbers and
a ``summary`` of table columns), says how its table reads (``title``, ``columns``, the
per-run ``info`` columns, ``note``, number format) and draws its figure (``plot``, from every
model's record). It may have settings (``Settings``, config key ``<name>_analysis`` of a
dataset) and rules about which configs it composes with (``check``). The analysis job
(``sdclr.analyses.run``) runs the ones the config's ``analyses:`` lists on one model, from
one feature pass (:class:`AnalysisContext` reads the model's dense features from its feature
file, ``sdclr.probes.feature_file``, or computes them once); the report job
(``sdclr.reporting.analyses``) turns each into a table and a figure. Adding one is a module
in ``sdclr/analyses/`` with a class decorated by ``@register`` and its name in
``analyses:``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from sdclr.probes.base import POOL, ProbeInputs
from sdclr.registry import Registry
from sdclr.settings import load

ANALYSES: Registry[Analysis] = Registry("analysis", "analyses", "sdclr/analyses/", "register")


@dataclass
class AnalysisContext:
    """What an analysis of one pretrained model sees. The dense features of the test set and
    of the balanced train pool are read from the model's feature file (``inputs.features``) or
    computed once, when first asked for (before any pruning); an analysis that
    changes the model (``mutates_model``, PIE's pruning) runs after the others."""

    model: nn.Module
    method: Any  # the Method that trained it
    meta: dict[str, Any]  # model.pt's metadata
    model_path: str
    inputs: ProbeInputs
    groups: dict[str, Any]  # Many / Medium / Few of the split's classes
    settings: dict[str, Any]  # the analysis job's settings file

    @cached_property
    def test_features(self) -> torch.Tensor:
        return self.inputs.test_features()

    @cached_property
    def pool_features(self) -> torch.Tensor:
        return self.inputs.subset_features(POOL)

    def analysis_settings(self, analysis: Analysis) -> Any:
        """The settings object of ``analysis`` from the job's settings (None: it has none)."""
        if analysis.Settings is None:
            return None
        key = analysis.config_key
        return load(analysis.Settings, self.settings.get(key), key)


class Analysis:
    """Base class: subclasses set ``name``, ``title``, ``columns``, ``note`` and implement
    ``compute`` and ``plot``."""

    name: ClassVar[str]
    title: ClassVar[str]  # the table's heading
    columns: ClassVar[tuple[str, ...]]  # the summary's columns, mean ± std over splits
    #: Per-run columns before them: CSV column -> (table header, key of the record's part,
    #: format).
    info: ClassVar[dict[str, tuple[str, str, str]]] = {}
    note: ClassVar[str]  # how to read the table (under it)
    unit: ClassVar[str] = ""  # e.g. "%, " in the heading
    number_format: ClassVar[str] = "{:.2f}"
    default: ClassVar[bool] = False  # run when a config names no analyses
    mutates_model: ClassVar[bool] = False  # runs last (it changes the model)
    #: Its settings (config key ``<name>_analysis``); None: it has none.
    Settings: ClassVar[type | None] = None
    #: Other config keys of a dataset it reads (PIE's kNN: ``knn_probe``).
    reads: ClassVar[tuple[str, ...]] = ()

    @property
    def config_key(self) -> str:
        return f"{self.name}_analysis"

    def check(self, config: dict[str, Any]) -> None:
        """Raise ``ConfigError`` when a (merged) user config cannot run it."""

    def compute(self, context: AnalysisContext) -> dict[str, Any] | None:
        """Its part of the model's record (with a ``summary`` of :attr:`columns`), or None
        where it does not apply to this model."""
        raise NotImplementedError

    #: The message when no model's record holds it (None: a plain "no records" error).
    empty: ClassVar[str | None] = None

    def plot(
        self, records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None
    ) -> None:
        """Its figure from every model's record that holds it."""
        raise NotImplementedError


def by_dataset_method(records: Sequence[dict[str, Any]], analysis: str) -> dict:
    """``{dataset: {method: [records]}}`` of the records holding ``analysis``, in order."""
    out: dict[str, dict[str, list]] = {}
    for r in records:
        if analysis in r:
            out.setdefault(r["dataset"], {}).setdefault(r["method"], []).append(r)
    return out


def register(cls: type[Analysis]) -> type[Analysis]:
    """Class decorator adding an analysis (one instance) to the registry under ``cls.name``."""
    return ANALYSES.register(cls)


def get_analysis(name: str) -> Analysis:
    """The analysis registered as ``name``; an unknown name lists the known ones."""
    return ANALYSES.lookup(name)
