"""Aggregate one analysis (pie or geometry) of every model into its table and figure."""

import argparse

from sdclr.pipeline import paths
from sdclr.pipeline.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.pipeline.stages.make_analysis_report import analysis_report_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    parser.add_argument("--analysis", required=True, help="the analysis (pie, geometry, ...)")
    for fmt in paths.ANALYSIS_TABLE_FORMATS:
        parser.add_argument(f"--{fmt}", required=True, help=f"output {fmt} table")
    parser.add_argument("--figure", required=True, help="output .png")
    args = parser.parse_args()
    setup_logging()
    outputs = {fmt: getattr(args, fmt) for fmt in paths.ANALYSIS_TABLE_FORMATS}
    outputs["figure"] = args.figure
    analysis_report_stage(read_settings(args.settings), args.analysis, outputs)


run(main)
