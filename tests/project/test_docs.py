"""The README and the documentation site stay true: the site builds with warnings as errors,
its configuration reference covers the whole schema, its code examples run, the code paths it
names exist, and the README is one screen whose links resolve."""

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
EXAMPLE_PAGE = DOCS / "extending.md"
EXAMPLE_START = "# sdclr/methods/my_method.py"
README_COMMANDS = [
    "```bash",
    "make demo   # set up (.venv, packages, Debian's Fashion-MNIST) and run the whole pipeline"
    " on the embedded Fashion-MNIST-LT default",
    "make test   # set up and run the test suite (unit tests + a tiny end-to-end Snakemake run)",
    "```",
]
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
#: Inline code naming a path of the repository's code, configs or tests (not `sdclr/...`).
CODE_PATH = re.compile(r"^(?:sdclr|scripts|workflow|config|tests|docs)/(?!.*\.\.)[\w./-]*$")


def pages() -> list[Path]:
    """Every Markdown page the site and the repository's front door show."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block of a page."""
    return [(m["lang"].strip(), m["body"]) for m in FENCE.finditer(path.read_text())]


def hook():
    spec = importlib.util.spec_from_file_location(
        "config_reference", DOCS / "hooks" / "config_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(code: str, filename: str) -> None:
    """Execute a documented Python example; it may register methods, extensions or probes,
    which are unregistered afterwards so that other tests see the registries as they were."""
    from sdclr.methods import EXTENSIONS, METHODS
    from sdclr.probes import PROBES

    registries = (METHODS, EXTENSIONS, PROBES)
    before = [set(r) for r in registries]
    try:
        exec(compile(code, filename, "exec"), {})
    finally:
        for registry, names in zip(registries, before, strict=True):
            for name in set(registry) - names:
                registry.pop(name)


# --------------------------------------------------------------------------------------
# The site
# --------------------------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs / mkdocs-material are not installed (make setup installs the dev extra)",
)
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    """`mkdocs build --strict` succeeds (broken links or anchors, a missing include or a page
    outside the nav would fail it) and the configuration reference was rendered into it."""
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")]
        + ["-d", str(site)],
        cwd=tmp_path,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reference = (site / "config-reference" / "index.html").read_text()
    assert 'id="datasets-name-pretrain"' in reference and "config-schema-reference" not in reference
    configuration = (site / "configuration" / "index.html").read_text()
    assert "Making an experiment" in configuration  # config/README.md, included
    assert "Provenance: what made each output" in (site / "results" / "index.html").read_text()


def test_nothing_generated_is_committed():
    """The site folder is git-ignored, and the reference page holds only the marker the hook
    replaces at build time."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert f"{config['site_dir']}/" in (ROOT / ".gitignore").read_text().splitlines()
    assert config["hooks"] == ["docs/hooks/config_reference.py"]
    page = (DOCS / "config-reference.md").read_text()
    assert page.count(hook().MARKER) == 1 and "| key |" not in page


def test_the_config_reference_renders_every_key_with_its_default():
    """Every key of every object of the schema is a row of the reference, with its default
    (or `required`), under a heading of its section."""
    module = hook()
    schema = yaml.safe_load(SCHEMA.read_text())
    text = module.render(schema)
    headings = re.findall(r"^## (.*) \{#", text, re.M)
    assert len(headings) == len(set(headings))
    seen = 0
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        path = part.split(" {#")[0].strip("`")
        node = schema if path == "Top level" else _node(schema, path)
        rows = {m[1]: m[0] for m in re.finditer(r"^\| \[?`(\w+)`.*$", part, re.M)}
        for key, sub in node["properties"].items():
            sub = module._resolve(sub, schema)
            assert key in rows, (path, key)
            cells = [c.strip() for c in rows[key].split(" | ")]
            if key in node.get("required", []):
                assert cells[2] == "required", (path, key)
            elif "default" in sub:
                assert cells[2] == module._value(sub["default"]), (path, key, cells[2])
            seen += 1
    assert seen > 200


def _node(schema: dict, path: str) -> dict:
    """The schema object of a reference section's path (`datasets.<name>.pretrain`, ...)."""
    module = hook()
    node = schema
    for part in path.split("."):
        if part == "<name>":
            node = module._resolve(node["additionalProperties"], schema)
            continue
        many = part.endswith("[]")
        node = module._resolve(node["properties"][part.removesuffix("[]")], schema)
        if many:
            node = module._resolve(node["items"], schema)
    return node


# --------------------------------------------------------------------------------------
# The examples
# --------------------------------------------------------------------------------------


