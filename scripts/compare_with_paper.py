"""Our mean ± std tables next to the paper's reported numbers (md, csv per probe) + a figure."""

import argparse
import json

from sdclr import paths
from sdclr.cli import run, setup_logging
from sdclr.config import labels, load_config
from sdclr.paper import REPORTED_PATH
from sdclr.stages import comparison_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--config", nargs="+", help="config file(s): every input and output from it"
    )
    parser.add_argument("--evals", nargs="+", help="evaluation .json files")
    parser.add_argument("--reported", default=str(REPORTED_PATH), help="the paper's numbers")
    parser.add_argument("--paper-names", help='JSON {dataset: {"name": ..., "methods": {...}}}')
    for key, default in paths.COMPARISON.items():
        parser.add_argument(f"--{key.replace('_', '-')}", default=default)
    parser.add_argument("--labels", help='JSON {"datasets": {...}, "methods": {...}} display names')
    args = parser.parse_args()
    setup_logging()
    if args.config:
        config = load_config(*args.config)
        evals = paths.all_eval_files(config)
        names, display = paths.paper_names(config), labels(config)
    elif args.evals and args.paper_names:
        evals, names = args.evals, json.loads(args.paper_names)
        display = json.loads(args.labels) if args.labels else None
    else:
        parser.error("give --config, or --evals and --paper-names")
    outputs = {
        "linear": {"md": args.linear_md, "csv": args.linear_csv},
        "fewshot": {"md": args.fewshot_md, "csv": args.fewshot_csv},
    }
    comparison_stage(evals, args.reported, names, outputs, args.figure, display)


run(main)
