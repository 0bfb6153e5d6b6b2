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

Every number must be finite (NaN and ±inf are refused: :data:`Validator` checks types so) and
every integer is bounded: one without a declared maximum gets :data:`INT_MAX`, what a C
``int`` holds (torch, NumPy and CUDA take it). A boolean is never a number, nor is ``3.0`` an
integer. An error is one line with the key, the value and what is allowed (:func:`error_line`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from functools import cache
from typing import Any, Literal, TypeVar, Union

import jsonschema

from sdclr.errors import ConfigError
from sdclr.names import NAME_PATTERN, NAME_RULE

T = TypeVar("T")
#: The largest value of an integer setting that declares no maximum: a C ``int``'s.
INT_MAX = 2**31 - 1
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
    _cap_integers(schema["items"] if "items" in schema else schema)
    if "doc" in field.metadata:
        schema["description"] = field.metadata["doc"]
    if field.default is not _MISSING:
        default = field.default
        schema["default"] = list(default) if isinstance(default, tuple) else default
    return schema


def _cap_integers(schema: dict[str, Any]) -> None:
    """Give an integer without a declared upper bound the maximum :data:`INT_MAX`."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "integer" in kinds and "maximum" not in schema and "exclusiveMaximum" not in schema:
        schema["maximum"] = INT_MAX


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


def _is_number(checker: Any, instance: Any) -> bool:
    """A finite number: an int, or a float that is not NaN or ±inf (never a boolean)."""
    if isinstance(instance, bool) or not isinstance(instance, int | float):
        return False
    return isinstance(instance, int) or math.isfinite(instance)


def _is_integer(checker: Any, instance: Any) -> bool:
    """An int, not a boolean and not a float such as ``3.0``."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
    {"number": _is_number, "integer": _is_integer}
)
#: The validator of every config schema: JSON Schema 2020-12 with finite numbers and strict
#: integers (so a bound such as ``minimum`` is checked only on a finite number).
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)


def _interval(schema: dict[str, Any]) -> str:
    low = ("[", schema["minimum"]) if "minimum" in schema else None
    low = ("(", schema["exclusiveMinimum"]) if "exclusiveMinimum" in schema else low
    high = (schema["maximum"], "]") if "maximum" in schema else None
    high = (schema["exclusiveMaximum"], ")") if "exclusiveMaximum" in schema else high
    if low and high:
        return f" in {low[0]}{low[1]}, {high[0]}{high[1]}"
    if low:
        return f" {'>=' if low[0] == '[' else '>'} {low[1]}"
    return f" {'<=' if high[1] == ']' else '<'} {high[0]}" if high else ""


_KIND_WORDS = {
    "string": "a string",
    "boolean": "true or false",
    "null": "null",
    "object": "a mapping",
}


def describe(schema: dict[str, Any]) -> str:
    """What ``schema`` allows, in words: ``an integer in [1, 2147483647]``, ``one of ...``."""
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return "one of " + ", ".join(json.dumps(v) for v in values)
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(describe(s) for s in schema.get("anyOf", schema.get("oneOf", [])))
    if schema.get("pattern") == NAME_PATTERN:
        return NAME_RULE
    kinds = schema.get("type", [])
    words = []
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "array":
            items = schema.get("items", {})
            count = (
                schema.get("minItems") if schema.get("minItems") == schema.get("maxItems") else None
            )
            words.append(f"a list of {count or 'any number of'} ({describe(items) or 'anything'})")
        elif kind in ("number", "integer"):
            words.append(
                f"{'an integer' if kind == 'integer' else 'a finite number'}{_interval(schema)}"
            )
        else:
            words.append(_KIND_WORDS.get(kind, kind))
    return " or ".join(words)


def _is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def error_line(where: str, err: Any) -> str:
    """One line for a schema error at ``where``: the key, the value, what is allowed."""
    if err.validator == "additionalProperties":
        known = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(known))
        keys = ", ".join(f"{where}.{key}" if where else key for key in unknown)
        return f"{keys}: unknown key{'s' * (len(unknown) > 1)}; known keys here: {known}"
    where = where or "<top level>"
    if _is_non_finite(err.instance):
        message = f"{err.instance} is not a finite number"
    elif err.validator == "pattern":
        message = f"{err.instance!r} is not a safe name"
    elif err.validator in ("enum", "const"):
        message = f"{err.instance!r} is not a choice"
    else:
        message = " ".join(str(err.message).split())
    if err.validator not in _VALUE_CHECKS or not (allowed := describe(err.schema)):
        return f"{where}: {message}"
    return f"{where}: {message}; allowed: {allowed}"


_VALUE_CHECKS = {
    "type",
    "enum",
    "const",
    "pattern",
    "anyOf",
    "oneOf",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
}


def load(cls: type[T], values: dict[str, Any] | None, section: str) -> T:
    """Validate ``values`` (a config section) against ``cls``'s schema and build ``cls``.

    Errors raise :class:`ConfigError` naming ``section.key``; lists become tuples.
    """
    values = dict(values or {})
    validator = Validator(json_schema(cls))
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [error_line(".".join([section, *map(str, e.absolute_path)]), e) for e in errors]
        raise ConfigError("; ".join(lines[:5]))
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        pair = values.get(field.name)
        if field.metadata.get("ordered") and pair is not None and pair[0] > pair[1]:
            raise ConfigError(f"{section}.{field.name}: low {pair[0]} exceeds high {pair[1]}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
