"""The package's structure, drawn from its imports (sdclr/pipeline/code.py reads them): layers
that only import downwards, no import circle, imports at the top of modules, no module over
400 lines and no function over 60; and an extension point is one module plus its config line:
a toy probe and a toy analysis dropped into their folders reach the tables through the real
Snakemake."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sdclr.pipeline.code import SourceTree
from tests.checkout import ROOT, copy_project, run

#: The floors, bottom up: a module may import its own floor and those below it.
LAYERS = (
    "core",  # errors, settings, io, torch files, signals, device, groups, plots, provenance
    "data",
    "models",
    "methods",
    "training",
    "benchmark",  # the pretraining benchmark: times training, imports nothing above it
    "probes",
    "analyses",
    "reporting",
    "pipeline",  # the workflow's glue: config, schema, paths, stages, DAG, DVC
)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    """Each package module -> the package modules it imports (its own packages aside)."""
    tree = SourceTree()
    graph = {}
    for module, path in tree.modules.items():
        found = tree.direct_imports(path, module)
        graph[module] = {m for m in found if m != module and not module.startswith(m + ".")}
    return graph


def test_every_import_runs_down_the_layers(imports):
    """No module imports a floor above its own (training never reads the workflow's paths,
    a method never a probe)."""
    upward = [
        f"{module} -> {target}"
        for module, targets in imports.items()
        for target in targets
        if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))
    ]
    assert upward == []


def test_no_import_circle(imports):
    """No two modules import each other, directly or through others."""
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in imports.items()}
    state: dict[str, int] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph.get(module, ()):
            if state.get(target) == 1:
                circles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert circles == []


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_modules_and_functions_stay_small_and_import_at_the_top():
    """One job per room: no module over 400 lines, no function over 60, and every import at
    the top of its module, where a reader sees what it depends on."""
    big, long, hidden = [], [], []
    for path in sorted((ROOT / "sdclr").rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        if len(text.splitlines()) > 400:
            big.append(name)
        tree = ast.parse(text)
        for function in _functions(tree):
            if function.end_lineno - function.lineno + 1 > 60:
                long.append(f"{name}:{function.name}")
            inner = [n for n in ast.walk(function) if isinstance(n, ast.Import | ast.ImportFrom)]
            hidden += [f"{name}:{function.name}" for _ in inner]
    assert (big, long, hidden) == ([], [], [])


# -- extension points: one module and its config line ------------------------------------

TOY_PROBE = '''
    """A toy probe: every test image predicted as the pool's most frequent class."""

    import torch

    from sdclr.probes.base import Probe, register


    @register
    class MajorityProbe(Probe):
        name = "majority"
        title = "Majority class"
        train_subset = "train"
        train_set = "D_b pool"

        def evaluate(self, inputs, settings):
            _, labels = inputs.subset("train")
            guess = torch.bincount(labels, minlength=inputs.num_classes).argmax()
            predictions = torch.full_like(inputs.test_labels, int(guess))
            return {"per_class_accuracy": inputs.test_accuracy(predictions)}
'''

TOY_ANALYSIS = '''
    """A toy analysis: each class's share of the test set."""

    import matplotlib.pyplot as plt

    from sdclr.analyses.base import Analysis, register
    from sdclr.groups import group_summary
    from sdclr.io import save_figure


    @register
    class TestShare(Analysis):
        name = "test_share"
        title = "Share of the test set"
        columns = ("Many", "Medium", "Few", "All")
        note = "Each class's share of the test images (%)."

        def compute(self, context):
            counts = context.inputs.test_labels.bincount(minlength=context.inputs.num_classes)
            shares = (100 * counts / counts.sum()).tolist()
            return {"summary": group_summary(shares, context.groups), "per_class": shares}

        def plot(self, records, path, labels):
            fig, ax = plt.subplots()
            ax.plot(records[0]["test_share"]["per_class"])
            save_figure(path, fig)
            plt.close(fig)
'''


@pytest.mark.slow
def test_a_probe_and_an_analysis_are_one_module_and_one_config_line_each(tmp_path):
    """A probe module in sdclr/probes/ and an analysis module in sdclr/analyses/, named in
    the config's `probes:` and `analyses:`, run for every model through the real Snakemake
    and appear as tables of their own: no other file changes."""
    checkout = copy_project(tmp_path / "project", ROOT / "tests" / "configs" / "tiny.yaml")
    (checkout / "sdclr" / "probes" / "majority.py").write_text(textwrap.dedent(TOY_PROBE))
    (checkout / "sdclr" / "analyses" / "test_share.py").write_text(textwrap.dedent(TOY_ANALYSIS))
    config_path = checkout / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["probes"] = ["linear", "majority"]
    config["analyses"] = ["geometry", "test_share"]
    config["splits"] = [1]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    run(checkout, str(Path(sys.executable).with_name("snakemake")), "--cores", "2")
    tables = checkout / "results" / "tables"
    majority = (tables / "majority.md").read_text()
    assert "Majority class" in majority and "| SimCLR |" in majority and "| SDCLR |" in majority
    share = (tables / "test_share.md").read_text()
    assert share.startswith("## Share of the test set") and "| SDCLR |" in share
    assert (checkout / "results" / "figures" / "test_share.png").stat().st_size > 0
