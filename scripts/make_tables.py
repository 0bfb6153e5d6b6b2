"""Aggregate one probe's evaluation records into mean ± std tables (md, csv, tex, json)."""

import argparse

from sdclr import paths
from sdclr.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.stages import tables_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    parser.add_argument("--probe", required=True, choices=paths.PROBES)
    for fmt in paths.TABLE_FORMATS:
        parser.add_argument(f"--{fmt}", required=True, help=f"output {fmt} table")
    args = parser.parse_args()
    setup_logging()
    outputs = {fmt: getattr(args, fmt) for fmt in paths.TABLE_FORMATS}
    tables_stage(read_settings(args.settings), args.probe, outputs)


run(main)
