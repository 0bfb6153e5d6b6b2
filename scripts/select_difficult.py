"""Select the difficult examples of D_i with a pretrained selector; write the removal record."""

import argparse

from sdclr.pipeline.cli import add_model_job_arguments, read_settings, run, setup_logging
from sdclr.pipeline.stages.select_difficult import select_difficult_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_model_job_arguments(parser)
    parser.add_argument("--model", required=True, help="the selector's pretrained model.pt")
    parser.add_argument("--out", required=True, help="output removal record .json")
    args = parser.parse_args()
    setup_logging()
    settings = read_settings(args.settings)
    select_difficult_stage(args.data, args.split, args.model, settings, args.out, args.threads)


run(main)
