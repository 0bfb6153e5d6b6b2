"""The dense backbone features of one pretrained model's test set and probe pool: one file
its probes and analyses read."""

import argparse

from sdclr.pipeline.cli import add_model_job_arguments, read_settings, run, setup_logging
from sdclr.pipeline.stages.features import features_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_model_job_arguments(parser)
    parser.add_argument("--model", required=True, help="pretrained model.pt")
    parser.add_argument("--out", required=True, help="output feature file (.pt)")
    args = parser.parse_args()
    setup_logging()
    settings = read_settings(args.settings)
    features_stage(args.data, args.split, args.model, settings, args.seed, args.out, args.threads)


run(main)
