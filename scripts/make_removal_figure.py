"""Figure of where a removal run's difficult examples come from, by class ordered by D_i
frequency."""

import argparse

from sdclr.pipeline.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.pipeline.stages.make_removal_figure import removal_figure_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    parser.add_argument(
        "--records",
        nargs="+",
        required=True,
        help="removal records .json, or the run's directory of them (every split and seed)",
    )
    parser.add_argument("--out", required=True, help="output .png")
    args = parser.parse_args()
    setup_logging()
    removal_figure_stage(read_settings(args.settings), args.records, args.out)


run(main)
