"""Cut one long-tail split (validation, D_i, D_b, S_b) of a prepared dataset."""

import argparse

from sdclr.pipeline.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.pipeline.stages.make_split import make_split_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    parser.add_argument("--data", required=True, help="prepared dataset .pt")
    parser.add_argument("--split", required=True, type=int, help="split id")
    parser.add_argument("--out", required=True, help="output split .json")
    args = parser.parse_args()
    setup_logging()
    make_split_stage(args.data, read_settings(args.settings), args.split, args.out)


run(main)
