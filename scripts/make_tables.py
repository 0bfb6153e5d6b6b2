"""Aggregate one probe's evaluation records into mean ± std tables (md, csv, tex, json)."""

import argparse

from sdclr.pipeline import paths
from sdclr.pipeline.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.pipeline.stages.make_tables import tables_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    parser.add_argument("--probe", required=True, help="the probe (linear, fewshot, ...)")
    for fmt in paths.TABLE_FORMATS:
        parser.add_argument(f"--{fmt}", required=True, help=f"output {fmt} table")
    for fmt in paths.SPLIT_TABLE_FORMATS:
        parser.add_argument(f"--splits-{fmt}", required=True, help=f"output per-split {fmt}")
    args = parser.parse_args()
    setup_logging()
    outputs = {fmt: getattr(args, fmt) for fmt in paths.TABLE_FORMATS}
    outputs |= {
        f"splits_{fmt}": getattr(args, f"splits_{fmt}") for fmt in paths.SPLIT_TABLE_FORMATS
    }
    tables_stage(read_settings(args.settings), args.probe, outputs)


run(main)
