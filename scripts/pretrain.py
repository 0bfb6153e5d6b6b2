"""Pretrain one method on one split and seed; resumes from the checkpoint in --out-dir."""

import argparse

from sdclr.cli import add_settings_arguments, resolve_settings, run, setup_logging
from sdclr.config import pretrain_settings
from sdclr.distributed import relaunch_with_torchrun
from sdclr.stages import pretrain_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_arguments(parser)
    parser.add_argument("--method", help="method key in the config (with --config)")
    parser.add_argument("--data", required=True, help="prepared dataset .pt")
    parser.add_argument("--split", required=True, help="split .json")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--out-dir", required=True, help="checkpoint directory")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = parser.parse_args()
    setup_logging()
    settings = resolve_settings(
        args, lambda config: pretrain_settings(config, args.dataset, args.method)
    )
    relaunch_with_torchrun(settings["pretrain"].get("gpus", 1))  # multi-GPU: one process per GPU
    pretrain_stage(
        args.data, args.split, settings, args.seed, args.out_dir, args.threads, not args.quiet
    )


run(main)
