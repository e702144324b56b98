"""JSON Schemas of the config files, for editors, and the key reference of ``docs/config.md``.

``bayes-va config schema model -o models/config.schema.json`` writes the schema of the model
configs; a TOML file that starts with ``#:schema ./config.schema.json`` is then completed and
checked by Taplo (Even Better TOML in VS Code). ``bayes-va config schema model --markdown``
prints the reference of every key (``docs/config.md``).

A model config may ``extends`` another and set only a few keys, so in the model schema no key
is required and a prior's ``dist`` may be left to the parent (its tagged union is checked
with ``anyOf``); loading the file still checks the merged config in full.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, RootModel
from pydantic.fields import FieldInfo

from bayes_va.config.base import tagged_members
from bayes_va.config.model import Config
from bayes_va.config.paper import PaperConfig
from bayes_va.config.priors import FAMILIES
from bayes_va.config.risk import RiskFile

Kind = Literal["model", "risk", "paper"]
#: The model of each kind of config file.
MODELS: dict[str, type[BaseModel]] = {"model": Config, "risk": RiskFile, "paper": PaperConfig}
#: Where each kind of file lives.
FILES = {"model": "models/**/*.toml", "risk": "models/risk/*.toml", "paper": "paper/analyses.toml"}

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_EXTENDS = {
    "type": "string",
    "description": "Parent config, a path relative to this file: this file changes only the "
    "keys it sets (tables are merged key by key; a prior whose dist changes, data.keep and "
    "model.reference are replaced whole).",
}


def json_schema(kind: Kind) -> dict[str, Any]:
    """Return the JSON Schema of one kind of config file.

    Parameters
    ----------
    kind : {"model", "risk", "paper"}
        Model configs (``models/**/*.toml``), the risk config or ``paper/analyses.toml``.

    Returns
    -------
    dict
        The pydantic ``model_json_schema()`` (validation mode); for model configs with an
        ``extends`` key and no required keys (see the module docstring).
    """
    schema = MODELS[kind].model_json_schema()
    if kind == "model":
        schema = _partial(schema)
        schema["properties"] = {"extends": _EXTENDS, **schema["properties"]}
    schema["title"] = f"bayes-va {kind} config ({FILES[kind]})"
    return {"$schema": _DRAFT, **schema}


def _partial(node: Any) -> Any:
    """Drop ``required`` everywhere and check tagged unions with ``anyOf``."""
    if isinstance(node, list):
        return [_partial(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "required" or k == "discriminator":
            continue
        out["anyOf" if k == "oneOf" else k] = _partial(v)
    return out


# --------------------------------------------------------------------------- markdown


def markdown_reference(kind: Kind) -> str:
    """Return a Markdown table of every key of one kind of config file, with its description."""
    rows: list[tuple[str, str, str, str]] = []
    _rows(MODELS[kind], "", rows)
    lines = [
        f"### {kind} config (`{FILES[kind]}`)",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    if kind == "model":
        lines.append(f"| `extends` | string | | {_EXTENDS['description']} |")
    for k, t, d, m in rows:
        if (kind, k) == ("model", "name"):
            d = "the file's stem"
        lines.append(f"| `{k}` | {t} | {d} | {m} |")
    if kind == "model":
        lines += ["", *_prior_families()]
    return "\n".join(lines) + "\n"


def _prior_families() -> list[str]:
    """Rows of the prior-family table (:data:`bayes_va.config.priors.FAMILIES`)."""
    lines = [
        "Prior families (`dist`; parameters as in PyMC):",
        "",
        "| `dist` | parameters | support |",
        "|---|---|---|",
    ]
    for name, family in FAMILIES.items():
        fields = family.model.model_fields
        params = "; ".join(f"`{p}`: {fields[p].description}" for p in family.params)
        lo, hi = family.support
        lines.append(f"| `{name}` | {params} | ({lo:g}, {hi:g}) |")
    return lines


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(get_args(tp)[0])
    if origin is Literal:
        return " \\| ".join(f'`"{a}"`' for a in get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(get_args(tp)[0])}s"
    if origin is dict:
        return f"table of {_type_name(get_args(tp)[1])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None or (isinstance(value, BaseModel) and not isinstance(value, RootModel)):
        return ""
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(repr(v) for v in value) + "]`"
    return f"`{value}`"


def _table_array(tp: Any) -> bool:
    """Tell whether ``tp`` is ``tuple[Model, ...]`` (a TOML array of tables)."""
    args = get_args(tp) if get_origin(tp) is tuple else ()
    return bool(args) and isinstance(args[0], type) and issubclass(args[0], BaseModel)


def _rows(cls: type[BaseModel], prefix: str, rows: list[tuple[str, str, str, str]]) -> None:
    for name, field in cls.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        tp = field.annotation
        desc = (field.description or "").replace("|", "\\|")
        tags = tagged_members(tp)
        if tags:
            families = ", ".join(
                f"{tag}({', '.join(n for n in m.model_fields if n != 'dist')})"
                for tag, m in tags.items()
            )
            rows.append((f"[{key}]", f"`dist` = {families}", _default(field), desc))
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            doc = (tp.__doc__ or "").split("\n")[0]
            rows.append((f"[{key}]", "table", "", desc or doc))
            _rows(tp, f"{key}.", rows)
        elif _table_array(tp):
            # TOML's [[key]]: a list of tables, each with the keys listed under it
            rows.append((f"[[{key}]]", "array of tables", _default(field), desc))
            _rows(get_args(tp)[0], f"{key}.", rows)
        else:
            rows.append((key, _type_name(tp), _default(field), desc))
