"""The one rule for a name the pipeline turns into a path: a dataset's, a method run's.

Such a name becomes a folder under ``results/``, a Snakemake wildcard, a DVC matrix key and a
table row, so it must be one safe path component: letters, digits, ``_`` and ``-``, with
single dots between them. It cannot be empty, start with ``.`` or ``-`` (no hidden folder, no
command-line option), hold ``/``, a space or ``..``, or end with a dot. :data:`NAME` is that
rule as a regular expression without anchors or look-arounds, so the same string serves as
the JSON schema's ``pattern`` (anchored) and as the Snakefile's wildcard constraint.
"""

from __future__ import annotations

import re

NAME = r"[A-Za-z0-9_](?:\.?[A-Za-z0-9_-])*"
NAME_PATTERN = f"^{NAME}$"
NAME_RULE = (
    "a name of letters, digits, _ and -, with single dots between them "
    "(not empty, no leading . or -, no '..', '/' or spaces)"
)


def is_name(value: object) -> bool:
    """Whether ``value`` is a string that follows the name rule."""
    return isinstance(value, str) and re.fullmatch(NAME, value) is not None


__all__ = ["NAME", "NAME_PATTERN", "NAME_RULE", "is_name"]
