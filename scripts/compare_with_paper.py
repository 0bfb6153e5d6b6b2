"""Our mean ± std next to the paper's reported numbers: tables and a figure."""

import argparse

from sdclr import paths
from sdclr.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.stages import comparison_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    parser.add_argument("--reported", default=str(paths.REPORTED), help="the paper's numbers")
    for key in paths.COMPARISON:
        parser.add_argument(f"--{key.replace('_', '-')}", required=True, help="output file")
    args = parser.parse_args()
    setup_logging()
    outputs = {key: getattr(args, key) for key in paths.COMPARISON}
    comparison_stage(read_settings(args.settings), args.reported, outputs)


run(main)
