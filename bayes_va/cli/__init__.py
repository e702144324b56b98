"""The ``bayes-va`` command line: argument parsing and console output over the workflows.

The top layer: it may import any other, and nothing in the package imports it.
"""