def test_the_docs_method_and_extension_example_trains(tmp_path):
    """The example module of docs/extending.md defines a method and an extension that use
    every hook; a run of them trains and logs the extension's per-epoch setting."""
    from sdclr.methods import EXTENSIONS, METHODS
    from sdclr.training.loop import LOG_NAME
    from tests.helpers import pretrain, tiny_settings, toy_images

    page = EXAMPLE_PAGE.read_text()
    code = page[page.index(EXAMPLE_START) :]
    code = code[: code.index("```")]
    try:
        exec(compile(code, str(EXAMPLE_PAGE), "exec"), {})
        settings = tiny_settings("my_method", epochs=2)
        settings["method"].update(
            name="mine",
            hyperparameters={},
            extensions={"hardness_memory": {"momentum": 0.95}},
        )
        summary = pretrain(settings, toy_images(48), tmp_path, seed=0, progress=False)
    finally:
        METHODS.pop("my_method", None)
        EXTENSIONS.pop("hardness_memory", None)
    assert summary["final_loss"] > 0
    header = (tmp_path / LOG_NAME).read_text().splitlines()[0]
    assert header == "epoch,loss,lr,temperature"


def test_every_code_block_names_its_language():
    """A reader (and these tests) can tell a shell example from Python meant to run."""
    for path in pages():
        for lang, body in code_blocks(path):
            assert lang in {"bash", "python", "yaml", "text"}, (path.name, lang, body[:80])


def test_every_python_block_runs():
    """Every Python block of the pages is executed (the extending page's module also trains,
    above)."""
    blocks = [(p, body) for p in pages() for lang, body in code_blocks(p) if lang == "python"]
    assert any(body.startswith(EXAMPLE_START) for _, body in blocks)
    for path, body in blocks:
        run_example(body, str(path))


def test_every_yaml_block_parses_and_its_keys_pass_the_schema():
    """Each YAML block is valid YAML, and each of its top-level keys is valid config under
    the schema (a complete config, against the whole schema)."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    checked = 0
    for path in pages():
        for lang, body in code_blocks(path):
            if lang != "yaml":
                continue
            block = yaml.safe_load(body)
            assert isinstance(block, dict), (path.name, body[:80])
            if "algorithm: my_method" in body:
                continue  # the example's extension registers itself; the schema cannot know it
            for key, value in block.items():
                sub = {"$defs": schema["$defs"], **schema["properties"][key]}
                jsonschema.Draft202012Validator(sub).validate(value)
            if set(schema["required"]) <= set(block):
                jsonschema.Draft202012Validator(schema).validate(block)
            checked += 1
    assert checked >= 3


def test_the_code_paths_the_pages_name_exist():
    """Inline code naming a file or folder of the code (`sdclr/...`, `scripts/...`, ...) or a
    module (`sdclr.pipeline.resolve`, `sdclr.pipeline.config.job_settings`) names one that exists: a
    file moved without its docs fails here, with the page and the path."""
    missing = []
    for path in [*pages(), ROOT / "config" / "README.md", ROOT / "results" / "README.md"]:
        text = FENCE.sub("", path.read_text())
        for token in re.findall(r"`([^`\n]+)`", text):
            if CODE_PATH.match(token) and not (ROOT / token).exists():
                missing.append((path.name, token))
            elif re.fullmatch(r"sdclr(\.\w+)+", token) and not _module_names(token):
                missing.append((path.name, token))
    assert not missing, missing


def _module_names(dotted: str) -> bool:
    """Whether `sdclr.a.b` is a module, or `sdclr.a` a module that defines `b`."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:n])
        for file in (base.with_suffix(".py"), base / "__init__.py"):
            if file.exists():
                rest = parts[n:]
                return not rest or (
                    len(rest) == 1
                    and re.search(rf"^(def|class) {rest[0]}\b|^{rest[0]}\b", file.read_text(), re.M)
                    is not None
                )
    return False


# --------------------------------------------------------------------------------------
# The README and the install
# --------------------------------------------------------------------------------------


def test_the_readme_is_one_screen_that_starts_with_the_two_commands():
    """Its first lines are `make demo` and `make test`, and it fits in 150 lines."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[:4] == README_COMMANDS
    assert len(lines) <= 150, len(lines)


def test_every_relative_link_of_the_readme_resolves():
    """Each link or image of README.md that is not a URL names a file of the repository."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    relative = [t for t in targets if not re.match(r"[a-z]+:|#", t)]
    assert len(relative) >= 10
    broken = [t for t in relative if not (ROOT / t.split("#")[0]).is_file()]
    assert not broken, broken


def test_setup_installs_the_docs_tools_at_pinned_versions():
    """mkdocs and mkdocs-material are in the dev extra `make setup` installs, pinned in
    constraints.txt, and in environment.yml's pip section; `make docs` builds strictly."""
    dev = re.search(r"^dev = (\[.*\])$", (ROOT / "pyproject.toml").read_text(), re.M)[1]
    dev = ast.literal_eval(dev)
    pins = (ROOT / "constraints.txt").read_text().splitlines()
    pip_section = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"][-1]
    for name in ("mkdocs", "mkdocs-material"):
        assert name in dev
        assert any(line.startswith(f"{name}==") for line in pins), name
        assert name in pip_section["pip"], name
    assert set(dev) <= set(pip_section["pip"]), "environment.yml's pip section lacks dev tools"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^docs: setup\n\t.*mkdocs build --strict", makefile, re.M)
