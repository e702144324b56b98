"""What the paper build fits, and whether ``paper/build`` is already current.

Kept apart from :mod:`bayes_va.workflows.paper` and free of the sampler, ArviZ and matplotlib,
so that ``bayes-va paper`` with nothing changed answers in about two seconds: it lists the fits
(their cache keys cover config, data and fitting code), hashes every other input of the build
(the package's source, ``paper/``, ``models/``, ``data/``, the numerical stack's versions)
and compares the result with the key the last complete build recorded in
``paper/build/build.json``.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from bayes_va.config.model import Config, load_config
from bayes_va.config.paper import PaperConfig, load_paper_config
from bayes_va.core import atomic
from bayes_va.fitting.cache import fit_key
from bayes_va.fitting.provenance import package_versions
from bayes_va.workflows.sensitivity import plan

#: Written last by a complete build: the inputs' key and the build's exit code.
BUILD_RECORD = "build.json"
#: What a current build must still have on disk.
BUILD_OUTPUTS = ("results.json", "timings.json")
#: Folders of the project whose every file is an input of the build.
INPUT_DIRS = ("paper", "models", "data")


def load_analyses(path: Path) -> PaperConfig:
    """Read and check ``paper/analyses.toml`` (:class:`~bayes_va.config.paper.PaperConfig`)."""
    return load_paper_config(path)


def expand(root: Path, patterns: Sequence[str]) -> list[Path]:
    """Return the files that ``patterns`` (globs relative to ``root``) match, in order.

    Raises
    ------
    FileNotFoundError
        When a pattern matches nothing (a typo in ``analyses.toml`` must not drop analyses).
    """
    out: list[Path] = []
    for pat in patterns:
        hits = sorted(Path(p) for p in glob.glob(str(root / pat)))
        if not hits:
            raise FileNotFoundError(f"paper/analyses.toml: {pat!r} matches no file")
        out.extend(hits)
    return out


def planned_configs(root: Path, spec: PaperConfig) -> list[Config]:
    """List every config the paper build fits, in its order, each fit once.

    The parallel pass of :func:`~bayes_va.workflows.paper.build_paper` fits this list; its
    serial pass warns if it meets a fit that is not on it.
    """
    base_cfg = load_config(root / spec.base)
    scen = plan(expand(root, spec.sensitivity), root / spec.base, spec.leave_one_out)
    cfgs = [base_cfg] + [s.config for s in scen if s.kind != "base"]
    cfgs += [load_config(p) for p in expand(root, spec.subgroups)]
    cfgs += [load_config(p) for p in expand(root, spec.avf)]
    for o in spec.outcomes:
        cfgs.append(load_config(root / o.config))
        cfgs += [load_config(p) for p in expand(root, o.sensitivity)]
    cfgs += [load_config(p) for p in expand(root, spec.compare.models)]
    out: list[Config] = []
    seen: set[str] = set()
    for c in cfgs:
        if (k := f"{c.name}-{fit_key(c)}") not in seen:
            seen.add(k)
            out.append(c)
    return out


def inputs_hash(root: Path, folders: Sequence[str] = INPUT_DIRS) -> str:
    """Hash the ``bayes_va`` package's source, every file under ``folders`` and the versions.

    The package counts whole (figures and sections as well as fitting); ``paper/build/`` and
    ``__pycache__`` folders do not.
    """
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    files = [(f"bayes_va/{p.relative_to(package).as_posix()}", p) for p in package.rglob("*")]
    for d in folders:
        files += [(p.relative_to(root).as_posix(), p) for p in (root / d).rglob("*")]
    for name, path in sorted(files):
        if not path.is_file() or "__pycache__" in path.parts or name.startswith("paper/build/"):
            continue
        h.update(f"file {name}\n".encode())
        h.update(path.read_bytes())
    h.update(repr(sorted(package_versions().items())).encode())
    return h.hexdigest()


def build_key(root: Path) -> str:
    """Hash every input of the paper build (SHA-256, hex).

    The fits' cache keys and :func:`inputs_hash` over ``paper/`` (except ``build/``),
    ``models/`` and ``data/``.
    """
    spec = load_analyses(root / "paper" / "analyses.toml")
    h = hashlib.sha256()
    for cfg in planned_configs(root, spec):
        h.update(f"fit {cfg.name} {fit_key(cfg)}\n".encode())
    h.update(inputs_hash(root).encode())
    return h.hexdigest()


def current_build(root: Path, key: str, pdf: bool = True) -> int | None:
    """Return the recorded exit code when ``paper/build`` was built from inputs with ``key``.

    None when it was not, never completed, or lacks the PDF that ``pdf`` asks for: the build
    must run.
    """
    build = root / "paper" / "build"
    record = build / BUILD_RECORD
    if not record.is_file() or not all((build / f).is_file() for f in BUILD_OUTPUTS):
        return None
    stored = json.loads(record.read_text())
    if stored.get("key") != key:
        return None
    if pdf and not (stored.get("pdf") and (build / "paper.pdf").is_file()):
        return None
    return int(stored["exit_code"])


def record_build(root: Path, key: str, exit_code: int, pdf: bool) -> None:
    """Record a complete build (written last, atomically)."""
    atomic.write_json(
        root / "paper" / "build" / BUILD_RECORD, {"key": key, "exit_code": exit_code, "pdf": pdf}
    )


def up_to_date_message(seconds: float) -> str:
    """Return what ``bayes-va paper`` says when no input changed since the last build."""
    return (
        "bayes-va paper: paper/build is up to date (no input changed since the last build, "
        f"checked in {seconds:.1f} s; --clean rebuilds everything)"
    )
