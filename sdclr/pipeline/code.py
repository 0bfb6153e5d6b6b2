"""What code a job runs: the source files its stage imports, each with its content hash.

A job's code is its script (``scripts/<script>.py``) and every module of the ``sdclr`` package
that the script imports, directly or through other modules, found by *reading* the imports
(``ast``), never by importing: the Snakefile computes it without loading torch. Every import
counts, those inside functions too. The registries (``sdclr.methods``, ``sdclr.probes``)
import their members dynamically, which reading does not follow, so a job's code holds the
registered parts it runs -- named by its settings: its method and extensions, its probe --
and not the others: a change to ``sdclr/methods/bcl.py`` changes the code of BCL's
pretrainings only.

The code map (``{"scripts/pretrain.py": "<sha256>", "sdclr/training/loop.py": ..., ...}``) goes
into the
job's settings file, so that a change to any file in it changes that file, and Snakemake and
DVC rerun exactly the jobs whose code changed (``sdclr.pipeline.resolve``).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "sdclr"


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class SourceTree:
    """The ``sdclr`` package's modules and their imports, read from a checkout at ``root``."""

    root: Path = ROOT
    modules: dict[str, Path] = field(default_factory=dict)  # dotted name -> file
    _imports: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        package = self.root / PACKAGE
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(self.root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            self.modules[".".join(parts)] = path

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _package_chain(self, module: str) -> list[str]:
        """``module`` and every package above it (importing it runs their ``__init__``)."""
        parts = module.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]

    def _resolve(self, name: str) -> list[str]:
        """The package modules that importing ``name`` runs (none outside the package)."""
        if name.split(".")[0] != PACKAGE:
            return []
        while name and name not in self.modules:  # ``from a.b import name`` of an attribute
            name = name.rpartition(".")[0]
        return [m for m in self._package_chain(name) if m in self.modules]

    def direct_imports(self, path: Path, module: str | None = None) -> frozenset[str]:
        """The package modules that the file ``path`` imports (``module``: its dotted name,
        for relative imports)."""
        key = str(path)
        if key in self._imports:
            return self._imports[key]
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.update(self._resolve(alias.name))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level and module:
                    anchor = module.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                found.update(self._resolve(base))
                for alias in node.names:  # ``from sdclr.methods import bcl``: a submodule
                    if f"{base}.{alias.name}" in self.modules:
                        found.update(self._resolve(f"{base}.{alias.name}"))
        self._imports[key] = frozenset(found)
        return self._imports[key]

    def closure(self, entries: Iterable[Path | str]) -> list[Path]:
        """Every file that running ``entries`` (scripts as paths, modules as dotted names)
        executes from this checkout: the entries and the package modules they import."""
        files: set[Path] = set()
        todo: list[tuple[Path, str | None]] = []
        for entry in entries:
            if isinstance(entry, Path):
                todo.append((entry, None))
            else:
                todo.extend((self.modules[m], m) for m in self._resolve(entry))
        while todo:
            path, module = todo.pop()
            if path in files:
                continue
            files.add(path)
            todo.extend((self.modules[m], m) for m in self.direct_imports(path, module))
        return sorted(files)

    def code_map(self, entries: Iterable[Path | str]) -> dict[str, str]:
        """``{file relative to the checkout: sha256}`` of :meth:`closure`, sorted by name."""
        return {self.relative(p): _digest(p) for p in self.closure(entries)}


@cache
def _digest(path: Path) -> str:
    return file_digest(path)


def source_fingerprint(root: Path = ROOT) -> str:
    """One hash of every source file that can change what a job computes or how its settings
    are resolved (the package, the scripts, the config schema): the key under which the
    Snakefile caches a resolved config (``sdclr.pipeline.plan``)."""
    digest = hashlib.sha256()
    files = [
        *sorted((root / PACKAGE).rglob("*.py")),
        *sorted((root / "scripts").glob("*.py")),
    ]
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()
