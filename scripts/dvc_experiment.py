"""Set up a paper experiment (or any experiment config) as its own DVC pipeline, without
touching config/config.yaml: experiments/<name>/ gets links to dvc.yaml, scripts/, sdclr/ and
workflow/ and config/config.yaml -> the experiment file, so `dvc repro experiments/<name>/
dvc.yaml` runs the same stages on that config, with its results in experiments/<name>/results/.

    python scripts/dvc_experiment.py config/paper/cifar10_lt.yaml   # -> experiments/cifar10_lt
"""

import argparse
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("dvc.yaml", "scripts", "sdclr", "workflow")


def link(path: Path, target: Path) -> None:
    """``path`` -> ``target`` as a relative link (the repository can move or be cloned)."""
    relative = os.path.relpath(target, path.parent)
    if path.is_symlink() and os.readlink(path) == relative:
        return
    if path.exists() or path.is_symlink():
        raise SystemExit(f"{path} exists and is not a link to {relative}; remove it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(relative)


def setup(config: Path, name: str, root: Path = ROOT) -> Path:
    """Create (or check) ``root/experiments/<name>`` for ``config``; returns its directory."""
    config = config if config.is_absolute() else (Path.cwd() / config)
    if not config.is_file():
        raise SystemExit(f"no experiment config {config}")
    if "experiments" in (yaml.safe_load(config.read_text()) or {}):
        raise SystemExit(f"{config} is a list of experiments: set up each of its files instead")
    directory = root / "experiments" / name
    for shared in SHARED:
        link(directory / shared, root / shared)
    link(directory / "config" / "config.yaml", config.resolve())
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("config", type=Path, help="an experiment config (not an experiments: list)")
    parser.add_argument(
        "--name", help="directory name under experiments/ (default: the file's stem)"
    )
    args = parser.parse_args()
    directory = setup(args.config, args.name or args.config.stem)
    print(f"dvc repro {directory.relative_to(ROOT)}/dvc.yaml", file=sys.stderr)


if __name__ == "__main__":
    main()
