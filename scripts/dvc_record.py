"""Record the pipeline's outputs in DVC (dvc commit) and push them when a remote is set."""

import argparse

from sdclr.pipeline.cli import run, setup_logging
from sdclr.pipeline.versioning import record_outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=".", help="the DVC repository (default: here)")
    parser.add_argument("--no-push", action="store_true", help="commit only, even with a remote")
    args = parser.parse_args()
    setup_logging()
    print(record_outputs(args.repo, push=not args.no_push))


run(main)
