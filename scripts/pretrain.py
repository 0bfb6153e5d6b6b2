"""Pretrain one method on one split and seed; resumes from the checkpoint in --out-dir."""

import argparse

from sdclr.distributed import relaunch_with_torchrun
from sdclr.pipeline.cli import (
    add_model_job_arguments,
    read_settings,
    run,
    setup_logging,
    show_progress,
)
from sdclr.pipeline.stages.pretrain import pretrain_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_model_job_arguments(parser)
    parser.add_argument("--out-dir", required=True, help="checkpoint directory")
    parser.add_argument(
        "--removal", default=None, help="removal record (a removal run: pretrain on what it keeps)"
    )
    parser.add_argument(
        "--pool", default=None, help="COLT's prepared pool (a COLT run with a pool file)"
    )
    args = parser.parse_args()
    setup_logging()
    settings = read_settings(args.settings)
    relaunch_with_torchrun(settings["pretrain"].get("gpus", 1))  # multi-GPU: one process per GPU
    pretrain_stage(
        args.data,
        args.split,
        settings,
        args.seed,
        args.out_dir,
        args.threads,
        show_progress(args),
        args.removal,
        args.pool,
    )


run(main)
