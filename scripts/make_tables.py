"""Aggregate evaluation records into one probe's mean ± std table (md, csv, tex, json)."""

import argparse
import json

from sdclr import paths
from sdclr.cli import run, setup_logging
from sdclr.config import labels, load_config
from sdclr.stages import tables_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probe", required=True, choices=paths.PROBES)
    parser.add_argument(
        "--config", nargs="+", help="config file(s): every input and output from it"
    )
    parser.add_argument("--evals", nargs="+", help="evaluation .json files")
    parser.add_argument("--md", help="output Markdown table")
    parser.add_argument("--csv", help="output CSV table")
    parser.add_argument("--tex", help="output LaTeX table")
    parser.add_argument("--json", help="output metrics JSON")
    parser.add_argument("--order", help="JSON list of [dataset, method] pairs: the row order")
    parser.add_argument("--labels", help='JSON {"datasets": {...}, "methods": {...}} display names')
    args = parser.parse_args()
    setup_logging()
    if args.config:
        config = load_config(*args.config)
        evals, order, names = (
            paths.eval_files(config, args.probe),
            paths.row_order(config),
            labels(config),
        )
        outputs = {
            fmt: paths.TABLE.format(probe=args.probe, ext=fmt) for fmt in paths.TABLE_FORMATS
        }
    elif args.evals:
        evals = args.evals
        order = [tuple(pair) for pair in json.loads(args.order)] if args.order else None
        names = json.loads(args.labels) if args.labels else None
        outputs = {fmt: path for fmt in paths.TABLE_FORMATS if (path := getattr(args, fmt))}
    else:
        parser.error("give --config, or --evals and the outputs")
    tables_stage(evals, args.probe, outputs, order, names)


run(main)
