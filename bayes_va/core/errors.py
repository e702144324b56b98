"""Exceptions raised by bayes_va; each carries enough context to fix the input."""

from __future__ import annotations

from dataclasses import dataclass


class BayesVAError(Exception):
    """Base class of every error bayes_va raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a data file.

    Attributes
    ----------
    file : str
        The file (as given to the loader).
    line : int or None
        1-based line in the file (the header is line 1); None for whole-file problems.
    column : str or None
        The column concerned, if any.
    message : str
        What is wrong, in words.
    """

    file: str
    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        """Return ``file, line L, column 'C': message`` (parts that are None are left out)."""
        where = self.file
        if self.line is not None:
            where += f", line {self.line}"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}"


class DataValidationError(BayesVAError, ValueError):
    """A data table failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} data problem(s):\n{lines}")


class ConfigError(BayesVAError, ValueError):
    """A model configuration is invalid; the message names the file and the key."""


class ComparisonError(BayesVAError, ValueError):
    """Models cannot be compared (fewer than two, or fitted to different data)."""


class ResultsFolderError(BayesVAError, FileNotFoundError):
    """A path is not a complete results folder (see :mod:`bayes_va.fitting.results`)."""


class DiagnosticsFailed(BayesVAError):
    """Raised by callers that want a failed convergence check to stop them."""
