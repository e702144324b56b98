"""Figures: of fits, of the model checks and of the risk layer (matplotlib object API).

The only layer below the workflows that draws; it may import every layer from
:mod:`bayes_va.risk` down, but not PyMC, PyTensor or nutpie.
"""
