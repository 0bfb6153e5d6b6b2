"""Read a raw dataset (or download it) and save it as uint8 tensors with a JSON summary."""

import argparse
import json

from sdclr import paths
from sdclr.cli import run, setup_logging
from sdclr.config import load_config
from sdclr.stages import prepare_dataset_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", help='source as JSON, e.g. {"name": "cifar10"}')
    parser.add_argument("--config", nargs="+", help="or: config file(s) and --dataset")
    parser.add_argument("--dataset", help="dataset key in the config (with --config)")
    parser.add_argument("--data-root", help="where raw datasets are / are downloaded")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    parser.add_argument("--out", help="output .pt file")
    parser.add_argument("--summary", help="output summary .json")
    args = parser.parse_args()
    setup_logging()
    if args.config:
        entry = load_config(*args.config)["datasets"][args.dataset]
        source, data_root, download = entry["source"], entry["data_root"], entry["download"]
        out = args.out or paths.DATASET.format(dataset=args.dataset)
        summary = args.summary or paths.DATASET_SUMMARY.format(dataset=args.dataset)
    elif args.source and args.data_root and args.out and args.summary:
        source, data_root, download = json.loads(args.source), args.data_root, not args.no_download
        out, summary = args.out, args.summary
    else:
        parser.error("give --config and --dataset, or --source, --data-root, --out and --summary")
    prepare_dataset_stage(source, data_root, download, out, summary)


run(main)
