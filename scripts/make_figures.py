"""Figures: group accuracies, class-frequency profiles, per-class accuracy vs frequency."""

import argparse
import json

from sdclr import paths
from sdclr.cli import run, setup_logging
from sdclr.config import labels, load_config
from sdclr.stages import figures_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--config", nargs="+", help="config file(s): every input and output from it"
    )
    parser.add_argument("--evals", nargs="+", help="evaluation .json files")
    parser.add_argument("--splits", nargs="+", help="split .json files")
    parser.add_argument("--group-accuracy", default=paths.FIGURES["group_accuracy"])
    parser.add_argument("--class-profile", default=paths.FIGURES["class_profile"])
    parser.add_argument("--accuracy-vs-frequency", default=paths.FIGURES["accuracy_vs_frequency"])
    parser.add_argument("--group-rules", help="JSON {dataset: group rule}")
    parser.add_argument("--labels", help='JSON {"datasets": {...}, "methods": {...}} display names')
    args = parser.parse_args()
    setup_logging()
    if args.config:
        config = load_config(*args.config)
        evals = paths.all_eval_files(config)
        splits, rules, names = paths.split_files(config), paths.group_rules(config), labels(config)
    elif args.evals and args.splits:
        evals, splits = args.evals, args.splits
        rules = json.loads(args.group_rules) if args.group_rules else None
        names = json.loads(args.labels) if args.labels else None
    else:
        parser.error("give --config, or --evals and --splits")
    figures_stage(
        evals,
        splits,
        args.group_accuracy,
        args.class_profile,
        args.accuracy_vs_frequency,
        rules,
        names,
    )


run(main)
