"""Prepare one dataset: raw files -> one uint8 tensor file plus a JSON summary."""

import argparse

from sdclr.pipeline.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.pipeline.stages.prepare_dataset import prepare_dataset_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    parser.add_argument("--out", required=True, help="output .pt file")
    parser.add_argument("--summary", required=True, help="output summary .json")
    args = parser.parse_args()
    setup_logging()
    prepare_dataset_stage(read_settings(args.settings), args.out, args.summary)


run(main)
