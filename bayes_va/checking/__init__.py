"""Model checks of fitted results: LOO, model comparison, predictive checks, prior sensitivity, SBC.

Computes numbers only (the figures are in :mod:`bayes_va.viz`). May import
:mod:`bayes_va.fitting` and the layers below it, but not PyMC, PyTensor or nutpie directly
(a refit goes through :mod:`bayes_va.fitting`).
"""
