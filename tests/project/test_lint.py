"""The code base stays ruff-clean, snakefmt-clean and `snakemake --lint` clean."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ruff_is_clean():
    """ruff check and ruff format --check report nothing."""
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([str(BIN / "ruff"), *args], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint_is_clean():
    """snakemake --lint finds nothing to complain about in the workflow."""
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--lint"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, (
        proc.stdout + proc.stderr
    )


@pytest.mark.skipif(
    importlib.util.find_spec("snakefmt") is None,
    reason="snakefmt is not installed (pip install -e '.[dev]' installs it)",
)
def test_snakefmt_is_clean():
    """The Snakefile and the rules are formatted as snakefmt formats them (make lint)."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_catalog_layout_is_there_and_its_test_config_plans():
    """The Snakemake catalog's standardized layout: an MIT LICENSE, the usage file, a
    config/README.md that names every key of the schema's top level, datasets and methods,
    and `snakemake --directory .test` (the catalog's CI convention) plans the tiny config."""
    import yaml

    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert usage["report"] is True and usage["software-stack-deployment"]["conda"] is True
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    guide = (ROOT / "config" / "README.md").read_text()
    keys = [*schema["properties"], *schema["$defs"]["dataset"]["properties"]]
    keys += [*schema["$defs"]["method"]["properties"], *schema["$defs"]["resources"]["properties"]]
    # A registered probe's, analysis' or extension's settings and a rule's resources are
    # described by family there (`<probe>_probe`, ...) and one by one in the generated
    # configuration reference (tests/project/test_docs.py): adding one needs no hand edit here.
    from sdclr.analyses import ANALYSES
    from sdclr.methods import EXTENSIONS
    from sdclr.pipeline.dag import STAGES
    from sdclr.probes import PROBES

    registered = {f"{name}_probe" for name in PROBES} | {f"{name}_analysis" for name in ANALYSES}
    registered |= set(EXTENSIONS) | {stage.name for stage in STAGES}
    missing = [key for key in keys if f"`{key}`" not in guide and key not in registered]
    assert not missing, f"config/README.md does not describe {missing}"
    for family in ("`<probe>_probe`", "`<analysis>_analysis`", "`resources.<rule>`"):
        assert family in guide, family
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--directory", ".test", "-n", "--quiet", "rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"pretrain\s+4\b", proc.stdout + proc.stderr), proc.stdout + proc.stderr
