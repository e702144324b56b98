"""The pydantic base every config model shares, and how validation errors are reported.

Every config model is frozen and forbids unknown keys. Scalars are strict (TOML's ``"4"`` is not
the integer 4, ``true`` is not a number) except that an integer is accepted, and stored, as a
float where a float is declared. :func:`validate` reports *every* problem of a file at once,
each under its dotted key, as one :class:`~bayes_va.core.errors.ConfigError`.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, RootModel, Strict, ValidationError
from pydantic_core import ErrorDetails

from bayes_va.core.errors import ConfigError

#: Strict scalars of the TOML files (no ``"4"`` for 4, no ``true`` for 1).
Str = Annotated[str, Strict()]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
#: A number: a TOML integer or float, stored as a float; ``inf``/``nan`` allowed.
Float = Annotated[float, Strict()]
#: A finite number.
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
#: A finite number > 0 (scales, rates, shapes).
Positive = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
#: A list of strings in TOML, a tuple in Python.
Names = tuple[Str, ...]


class FrozenModel(BaseModel):
    """Base of every config table: immutable, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validate[M: BaseModel](cls: type[M], raw: Any, source: str) -> M:
    """Validate ``raw`` as ``cls``, reporting every problem at once.

    Parameters
    ----------
    cls : type
        The pydantic model.
    raw : mapping
        Plain TOML-shaped data.
    source : str
        What the data came from (a file name), put at the start of the message.

    Returns
    -------
    BaseModel
        The validated instance.

    Raises
    ------
    ConfigError
        Listing each problem with its dotted key.
    """
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, cls, source) from None


def config_error(exc: ValidationError, cls: type[BaseModel], source: str) -> ConfigError:
    """Turn a pydantic :class:`ValidationError` into a :class:`ConfigError` naming each key."""
    problems = list(dict.fromkeys(describe(e, cls) for e in exc.errors()))
    if len(problems) == 1:
        return ConfigError(f"{source}: {problems[0]}")
    lines = "\n".join(f"  - {p}" for p in problems)
    return ConfigError(f"{source}: {len(problems)} problems:\n{lines}")


# --------------------------------------------------------------------------- messages

_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_PLURALS = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}


