"""Cut one long-tail split (validation, D_i, D_b, S_b) of a prepared dataset."""

import argparse

from sdclr.cli import add_settings_arguments, resolve_settings, run, setup_logging
from sdclr.config import split_settings
from sdclr.stages import make_split_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_arguments(parser)
    parser.add_argument("--data", required=True, help="prepared dataset .pt")
    parser.add_argument("--split", required=True, type=int, help="split id")
    parser.add_argument("--out", required=True, help="output split .json")
    args = parser.parse_args()
    setup_logging()
    settings = resolve_settings(args, lambda config: split_settings(config, args.dataset))
    make_split_stage(args.data, settings, args.split, args.out)


run(main)
