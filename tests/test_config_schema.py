"""JSON Schemas of the config files (``bayes-va config schema``), docs/config.md, and the paper
config (``paper/analyses.toml``)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

import bayes_va
from bayes_va.cli.main import main
from bayes_va.config.paper import PaperConfig, load_paper_config
from bayes_va.config.schema import json_schema, markdown_reference
from bayes_va.core.errors import ConfigError

ROOT = Path(bayes_va.__file__).resolve().parent.parent
MODEL_FILES = sorted(p for p in (ROOT / "models").glob("**/*.toml") if "risk" not in p.parts)
FILES = {
    "model": MODEL_FILES,
    "risk": sorted((ROOT / "models" / "risk").glob("*.toml")),
    "paper": [ROOT / "paper" / "analyses.toml"],
}


def schema_errors(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "") -> list:
    """What an editor would flag: the subset of JSON Schema the config schemas use."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    for union in ("anyOf", "oneOf"):
        if union in schema:
            matches = [not schema_errors(value, s, root, at) for s in schema[union]]
            ok = any(matches) if union == "anyOf" else sum(matches) == 1
            return [] if ok else [f"{at}: matches no member of {union}"]
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    kind = schema.get("type")
    if kind is not None and (
        not isinstance(value, kinds[kind])
        or (kind in ("integer", "number") and isinstance(value, bool))
    ):
        return [f"{at}: not {kind}"]
    if "const" in schema and value != schema["const"]:
        return [f"{at}: not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: not in {schema['enum']}"]
    errors = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{at}.{k}: missing" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in props:
                errors += schema_errors(v, props[k], root, f"{at}.{k}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{at}.{k}: unknown key")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(v, schema["additionalProperties"], root, f"{at}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += schema_errors(v, schema["items"], root, f"{at}[{i}]")
    for bound, ok in (
        ("minimum", lambda v, b: v >= b),
        ("maximum", lambda v, b: v <= b),
        ("exclusiveMinimum", lambda v, b: v > b),
        ("exclusiveMaximum", lambda v, b: v < b),
    ):
        if bound in schema and isinstance(value, int | float) and not ok(value, schema[bound]):
            errors.append(f"{at}: {bound} {schema[bound]}")
    return errors


@pytest.mark.parametrize(
    ("kind", "path"),
    [(k, p) for k, paths in FILES.items() for p in paths],
    ids=lambda v: v if isinstance(v, str) else str(v.relative_to(ROOT)),
)
def test_every_shipped_config_file_satisfies_its_schema(kind, path):
    schema = json_schema(kind)
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    assert schema_errors(raw, schema, schema) == []


@pytest.mark.parametrize(
    ("kind", "raw", "where"),
    [
        ("model", {"sampler": {"chainz": 4}}, ".sampler.chainz: unknown key"),
        ("model", {"priors": {"tau": {"dist": "Gamma", "alpha": 1.0}}}, ".priors.tau: matches"),
        ("model", {"priors": {"mu": {"dist": "Normal", "sigma": 0}}}, ".priors.mu: matches"),
        ("model", {"sampler": {"chains": "4"}}, ".sampler.chains: not integer"),
        ("risk", {"draws": {"n": 10}}, ".draws.n: minimum 100"),
        ("risk", {"revision": {"transport": {"dist": "Beta", "value": 1}}}, ".revision.transport"),
        ("paper", {"base": "x", "risk": {"lambda": 1}}, ".risk.lambda: unknown key"),
        ("paper", {"sensitivity": []}, ".base: missing"),
    ],
)
def test_the_schema_flags_what_loading_rejects(kind, raw, where):
    schema = json_schema(kind)
    errors = schema_errors(raw, schema, schema)
    assert any(e.startswith(where) for e in errors), errors


def test_a_child_model_config_may_leave_keys_to_its_parent():
    schema = json_schema("model")
    child = {"extends": "../base.toml", "priors": {"tau": {"sigma": 0.5}}}
    assert schema_errors(child, schema, schema) == []
    assert "extends" in schema["properties"] and schema["$schema"].startswith("https://")


@pytest.mark.parametrize("kind", ["model", "risk", "paper"])
def test_the_cli_prints_or_writes_the_schema(kind, tmp_path, capsys):
    assert main(["config", "schema", kind]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema(kind)
    out = tmp_path / f"{kind}.schema.json"
    assert main(["config", "schema", kind, "-o", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == json_schema(kind)


def test_docs_config_md_holds_the_current_key_reference():
    text = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    for kind in ("model", "risk", "paper"):
        assert markdown_reference(kind) in text, (
            f"regenerate: bayes-va config schema {kind} --markdown"
        )
    assert "#:schema" in text


def test_every_key_of_the_schemas_is_described():
    def walk(node: Any, at: str) -> list[str]:
        if isinstance(node, dict):
            missing = [
                f"{at}.{k}"
                for k, v in node.get("properties", {}).items()
                if "description" not in v and k != "dist"
            ]
            return missing + [m for k, v in node.items() for m in walk(v, f"{at}.{k}")]
        return (
            [m for i, v in enumerate(node) for m in walk(v, at)] if isinstance(node, list) else []
        )

    for kind in ("model", "risk", "paper"):
        assert walk(json_schema(kind), kind) == []


# --------------------------------------------------------------------------- paper config


def test_the_shipped_analyses_load():
    cfg = load_paper_config(ROOT / "paper" / "analyses.toml")
    assert isinstance(cfg, PaperConfig) and cfg.base == "models/base.toml"
    assert cfg.risk.transport == "beta:2,2" and cfg.avf_horizons_months == (3.0, 12.0, 24.0)


def test_a_bad_analyses_file_names_every_key(tmp_path):
    path = tmp_path / "analyses.toml"
    path.write_text('sensitivity = "models/*.toml"\nleave_one_out = 1\n[risk]\nlambda = 1\n')
    with pytest.raises(ConfigError) as exc:
        load_paper_config(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: 4 problems")
    for fragment in (
        "missing 'base'",
        "'sensitivity' must be a list of strings",
        "'leave_one_out' must be true or false",
        "unknown key risk.lambda; allowed here: revision_baseline, transport",
    ):
        assert fragment in message, message
