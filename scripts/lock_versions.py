"""Write `pip freeze` output (stdin) as constraints.txt, keeping its header, and give the
conda packages of environment.yml the same versions (`make lock`)."""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
ENVIRONMENT = ROOT / "environment.yml"
CONDA_PIN = re.compile(r"^(  - )([A-Za-z0-9_.-]+)=[^=\s]+$")


def main() -> None:
    argparse.ArgumentParser(
        description=__doc__
        + " Usage: pip freeze --exclude-editable | python scripts/lock_versions.py"
    ).parse_args()
    freeze = [line for line in sys.stdin.read().splitlines() if "==" in line]
    if not freeze:  # an empty pipe would leave constraints.txt without a single pin
        sys.exit(
            "lock_versions: no 'name==version' lines on stdin; constraints.txt is unchanged "
            "(pipe `pip freeze --exclude-editable` into it, as `make lock` does)"
        )
    versions = {name.lower().replace("_", "-"): v for name, v in (x.split("==") for x in freeze)}
    header = [line for line in CONSTRAINTS.read_text().splitlines() if line.startswith("#")]
    CONSTRAINTS.write_text("\n".join(header[:5] + sorted(freeze, key=str.lower)) + "\n")
    lines = []
    for line in ENVIRONMENT.read_text().splitlines():
        match = CONDA_PIN.match(line)
        name = match and match.group(2).lower()
        if match and name != "python" and name in versions:
            line = f"{match.group(1)}{match.group(2)}={versions[name]}"
        lines.append(line)
    ENVIRONMENT.write_text("\n".join(lines) + "\n")
    print(f"wrote {CONSTRAINTS.name} ({len(freeze)} pins) and {ENVIRONMENT.name}", file=sys.stderr)


if __name__ == "__main__":
    main()
