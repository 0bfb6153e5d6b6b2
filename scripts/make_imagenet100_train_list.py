"""Write the full ImageNet-100 train list (the reference's linear-probe pool) from an
extracted ILSVRC-2012 train folder: every image of the classes the reference lists name,
except the validation list's."""

import argparse

from sdclr.data.sources.image_list import full_train_list
from sdclr.io import write_text
from sdclr.pipeline.cli import run, setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image-root", required=True, help="folder holding train/<wnid>/")
    parser.add_argument("--lists", required=True, nargs="+", help="lists giving wnid labels")
    parser.add_argument("--exclude", help="list whose images stay out (the validation list)")
    parser.add_argument("--out", required=True, help="the list file to write")
    args = parser.parse_args()
    setup_logging()
    write_text(args.out, full_train_list(args.image_root, args.lists, args.exclude))


run(main)
