"""MkDocs hook (mkdocs.yml `hooks:`): the configuration reference, rendered at build time from
the config schema, `workflow/schemas/config.schema.yaml`, so the page cannot go stale.

A page holding the marker `<!-- config-schema-reference -->` gets the marker replaced by one
section per object of the schema (the top level, `datasets.<name>`, `datasets.<name>.pretrain`,
`resources.<rule>`, ...), each a table of its keys: type, default, bounds and description.
The build fails when no page holds the marker. Nothing generated is written to the repository.

The hook also points `pymdownx.snippets` at the repository root, so that pages can include
repository files (`--8<-- "config/README.md"`) whatever directory mkdocs runs in.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import yaml

MARKER = "<!-- config-schema-reference -->"
SCHEMA = "workflow/schemas/config.schema.yaml"
TYPE_NAMES = {
    "integer": "integer",
    "number": "number",
    "string": "string",
    "boolean": "boolean",
    "null": "null",
    "array": "list",
    "object": "mapping",
}

PLURALS = {
    "integer": "integers",
    "number": "numbers",
    "string": "strings",
    "boolean": "booleans",
    "section": "sections",
}

_state = {"rendered": 0}


def _root(config: Any) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def on_config(config: Any) -> Any:
    """Pages include repository files relative to the repository root."""
    _state["rendered"] = 0
    snippets = config["mdx_configs"].setdefault("pymdownx.snippets", {})
    snippets["base_path"] = [str(_root(config))]
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    schema = yaml.safe_load((_root(config) / SCHEMA).read_text())
    _state["rendered"] += 1
    return markdown.replace(MARKER, render(schema))


def on_post_build(config: Any) -> None:
    if not _state["rendered"]:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"no page holds {MARKER}: the configuration reference is missing")


# --------------------------------------------------------------------------------------
# Rendering (plain functions of the schema: tests/project/test_docs.py calls them)
# --------------------------------------------------------------------------------------


def anchor(path: str) -> str:
    """The id of a section's heading: `datasets.<name>.pretrain` -> `datasets-name-pretrain`."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _resolve(node: Any, schema: dict) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        node = {**schema["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _value(value: Any) -> str:
    """A value as YAML writes it in a config, in a code span."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("...").strip()
    return f"`{text}`"


def _text(text: str) -> str:
    """Schema prose for a table cell: code spans kept, `<`, `>`, `&`, `*` and `|` escaped."""
    text = " ".join(text.split()).replace("``", "`")
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = html.escape(parts[i], quote=False).replace("*", r"\*")
    return "`".join(parts).replace("|", r"\|")


def _children(node: dict, path: str, schema: dict) -> list[tuple[str, str, dict]]:
    """(key, its section's path, its resolved node) of every key that is a section itself."""
    out = []
    for key, sub in node.get("properties", {}).items():
        sub = _resolve(sub, schema)
        section = _section(sub, f"{path}.{key}" if path else key, schema)
        if section:
            out.append((key, *section))
    return out


def _section(node: dict, path: str, schema: dict) -> tuple[str, dict] | None:
    """The (path, node) of the section a key opens, if it opens one."""
    if node.get("properties"):
        return path, node
    extra = _resolve(node.get("additionalProperties"), schema)
    if isinstance(extra, dict) and extra.get("properties"):
        return f"{path}.<name>", extra
    items = _resolve(node.get("items"), schema)
    if isinstance(items, dict) and items.get("properties"):
        return f"{path}[]", items
    return None


def type_of(node: Any, schema: dict) -> str:
    """A node's type in words: `integer`, `list of 2 number`, `one of a, b`, ..."""
    node = _resolve(node, schema)
    if not isinstance(node, dict):
        return "any"
    if "enum" in node:
        return "one of " + ", ".join(_value(v) for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(type_of(option, schema) for option in node["oneOf"])
    kinds = node.get("type")
    if kinds is None:
        return "any"
    words = []
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "array" and "items" in node:
            n = node.get("minItems")
            count = f"{n} " if n is not None and n == node.get("maxItems") else ""
            inner = type_of(node["items"], schema)
            plural = PLURALS.get(inner)
            each = plural or f"items, each {inner}"
            words.append(f"list of {count}{each}")
        elif kind == "object" and node.get("properties"):
            words.append("section")
        elif kind == "object" and isinstance(node.get("additionalProperties"), dict):
            words.append("mapping of names to sections")
        else:
            words.append(TYPE_NAMES.get(kind, kind))
    return " or ".join(words)


def _count(word: str, n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{word} {n} {noun if n == 1 else plural}"


def bounds_of(node: Any, schema: dict, prefix: str = "") -> list[str]:
    """A node's bounds in words (`≥ 0`, `> 0`, `at least 1 item`, ...), its items' too."""
    node = _resolve(node, schema)
    if not isinstance(node, dict):
        return []
    marks = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}
    out = [f"{prefix}{mark} {_value(node[key])}" for key, mark in marks.items() if key in node]
    if "minItems" in node and node.get("minItems") != node.get("maxItems"):
        out.append(_count("at least", node["minItems"], "item"))
        if "maxItems" in node:
            out.append(_count("at most", node["maxItems"], "item"))
    if node.get("uniqueItems"):
        out.append("no repeats")
    if "minProperties" in node:
        out.append(_count("at least", node["minProperties"], "entry"))
    if "pattern" in node:
        out.append(f"{prefix}matches `{node['pattern']}`")
    names = node.get("propertyNames", {})
    if "pattern" in names:
        out.append(f"names match `{names['pattern']}`")
    if "items" in node:
        out += bounds_of(node["items"], schema, prefix="each ")
    return out


def _table(node: dict, path: str, schema: dict) -> list[str]:
    required = set(node.get("required", []))
    sections = {key: sub_path for key, sub_path, _ in _children(node, path, schema)}
    rows = ["| key | type | default | bounds | description |", "|---|---|---|---|---|"]
    for key, sub in node.get("properties", {}).items():
        resolved = _resolve(sub, schema)
        name = f"`{key}`"
        if key in sections:
            name = f"[`{key}`](#{anchor(sections[key])})"
        if key in required:
            default = "required"
        elif "default" in resolved:
            default = _value(resolved["default"])
        else:
            default = "—"
        bounds = "; ".join(bounds_of(resolved, schema)) or "—"
        description = _text(resolved.get("description", ""))
        if key in sections:
            description = (description + " " if description else "") + "See below."
        kind = type_of(resolved, schema)
        rows.append(f"| {name} | {kind} | {default} | {bounds} | {description} |")
    return rows


def render(schema: dict) -> str:
    """The reference: one section per object of the schema, depth first, in schema order."""
    lines: list[str] = []
    todo: list[tuple[str, dict]] = [("", schema)]
    while todo:
        path, node = todo.pop(0)
        title = f"`{path}`" if path else "Top level"
        lines += [f"## {title} {{#{anchor(path) or 'top-level'}}}", ""]
        if node.get("description"):
            lines += [_text(node["description"]), ""]
        lines += [*_table(node, path, schema), ""]
        children = _children(node, path, schema)
        todo[:0] = [(sub_path, sub) for _, sub_path, sub in children]
    return "\n".join(lines)
