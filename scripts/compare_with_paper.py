"""Our mean ± std next to the paper's reported numbers: tables and a figure."""

import argparse

from sdclr.pipeline import paths
from sdclr.pipeline.cli import add_settings_argument, read_settings, run, setup_logging
from sdclr.pipeline.stages.compare_with_paper import comparison_stage
from sdclr.probes import PAPER_PROBES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_argument(parser)
    parser.add_argument("--reported", default=str(paths.REPORTED), help="the paper's numbers")
    outputs = [f"{probe}_{ext}" for probe in PAPER_PROBES for ext in ("md", "csv")] + ["figure"]
    for key in outputs:
        parser.add_argument(f"--{key.replace('_', '-')}", required=True, help="output file")
    args = parser.parse_args()
    setup_logging()
    files = {key: getattr(args, key) for key in outputs}
    comparison_stage(read_settings(args.settings), args.reported, files)


run(main)
