"""Figures of the evaluation records and split profiles (group accuracy, class profile,
accuracy against class frequency)."""

import argparse

from sdclr.pipeline import paths
from sdclr.pipeline.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.pipeline.stages.make_figures import figures_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    for name in paths.FIGURES:
        parser.add_argument(f"--{name.replace('_', '-')}", required=True, help="output .png")
    args = parser.parse_args()
    setup_logging()
    outputs = {name: getattr(args, name) for name in paths.FIGURES}
    figures_stage(read_settings(args.settings), outputs)


run(main)
