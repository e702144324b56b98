"""Figures: of fits, of the model checks and of the risk layer (matplotlib object API).

The only layer below the workflows that draws; it may import every layer from
:mod:`bayes_va.risk` down, but not PyMC, PyTensor or nutpie.
"""

#: Figure formats written by default (PNG is what report.md links). Here, not in
#: :mod:`bayes_va.viz.figure`, so that the CLI can offer them without importing matplotlib.
FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")
