"""Write one job's settings file from the config (dvc.yaml's settings stages; the Snakefile's
settings rules call the same sdclr.config functions in-process)."""

import argparse

from sdclr.cli import run, setup_logging
from sdclr.config import job_settings, load_config, report_settings
from sdclr.io import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", nargs="+", required=True, help="config file(s), in order")
    parser.add_argument("--dataset", help="dataset key (with --job)")
    parser.add_argument("--job", help="dataset, split, pretrain/<method> or probe/<probe>")
    parser.add_argument("--report", action="store_true", help="the report's settings instead")
    parser.add_argument("--out", required=True, help="output settings .json")
    args = parser.parse_args()
    setup_logging()
    config = load_config(*args.config)
    if args.report:
        write_json(args.out, report_settings(config))
    elif args.dataset and args.job:
        write_json(args.out, job_settings(config, args.dataset, args.job))
    else:
        parser.error("give --dataset and --job, or --report")


run(main)
