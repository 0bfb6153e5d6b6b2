"""Settings declared once: each is a dataclass field with its type, default, bounds and a
sentence of documentation, and both the config's JSON schema and its validation come from it.

::

    @dataclass(frozen=True)
    class PretrainConfig:
        epochs: int = setting(doc="Pretraining epochs.", minimum=1)
        lr: float = setting(0.5, doc="Peak learning rate.", exclusive_minimum=0)

:func:`json_schema` turns such a class into the JSON schema of its config section (the
Snakefile's schema file, ``workflow/schemas/config.schema.yaml``, is generated from these by
``sdclr.pipeline.schema``); :func:`load` validates a config section against that schema and
builds the object, with errors that name the key. Adding a setting is one line plus its doc.

Types map as: ``int`` -> integer, ``float`` -> number, ``bool`` -> boolean, ``str`` -> string,
``Literal[...]`` -> enum, ``X | None`` -> X or null, ``tuple[X, X]`` -> an array of exactly that
many X, ``tuple[X, ...]`` -> an array of X. Bounds apply to a number, or to an array's items.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, Literal, TypeVar, Union

import jsonschema

from sdclr.errors import ConfigError

T = TypeVar("T")
_MISSING = dataclasses.MISSING
_BOUNDS = {
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusive_minimum": "exclusiveMinimum",
    "exclusive_maximum": "exclusiveMaximum",
}
_SCALARS = {int: "integer", float: "number", bool: "boolean", str: "string"}


def setting(
    default: Any = _MISSING,
    *,
    doc: str,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    exclusive_maximum: float | None = None,
    ordered: bool = False,
) -> Any:
    """A dataclass field declaring one setting: its default (none: required), a sentence of
    documentation, numeric bounds, and for a pair ``ordered=True`` (low <= high)."""
    metadata = {"doc": doc, "ordered": ordered}
    for name, value in locals().items():
        if name in _BOUNDS and value is not None:
            metadata[_BOUNDS[name]] = value
    return dataclasses.field(default=default, metadata=metadata)


def _type_schema(annotation: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = _type_schema(options[0]) if len(options) == 1 else {"anyOf": []}
        if len(options) > 1:
            inner["anyOf"] = [_type_schema(a) for a in options]
        if type(None) in args:
            if "type" in inner:
                inner["type"] = [inner["type"], "null"]
            else:
                inner = {"anyOf": [inner, {"type": "null"}]}
        return inner
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0])}
        return {
            "type": "array",
            "items": _type_schema(args[0]),
            "minItems": len(args),
            "maxItems": len(args),
        }
    if annotation is dict or origin is dict:
        return {"type": "object"}
    raise TypeError(f"no JSON schema for the setting type {annotation!r}")


def _field_schema(field: dataclasses.Field, annotation: Any) -> dict[str, Any]:
    schema = _type_schema(annotation)
    bounds = {k: v for k, v in field.metadata.items() if k in _BOUNDS.values()}
    if schema.get("type") == "array" or (
        isinstance(schema.get("type"), list) and "array" in schema["type"]
    ):
        schema["items"] = {**schema["items"], **bounds}
    else:
        schema.update(bounds)
    if "doc" in field.metadata:
        schema["description"] = field.metadata["doc"]
    if field.default is not _MISSING:
        default = field.default
        schema["default"] = list(default) if isinstance(default, tuple) else default
    return schema


@cache
def json_schema(cls: type) -> dict[str, Any]:
    """The JSON schema of a settings dataclass: an object of its fields, no other keys."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False}
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split("\n\n")[0].split())
    required = [f.name for f in fields if f.default is _MISSING]
    if required:
        schema["required"] = required
    schema["properties"] = {f.name: _field_schema(f, hints[f.name]) for f in fields}
    return schema


def _error_line(section: str, err: Any) -> str:
    where = ".".join([section, *map(str, err.absolute_path)])
    if err.validator == "additionalProperties":
        known = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(known))
        return f"{where}: unknown key(s) {unknown}; known keys here: {known}"
    return f"{where}: {err.message}"


def load(cls: type[T], values: dict[str, Any] | None, section: str) -> T:
    """Validate ``values`` (a config section) against ``cls``'s schema and build ``cls``.

    Errors raise :class:`ConfigError` naming ``section.key``; lists become tuples.
    """
    values = dict(values or {})
    validator = jsonschema.Draft202012Validator(json_schema(cls))
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("; ".join(_error_line(section, e) for e in errors[:5]))
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        pair = values.get(field.name)
        if field.metadata.get("ordered") and pair is not None and pair[0] > pair[1]:
            raise ConfigError(f"{section}.{field.name}: low {pair[0]} exceeds high {pair[1]}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
