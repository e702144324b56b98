"""Numpy/scipy references with no sampling: exact quadrature posteriors, the GLMM, outcomes.

:mod:`bayes_va.numerics.exact` (quadrature posteriors, the references the MCMC fits are
checked against), :mod:`~bayes_va.numerics.glmm` (maximum-likelihood GLMM) and
:mod:`~bayes_va.numerics.outcomes` (small-sample binomial outcomes). May import
:mod:`bayes_va.core`, :mod:`bayes_va.config` and :mod:`bayes_va.data`; no PyMC, no figures.
"""
