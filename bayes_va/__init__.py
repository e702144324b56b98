"""bayes_va: Bayesian evidence synthesis for outcomes of vertebral augmentation.

Start here:

>>> import bayes_va
>>> result = bayes_va.fit("models/base.toml")      # doctest: +SKIP
>>> result.estimates["pooled"]                       # doctest: +SKIP

The layers, from the bottom: ``data`` / ``schemas`` (validated evidence tables), ``config``
(TOML model configs), ``exact`` and ``glmm`` (numpy/scipy references), ``model`` (PyMC),
``sampling`` (backends), ``fitting`` (config -> result) and ``results`` (files on disk).
"""

from __future__ import annotations

import sys

if sys.version_info < (3, 12):  # noqa: UP036  (a clear message beats pip's silent pymc 5)
    raise ImportError(
        "bayes_va needs Python >= 3.12 (pymc >= 6, arviz >= 1); this is Python "
        f"{sys.version.split()[0]}. Use the project's .venv (make test) or pyenv 3.12."
    )

__version__ = "0.1.0"

__all__ = ["__version__", "fit", "load_config", "load_result"]


def __getattr__(name: str):  # lazy: keep `import bayes_va` fast and PyMC-free
    if name == "fit":
        from bayes_va.fitting.run import fit

        return fit
    if name == "load_config":
        from bayes_va.config.model import load_config

        return load_config
    if name == "load_result":
        from bayes_va.fitting.results import load_result

        return load_result
    raise AttributeError(f"module 'bayes_va' has no attribute {name!r}")
