"""Multi-step analyses: the paper, sensitivity scenarios, SBC runs, reports, the task executor.

May import every layer below it (core to viz); only :mod:`bayes_va.cli` imports it.
"""
