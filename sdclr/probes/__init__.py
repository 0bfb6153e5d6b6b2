"""Probes of pretrained representations, registered by name (the way methods are).

Importing this package imports every probe module in it, so a new probe is one file here with
a class decorated by ``@register`` (see ``base.py``) and its settings in the config. The
analyses of a pretrained model have a registry of their own (``sdclr.analyses``).
"""

import importlib
import pkgutil

import sdclr.probes.linear  # noqa: E402,F401  (first: the paper's probes lead every list)
from sdclr.probes.base import PROBES, Probe, ProbeInputs, get_probe, register
from sdclr.probes.features import (
    extract_features,
    load_backbone,
    per_class_accuracy,
)
from sdclr.probes.record import run_probe

_INFRASTRUCTURE = {"base", "feature_file", "features", "record"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

#: The registered probes' names, in registration order: the one home of this list.
PROBE_NAMES = tuple(PROBES)
#: The probes the SDCLR paper reports (compared with config/paper/reported.yaml).
PAPER_PROBES = tuple(name for name, probe in PROBES.items() if probe.in_paper)
#: Every probe config/paper/reported.yaml has numbers of: the paper's and BCL's. (The
#: comparison outputs, ``sdclr.paths.COMPARISON``, still cover PAPER_PROBES only.)
COMPARED_PROBES = tuple(n for n, probe in PROBES.items() if probe.in_paper or probe.compared)
#: The probes a config runs when it names none: the paper's.
DEFAULT_PROBES = PAPER_PROBES

__all__ = [
    "COMPARED_PROBES",
    "DEFAULT_PROBES",
    "PAPER_PROBES",
    "PROBES",
    "PROBE_NAMES",
    "Probe",
    "ProbeInputs",
    "extract_features",
    "get_probe",
    "load_backbone",
    "per_class_accuracy",
    "register",
    "run_probe",
]
