"""Write every job's settings file of a config (dvc.yaml's settings stage; the Snakefile's
settings rules write the same files, one per job, from the same plan)."""

import argparse

from sdclr.pipeline.cli import run, setup_logging
from sdclr.pipeline.config_files import load_raw_config
from sdclr.pipeline.resolve import resolve, write_settings_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", nargs="+", required=True, help="config file(s), in order")
    parser.add_argument("--out", required=True, help="the settings folder (results/settings)")
    args = parser.parse_args()
    setup_logging()
    write_settings_files(resolve(load_raw_config(*args.config)), args.out)


run(main)
