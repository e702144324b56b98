"""Config files as frozen, validated pydantic models (``docs/config.md``).

``model`` the model configs (``models/**/*.toml``: ``extends``, overrides, hash); ``priors`` the
prior families (one table for the schema, PyMC and SciPy) and which priors a config uses;
``risk`` the risk layer's config; ``paper`` ``paper/analyses.toml``; ``overrides`` dotted-key
overrides; ``base`` the shared pydantic base and error reporting; ``schema`` the JSON Schemas
for editors. May import only :mod:`bayes_va.core`; no PyMC, no figures.
"""
