"""bayes_va: Bayesian evidence synthesis for outcomes of vertebral augmentation.

Start here:

>>> import bayes_va
>>> result = bayes_va.fit("models/base.toml")      # doctest: +SKIP
>>> result.estimates.pooled.median                   # doctest: +SKIP

The subpackages are layers; each imports only the ones below it (``make lint`` checks this).
From the bottom: ``core`` (errors, atomic writes, JSON/Markdown forms), ``config`` (TOML model
configs), ``data`` (validated evidence tables), ``numerics`` (exact quadrature references, GLMM,
small-sample outcomes; numpy/scipy only), ``engine`` (the only PyMC/PyTensor/nutpie code),
``fitting`` (config -> result, files on disk), ``checking`` (LOO, PPC, prior sensitivity, SBC
statistics), ``risk`` (patient-level risk), ``viz`` (figures), ``workflows`` (paper,
sensitivity, SBC runs) and ``cli``.
"""

from __future__ import annotations

import sys
from typing import Any

if sys.version_info < (3, 12):  # noqa: UP036  (a clear message beats pip's silent pymc 5)
    raise ImportError(
        "bayes_va needs Python >= 3.12 (pymc >= 6, arviz >= 1); this is Python "
        f"{sys.version.split()[0]}. Use the project's .venv (make test) or pyenv 3.12."
    )

__version__ = "0.1.0"

__all__ = ["__version__", "fit", "load_config", "load_result"]


def __getattr__(name: str) -> Any:  # lazy: keep `import bayes_va` fast and PyMC-free
    """Import ``fit``, ``load_config`` and ``load_result`` on first use."""
    if name == "fit":
        # lazy: `import bayes_va` stays fast and PyMC-free
        from bayes_va.fitting.run import fit

        return fit
    if name == "load_config":
        # lazy: `import bayes_va` stays fast and PyMC-free
        from bayes_va.config.model import load_config

        return load_config
    if name == "load_result":
        # lazy: `import bayes_va` stays fast and PyMC-free
        from bayes_va.fitting.results import load_result

        return load_result
    raise AttributeError(f"module 'bayes_va' has no attribute {name!r}")
