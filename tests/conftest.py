"""Shared fixtures: the shipped data folder, a mutable copy of it, and a CSV cell editor; and
the seed offset of the run (``BAYES_VA_SEED_OFFSET``, see ``tests/seeds.py``)."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from seeds import ENV, SEED_OFFSET, install_config_seed_offset

import bayes_va

PROJECT_ROOT = Path(bayes_va.__file__).resolve().parent.parent
SHIPPED_DATA = PROJECT_ROOT / "data"


# --------------------------------------------------------------------------- seed offset


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own pytest_configure reads its seed option
def pytest_configure(config: pytest.Config) -> None:
    """Shift every config file's sampler seed, and seed Hypothesis with the offset.

    Runs in every process that runs tests (xdist workers included). Hypothesis draws its
    examples from ``Random(offset)`` and keeps no example database, so a property test sees
    the same examples for the same offset (``--hypothesis-seed`` given by hand wins).
    """
    install_config_seed_offset()
    if hasattr(config.option, "hypothesis_seed") and config.option.hypothesis_seed is None:
        config.option.hypothesis_seed = str(SEED_OFFSET)
    try:
        from hypothesis import settings
    except ImportError:  # pragma: no cover - hypothesis is a test dependency
        return
    settings.register_profile("bayes_va", database=None, derandomize=False)
    settings.load_profile("bayes_va")


def pytest_report_header(config: pytest.Config) -> str:
    seed_opt = config.getoption("hypothesis_seed", None)
    return (
        f"bayes_va seed offset: {SEED_OFFSET} ({ENV}; added to every sampler.seed of a loaded "
        f"config and every seed(n) in the tests); hypothesis seed: {seed_opt}"
    )


def read_rows(path: Path) -> list[list[str]]:
    """Every record of a CSV file (header first), exactly as the csv module reads it."""
    with path.open(encoding="utf-8", newline="") as fh:
        return [list(r) for r in csv.reader(fh)]


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    """Write records with the csv module (minimal quoting, ``\\n`` line ends)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return path


@dataclass(frozen=True)
class CsvEditor:
    """Edits the CSV files of one data folder in place.

    A data row is addressed either by its 0-based index among the data rows or by the value
    of its first column (``"chou2014"``). Methods that change a row return the 1-based line of
    that row in the file (the header is line 1), which is what error messages must name.
    Fields never contain line breaks in the shipped tables, so record i is line i + 1.
    """

    folder: Path

    def path(self, filename: str) -> Path:
        return self.folder / filename

    def rows(self, filename: str) -> list[list[str]]:
        return read_rows(self.path(filename))

    def write(self, filename: str, rows: list[list[str]]) -> Path:
        return write_rows(self.path(filename), rows)

    def _index(self, rows: list[list[str]], row: int | str) -> int:
        """Index into ``rows`` (header at 0) of a data row."""
        if isinstance(row, int):
            if not 0 <= row < len(rows) - 1:
                raise IndexError(f"no data row {row}")
            return row + 1
        for i, r in enumerate(rows[1:], start=1):
            if r and r[0] == row:
                return i
        raise KeyError(f"no row whose first column is {row!r}")

    def set_cell(self, filename: str, row: int | str, column: str, value: str) -> int:
        """Replace one cell; return the row's line number."""
        rows = self.rows(filename)
        i = self._index(rows, row)
        rows[i][rows[0].index(column)] = value
        self.write(filename, rows)
        return i + 1

    def set_row(self, filename: str, row: int | str, values: list[str]) -> int:
        """Replace a whole row (any number of fields); return its line number."""
        rows = self.rows(filename)
        i = self._index(rows, row)
        rows[i] = list(values)
        self.write(filename, rows)
        return i + 1

    def get_row(self, filename: str, row: int | str) -> list[str]:
        rows = self.rows(filename)
        return rows[self._index(rows, row)]

    def append_row(self, filename: str, values: list[str]) -> int:
        """Add a row at the end; return its line number."""
        rows = self.rows(filename)
        rows.append(list(values))
        self.write(filename, rows)
        return len(rows)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shipped ``data/`` folder (read only: never write into it)."""
    assert (SHIPPED_DATA / "revision_studies.csv").is_file()
    return SHIPPED_DATA


@pytest.fixture
def tmp_data_dir(tmp_path: Path, data_dir: Path) -> Path:
    """A private copy of the shipped data folder, free to mutate."""
    dest = tmp_path / "data"
    shutil.copytree(data_dir, dest)
    return dest


@pytest.fixture(scope="session")
def csv_rows():
    """The function :func:`read_rows` (records of a CSV file, exactly as csv.reader gives them)."""
    return read_rows


@pytest.fixture
def edit_csv(tmp_data_dir: Path) -> CsvEditor:
    """A :class:`CsvEditor` bound to ``tmp_data_dir``."""
    return CsvEditor(tmp_data_dir)


@pytest.fixture(scope="session")
def _revision_counts(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from bayes_va.data.tables import load_revision

    frame = load_revision(data_dir)
    study_ids = np.array(frame["study_id"].tolist(), dtype=str)
    y = frame["events"].to_numpy(dtype=np.int64)
    n = frame["n"].to_numpy(dtype=np.int64)
    return study_ids, y, n


@pytest.fixture
def revision_counts(
    _revision_counts: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(study_ids, y, n)`` of the 14 shipped revision studies, file order (fresh copies)."""
    return tuple(a.copy() for a in _revision_counts)  # type: ignore[return-value]
