"""Linear or few-shot probe of one pretrained model; writes per-class and group accuracies."""

import argparse

from sdclr.pipeline.cli import (
    add_model_job_arguments,
    read_settings,
    run,
    setup_logging,
    show_progress,
)
from sdclr.pipeline.stages.probe import probe_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_model_job_arguments(parser)
    parser.add_argument("--model", required=True, help="pretrained model.pt")
    parser.add_argument("--features", help="the model's feature file (stage features)")
    parser.add_argument("--out", required=True, help="output evaluation .json")
    args = parser.parse_args()
    setup_logging()
    settings = read_settings(args.settings)
    probe_stage(
        args.data,
        args.split,
        args.model,
        settings,
        args.seed,
        args.out,
        args.threads,
        show_progress(args),
        args.features,
    )


run(main)
