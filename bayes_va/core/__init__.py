"""Foundations shared by every layer: exceptions, atomic writes, JSON-safe values, tables.

The bottom layer: it imports no other part of ``bayes_va`` (only the standard library, numpy
and pandas), so any module may import it.
"""
