"""Job logs that keep every attempt: a rule's shell command appends its stderr to its log,
after a line marking the attempt (UTC time, host, and the SLURM job id and restart count when
there are), so the log of a job that SLURM requeued or Snakemake retried holds each attempt,
the first one's last lines and its "SIGTERM received" included.

Snakemake deletes a job's log before every attempt. ``<log>.attempts``, a second name (hard
link) of the same file, keeps it; the next attempt links the log back to it before it appends
(a copy where the file system has no hard links): ``scripts/start_log.sh``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

START_LOG = Path(__file__).resolve().parents[2] / "scripts" / "start_log.sh"
ATTEMPT_LINE = "=== attempt started "


def logged(command: str, start_log: str | Path = START_LOG) -> str:
    """A rule's shell command, which appends its stderr to the log (``2>> {log:q}``), after
    ``scripts/start_log.sh {log:q}`` (a Snakemake shell string: ``{log:q}`` is the log)."""
    if "2>> {log:q}" not in command:
        raise ValueError(f"a logged command appends its stderr to the log: {command!r}")
    start = shlex.quote(str(start_log)).replace("{", "{{").replace("}", "}}")
    return f"sh {start} {{log:q}}; " + command
