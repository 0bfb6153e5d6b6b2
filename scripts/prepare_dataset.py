"""Read a raw dataset (or download it) and save it as uint8 tensors with a JSON summary."""

import argparse
import json

from sdclr.cli import setup_logging
from sdclr.stages import prepare_dataset_stage

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--source", required=True, help='source as JSON, e.g. {"name": "cifar10"}')
parser.add_argument("--data-root", required=True, help="where raw datasets are / are downloaded")
parser.add_argument("--no-download", action="store_true", help="fail instead of downloading")
parser.add_argument("--out", required=True, help="output .pt file")
parser.add_argument("--summary", required=True, help="output summary .json")
args = parser.parse_args()
setup_logging()
prepare_dataset_stage(
    json.loads(args.source), args.data_root, not args.no_download, args.out, args.summary
)
