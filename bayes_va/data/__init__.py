"""The evidence: validated tables in ``data/``, their schemas, moderators, model-ready data.

May import :mod:`bayes_va.core` and :mod:`bayes_va.config`; no PyMC, no figures.
"""
