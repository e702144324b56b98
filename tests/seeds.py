"""One switch for every seed the tests use: ``BAYES_VA_SEED_OFFSET=N``.

The same seed gives different draws on another CPU (numba and the samplers compile for the
host), so no test may owe its verdict to one random stream. Running the suite with another
offset replays every statistical test on fresh streams::

    BAYES_VA_SEED_OFFSET=3 .venv/bin/python -m pytest -m "not slow"

The offset is added, test-side only (nothing in ``bayes_va`` reads the variable):

* to ``sampler.seed`` of every config file that :func:`bayes_va.config.model.load_config` reads
  during the tests, after its ``extends`` chain is merged and before overrides (a file without
  a seed gets ``SamplerConfig``'s default plus the offset). So ``bayes_va.fit("models/base.toml")``,
  the sensitivity scenarios, the CLI and the paper build all sample with shifted seeds.
  Installed by :func:`install_config_seed_offset` (``tests/conftest.py``, at configure time);
* to every seed a test writes itself, through :func:`seed`: ``np.random.default_rng(seed(0))``,
  ``overrides={"sampler.seed": seed(7)}``, ``run_sbc(..., seed=seed(1))``,
  ``risk.recompression_model(seed=seed(RISK_SEED))``;
* to Hypothesis: the run's seed is ``--hypothesis-seed`` = the offset (``conftest.py``), with
  the example database off, so a property test draws the same examples for the same offset.

Seeds that a test reads back from a result (``result.config.sampler.seed``) are already
shifted. Configs built in memory (``from_dict``, ``Config(...)``, ``load_result``) are not:
they are what the caller wrote or what a run saved.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "BAYES_VA_SEED_OFFSET"


def _read_offset() -> int:
    text = os.environ.get(ENV, "0").strip() or "0"
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{ENV} must be a non-negative integer, got {text!r}") from None
    if value < 0:  # task seeds and SeedSequence entropy must be non-negative
        raise ValueError(f"{ENV} must be a non-negative integer, got {value}")
    return value


#: The offset of this test run (0 unless ``BAYES_VA_SEED_OFFSET`` says otherwise).
SEED_OFFSET = _read_offset()


def seed(n: int) -> int:
    """The seed a test uses where it means seed ``n``: ``n + BAYES_VA_SEED_OFFSET``."""
    return int(n) + SEED_OFFSET


def _default_sampler_seed() -> int:
    from bayes_va.config.model import SamplerConfig

    return int(SamplerConfig.model_fields["seed"].default)


def _shift_seed_of(raw: dict[str, Any]) -> None:
    """Add the offset to ``raw["sampler"]["seed"]`` (the default seed if the file has none).

    Malformed tables are left alone: the config's own validation reports them.
    """
    sampler = raw.setdefault("sampler", {})
    if not isinstance(sampler, dict):
        return
    value = sampler.get("seed", _default_sampler_seed())
    if isinstance(value, int) and not isinstance(value, bool):
        sampler["seed"] = seed(value)


def install_config_seed_offset() -> Callable[[], None]:
    """Shift ``sampler.seed`` of every config file read through ``load_config``.

    ``load_config`` reads a file with ``_read_raw(path)``, which follows ``extends`` by calling
    itself with the chain of files so far; only the outermost call (empty chain: the merged
    file as ``load_config`` will see it, before overrides) is shifted, so a seed inherited
    through ``extends`` is shifted once. Every ``load_config`` (imported by name anywhere)
    looks ``_read_raw`` up in its own module at call time, so this one patch reaches them all.

    Returns a function that undoes the patch.
    """
    from bayes_va.config import model as config

    original = getattr(config, "_read_raw", None)
    if original is None or getattr(original, "_seed_offset_hook", False):
        if original is None:
            raise RuntimeError(
                "tests/seeds.py: bayes_va.config.model._read_raw is gone; move the seed-offset "
                "hook to whatever load_config now uses to read a file"
            )
        return lambda: None

    @functools.wraps(original)
    def read_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
        raw = original(path, chain)
        if not chain:
            _shift_seed_of(raw)
        return raw

    read_raw._seed_offset_hook = True  # type: ignore[attr-defined]
    config._read_raw = read_raw

    def undo() -> None:
        config._read_raw = original

    return undo
