"""The headline metrics (results/metrics.json) and the plot data of dvc.yaml's top-level plots
(pretraining loss of every run, group accuracies), from the probe tables and the train logs."""

import argparse

from sdclr.pipeline import paths
from sdclr.pipeline.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.reporting.summary import write_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    for name in paths.SUMMARY:
        parser.add_argument(f"--{name}", required=True, help=f"output: {paths.SUMMARY[name]}")
    args = parser.parse_args()
    setup_logging()
    write_summary(
        read_settings(args.settings), {name: getattr(args, name) for name in paths.SUMMARY}
    )


run(main)
