"""What every script shares: readable logging, the job's settings file, one-line user errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from sdclr.errors import USER_ERRORS, InputError
from sdclr.io import read_json


def setup_logging(verbose: bool = False) -> None:
    """Readable log lines on stderr: time, level, module, message."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def add_settings_argument(parser: argparse.ArgumentParser) -> None:
    """``--settings FILE``: the job's settings file (``sdclr.pipeline.paths.SETTINGS``), the one way
    settings reach a script; and ``--quiet`` for no progress bars."""
    parser.add_argument(
        "--settings", required=True, help="the job's settings .json (results/settings/...)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_model_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The inputs of a job on one (split, seed): ``--settings``, ``--data``, ``--split``,
    ``--seed``, ``--threads`` (pretraining and probes)."""
    add_settings_argument(parser)
    parser.add_argument("--data", required=True, help="prepared dataset .pt")
    parser.add_argument("--split", required=True, help="split .json")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal: under Snakemake or SLURM stderr is a log file, which
    gets the per-epoch log lines instead of bar redraws."""
    return not args.quiet and sys.stderr.isatty()


def read_settings(path: str) -> dict[str, Any]:
    """The settings a rule wrote for this job."""
    settings = read_json(path)
    if not isinstance(settings, dict):
        raise InputError(f"settings file {path} must hold a JSON object; re-run its rule")
    return settings


def run(main: Callable[[], object]) -> None:
    """Run a script's ``main``; a user error (``sdclr.errors.USER_ERRORS``: a bad config key, a
    wrong or missing file, a full disk, a busy run directory) ends it with its one-line message
    on stderr and exit status 1, with no traceback. Any other exception is a bug and keeps its
    traceback."""
    try:
        main()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