def _resolve(tp: Any) -> Any:
    """Return the type inside ``Annotated[...]``, ``X | None`` and a :class:`RootModel`."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif _is_union(tp) and type(None) in get_args(tp) and len(get_args(tp)) == 2:
            tp = next(a for a in get_args(tp) if a is not type(None))
        elif _is_model(tp) and issubclass(tp, RootModel):
            tp = tp.model_fields["root"].annotation
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType)


def tagged_members(tp: Any) -> dict[str, type[BaseModel]]:
    """Return the members of a union tagged by ``dist`` (a model with a ``dist`` tag is one)."""
    tp = _resolve(tp)
    members = [_resolve(a) for a in get_args(tp)] if _is_union(tp) else [tp]
    out = {}
    for m in members:
        field = m.model_fields.get("dist") if _is_model(m) else None
        if field is not None and get_origin(field.annotation) is Literal:
            out[get_args(field.annotation)[0]] = m
    return out


class _Where(typing.NamedTuple):
    tp: Any  # the type at the location (None if unknown)
    keys: list[str]  # the location as config keys
    family: str | None  # the tag of the tagged union the location lies in
    choices: tuple[Any, ...]  # the members of a plain union the location lies in


def _walk(cls: type[BaseModel], loc: Sequence[int | str]) -> _Where:
    """Follow a pydantic error location through ``cls``.

    Union tags, list positions and union members are not config keys:
    ``("priors", "tau", "HalfNormal", "sigma")`` is ``priors.tau.sigma`` in ``HalfNormal``.
    """
    tp: Any = cls
    keys: list[str] = []
    family: str | None = None
    choices: tuple[Any, ...] = ()
    for part in loc:
        tp = _resolve(tp)
        tags = tagged_members(tp)
        if isinstance(part, str) and part in tags:
            tp, family = tags[part], part
        elif _is_union(tp):  # a plain union names the member it tried: not a key
            choices, tp = tuple(_resolve(a) for a in get_args(tp)), None
        elif _is_model(tp):
            field = tp.model_fields.get(str(part))
            keys.append(field.alias if field is not None and field.alias else str(part))
            tp = None if field is None else field.annotation
        elif get_origin(tp) is dict:
            keys.append(str(part))
            tp = get_args(tp)[1]
        elif get_origin(tp) is tuple and isinstance(part, int):
            tp = get_args(tp)[0]
        else:
            keys.append(str(part))
            tp = None
    return _Where(_resolve(tp), keys, family, choices)


def _word(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    return _WORDS.get(tp, "a value")


def describe(error: ErrorDetails, cls: type[BaseModel]) -> str:
    """Return one problem in words, e.g. ``'sampler.chains' must be an integer, got '4'``."""
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx", {})
    where = _walk(cls, loc)
    key = ".".join(where.keys)
    got = f", got {error.get('input')!r}"
    if where.choices and kind.endswith(("_type", "_parsing")):
        return f"'{key}' must be {' or '.join(_word(c) for c in where.choices)}{got}"
    if loc and isinstance(loc[-1], int) and kind.endswith(("_type", "_parsing")):
        items = _PLURALS.get(_resolve(_walk(cls, loc).tp), "values")
        return f"'{key}' must be a list of {items}: item {loc[-1]} is {error.get('input')!r}"
    match kind:
        case "extra_forbidden":
            parent = _walk(cls, loc[:-1]).tp
            allowed = [f.alias or name for name, f in parent.model_fields.items() if name != "dist"]
            if where.family is not None:
                return f"unknown key {key}; {where.family} takes exactly: {', '.join(allowed)}"
            return f"unknown key {key}; allowed here: {', '.join(allowed)}"
        case "missing":
            if where.family is not None:
                return f"'{'.'.join(where.keys[:-1])}' ({where.family}) needs {where.keys[-1]}"
            return f"missing '{key}'"
        case "int_type" | "int_from_float" | "int_parsing":
            return f"'{key}' must be an integer{got}"
        case "float_type" | "float_parsing":
            return f"'{key}' must be a number{got}"
        case "bool_type" | "bool_parsing":
            return f"'{key}' must be true or false{got}"
        case "string_type":
            return f"'{key}' must be a string{got}"
        case "literal_error":
            choices = str(ctx.get("expected", "")).replace(" or ", ", ").replace("'", "")
            return f"'{key}' is {error.get('input')!r}; allowed: {choices}"
        case "union_tag_invalid":
            tags = str(ctx.get("expected_tags", "")).replace("'", "")
            return f"'{key}.dist' is {ctx.get('tag')!r}; allowed: {tags}"
        case "tuple_type" | "list_type":
            args = get_args(where.tp)
            items = _PLURALS.get(_resolve(args[0]), "values") if args else "values"
            return f"'{key}' must be a list of {items}{got}"
        case "union_tag_not_found" | "model_attributes_type" | "model_type" | "dict_type":
            if tagged_members(where.tp):
                return f"'{key}' must be a table with a 'dist' key{got}"
            return f"'{key}' must be a table{got}"
        case "greater_than":
            return f"'{key}' must be > {ctx['gt']:g}{got}"
        case "greater_than_equal":
            return f"'{key}' must be >= {ctx['ge']:g}{got}"
        case "less_than":
            return f"'{key}' must be < {ctx['lt']:g}{got}"
        case "less_than_equal":
            return f"'{key}' must be <= {ctx['le']:g}{got}"
        case "finite_number":
            return f"'{key}' must be finite{got}"
        case "value_error" | "assertion_error":
            message = str(ctx.get("error", error["msg"]))
            return f"'{key}': {message}" if key else message
    return f"'{key}': {error['msg']}{got}" if key else f"{error['msg']}{got}"


# --------------------------------------------------------------------------- files


def read_toml(path: Path, what: str = "config") -> dict[str, Any]:
    """Read one TOML file.

    Raises
    ------
    ConfigError
        When the file is missing or not valid TOML (naming the file).
    """
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def find_root(start: Path) -> Path:
    """Return the project root: the nearest ancestor with a ``pyproject.toml`` (or ``start``)."""
    for p in (start, *start.parents):
        if (p / "pyproject.toml").exists():
            return p
    return start


def to_plain(obj: Any) -> Any:
    """Return ``obj`` as TOML-compatible data: tuples as lists, mappings as dicts."""
    if isinstance(obj, BaseModel):
        return to_plain(obj.model_dump())
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj
