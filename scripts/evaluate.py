"""Linear or few-shot probe of one pretrained model; writes per-class and group accuracies."""

import argparse

from sdclr.cli import add_settings_arguments, resolve_settings, run, setup_logging
from sdclr.config import probe_settings
from sdclr.stages import probe_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_settings_arguments(parser)
    parser.add_argument("--probe", choices=["linear", "fewshot"], help="probe (with --config)")
    parser.add_argument("--data", required=True, help="prepared dataset .pt")
    parser.add_argument("--split", required=True, help="split .json")
    parser.add_argument("--model", required=True, help="pretrained model.pt")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--out", required=True, help="output evaluation .json")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = parser.parse_args()
    setup_logging()
    settings = resolve_settings(
        args, lambda config: probe_settings(config, args.dataset, args.probe)
    )
    probe_stage(
        args.data,
        args.split,
        args.model,
        settings,
        args.seed,
        args.out,
        args.threads,
        not args.quiet,
    )


run(main)
