"""Dotted-key overrides: ``--set priors.tau.sigma=0.5`` on the command line, a dict in Python.

A value is parsed as TOML (``0.5``, ``true``, ``["a", "b"]``, ``{dist = "Exponential", lam = 2}``);
a bare word that is not TOML is a string (``sampler.backend=pymc``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from bayes_va.core.errors import ConfigError

#: What callers may pass as overrides: a mapping of dotted keys, or ``"key=value"`` strings.
Overrides = Mapping[str, Any] | Sequence[str] | None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` (value in TOML syntax; bare words are strings).

    Raises
    ------
    ConfigError
        When ``text`` has no ``=``.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, value = text.split("=", 1)
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


def parse_overrides(overrides: Overrides) -> dict[str, Any]:
    """Return overrides as a dict of dotted keys: ``"key=value"`` strings parsed, a dict as is."""
    if not overrides:
        return {}
    if isinstance(overrides, str):
        raise ConfigError(f"overrides must be a list of key=value strings, got {overrides!r}")
    if isinstance(overrides, Mapping):
        return dict(overrides)
    return dict(parse_override(o) for o in overrides)


def set_dotted(raw: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Set ``raw[a][b][c] = value`` for ``key = "a.b.c"``, creating tables on the way.

    Raises
    ------
    ConfigError
        When a part of the key is a value, not a table.
    """
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{source}: cannot set '{key}': '{p}' is not a table")
        node = nxt
    node[parts[-1]] = value
