"""The analyses of one pretrained model (PIE rates of its pruned network, class-mean geometry):
one job, one record."""

import argparse

from sdclr.pipeline.cli import add_model_job_arguments, read_settings, run, setup_logging
from sdclr.pipeline.stages.analyse import analysis_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_model_job_arguments(parser)
    parser.add_argument("--model", required=True, help="pretrained model.pt")
    parser.add_argument("--features", help="the model's feature file (stage features)")
    parser.add_argument("--out", required=True, help="output analysis .json")
    args = parser.parse_args()
    setup_logging()
    settings = read_settings(args.settings)
    analysis_stage(
        args.data,
        args.split,
        args.model,
        settings,
        args.seed,
        args.out,
        args.threads,
        args.features,
    )


run(main)
