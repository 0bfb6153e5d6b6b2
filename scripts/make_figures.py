"""Figures: group accuracies, class-frequency profiles, per-class accuracy vs frequency."""

import argparse
import json

from sdclr.cli import setup_logging
from sdclr.stages import figures_stage

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--evals", nargs="+", required=True, help="evaluation .json files")
parser.add_argument("--splits", nargs="+", required=True, help="split .json files")
parser.add_argument("--group-accuracy", required=True, help="output PNG")
parser.add_argument("--class-profile", required=True, help="output PNG")
parser.add_argument("--accuracy-vs-frequency", required=True, help="output PNG")
parser.add_argument("--group-rules", help="JSON {dataset: group rule}")
parser.add_argument("--labels", help='JSON {"datasets": {...}, "methods": {...}} display names')
args = parser.parse_args()
setup_logging()
figures_stage(
    args.evals,
    args.splits,
    args.group_accuracy,
    args.class_profile,
    args.accuracy_vs_frequency,
    json.loads(args.group_rules) if args.group_rules else None,
    json.loads(args.labels) if args.labels else None,
)
