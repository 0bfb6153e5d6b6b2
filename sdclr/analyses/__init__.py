"""Analyses of one pretrained model, registered by name (``base.py``: the contract): PIE rates
of its pruned network (``pie.py``), class-mean geometry (``geometry.py``) and where a run's
difficult pairs fell (``difficult_pairs.py``).

Importing this package imports every analysis module in it, so a new analysis is one file here
with a class decorated by ``@register`` and its name in the config's ``analyses:``.
"""

import importlib
import pkgutil

from sdclr.analyses.base import ANALYSES, Analysis, AnalysisContext, get_analysis, register

# Registration order is report order: PIE and geometry first, then the others by name.
_FIRST = ["pie", "geometry"]
_OTHERS = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _FIRST)
for _module in _FIRST + _OTHERS:
    if _module not in {"base", "run"} and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

#: The registered analyses' names, in report order.
ANALYSIS_NAMES = tuple(ANALYSES)
#: What a config runs when it names none.
DEFAULT_ANALYSES = tuple(name for name, a in ANALYSES.items() if a.default)

__all__ = [
    "ANALYSES",
    "ANALYSIS_NAMES",
    "DEFAULT_ANALYSES",
    "Analysis",
    "AnalysisContext",
    "get_analysis",
    "register",
]
