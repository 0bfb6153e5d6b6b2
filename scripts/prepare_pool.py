"""Prepare COLT's out-of-distribution pool: a .npy file -> a checked uint8 tensor file."""

import argparse

from sdclr.pipeline.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.pipeline.stages.prepare_pool import prepare_pool_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    parser.add_argument("--data", required=True, help="the prepared dataset (.pt)")
    parser.add_argument("--source", required=True, help="the pool file (.npy)")
    parser.add_argument("--out", required=True, help="output .pt file")
    args = parser.parse_args()
    setup_logging()
    prepare_pool_stage(read_settings(args.settings), args.data, args.source, args.out)


run(main)
