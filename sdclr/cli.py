"""Shared argument handling for the scripts: settings from JSON or from the config files."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from sdclr.config import load_config
from sdclr.errors import USER_ERRORS


def setup_logging(verbose: bool = False) -> None:
    """Readable log lines on stderr: time, level, module, message."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``--settings JSON`` (what the Snakefile passes) or ``--config FILE... --dataset NAME``."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--settings", help="the job's resolved settings as JSON")
    group.add_argument("--config", nargs="+", help="config file(s), merged in order")
    parser.add_argument("--dataset", help="dataset key in the config (with --config)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def resolve_settings(
    args: argparse.Namespace, from_config: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """The job's settings: parsed from ``--settings`` or computed from ``--config`` files."""
    if args.settings is not None:
        return json.loads(args.settings)
    config = load_config(*args.config)
    if args.dataset is None or args.dataset not in config["datasets"]:
        raise SystemExit(
            f"--dataset must name one of the config's datasets: {sorted(config['datasets'])}"
        )
    return from_config(config)


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
