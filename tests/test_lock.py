"""The pinned install: requirements.lock covers pyproject.toml, and its hash is in provenance."""

import hashlib
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bayes_va.fitting.provenance import LOCK_FILE, lock_hash

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: ;.*)? \\$")


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for every pin in the lock."""
    out: dict[str, tuple[str, int]] = {}
    name = None
    for line in (ROOT / LOCK_FILE).read_text().splitlines():
        if m := PIN.match(line):
            name = canonicalize_name(m[1])
            assert name not in out, f"{name} pinned twice (a platform fork?)"
            out[name] = (m[2], 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            out[name] = (out[name][0], out[name][1] + 1)
        elif not line.startswith(" "):
            name = None
    return out


def test_lock_hash_is_the_files_sha256(tmp_path):
    assert lock_hash() == hashlib.sha256((ROOT / LOCK_FILE).read_bytes()).hexdigest()
    assert lock_hash(tmp_path) is None  # e.g. installed from a wheel: no lock beside it


def test_lock_pins_every_dependency_with_hashes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    reqs = list(project["project"]["dependencies"]) + project["dependency-groups"]["bootstrap"]
    todo, seen = ["dev"], set()
    while todo:  # dev = bayes_va[test,lint] + ...
        seen.add(extra := todo.pop())
        for r in extras[extra]:
            if canonicalize_name(Requirement(r).name) == "bayes-va":
                todo += [e for e in Requirement(r).extras if e not in seen]
            else:
                reqs.append(r)
    pins = locked()
    assert all(n > 0 for _, n in pins.values()), "a pin without --hash lines"
    for r in map(Requirement, reqs):
        name = canonicalize_name(r.name)
        assert name in pins, f"{r} is not in {LOCK_FILE}: run `make lock`"
        assert r.specifier.contains(pins[name][0], prereleases=True), f"{r}: run `make lock`"
