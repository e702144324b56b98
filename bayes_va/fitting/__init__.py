"""Config to result: run a fit, diagnose it, summarise it, store and cache it with provenance.

May import the engine and the layers below it (core, config, data, numerics); draws no
figures.
"""
