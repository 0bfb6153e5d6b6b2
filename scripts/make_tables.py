"""Aggregate evaluation records into one probe's mean ± std table (md, csv, tex, json)."""

import argparse
import json

from sdclr.cli import setup_logging
from sdclr.stages import tables_stage

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--probe", required=True, choices=["linear", "fewshot"])
parser.add_argument("--evals", nargs="+", required=True, help="evaluation .json files")
parser.add_argument("--md", help="output Markdown table")
parser.add_argument("--csv", help="output CSV table")
parser.add_argument("--tex", help="output LaTeX table")
parser.add_argument("--json", help="output metrics JSON")
parser.add_argument("--order", help="JSON list of [dataset, method] pairs: the row order")
parser.add_argument("--labels", help='JSON {"datasets": {...}, "methods": {...}} display names')
args = parser.parse_args()
setup_logging()
outputs = {fmt: path for fmt in ("md", "csv", "tex", "json") if (path := getattr(args, fmt))}
tables_stage(
    args.evals,
    args.probe,
    outputs,
    [tuple(pair) for pair in json.loads(args.order)] if args.order else None,
    json.loads(args.labels) if args.labels else None,
)
