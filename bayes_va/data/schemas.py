"""Schemas of the evidence tables in ``data/``: one place that says what each column must hold.

The codebook (``data/README.md``) explains the columns in words; these schemas enforce them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["str", "int", "float", "enum"]

PROCEDURES = ("VP", "KP", "VP/KP")
ROB_LEVELS = ("Low", "Moderate", "Serious", "Critical")
YES_NO = ("yes", "no")


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Attributes
    ----------
    name : str
        Header name.
    kind : {"str", "int", "float", "enum"}
        How the text of a cell is parsed. Parsing is exact: ``"3.0"`` is not an int and
        ``"nan"`` is not a float.
    required : bool
        Whether an empty cell is an error.
    choices : tuple of str
        Allowed values of an ``enum`` column.
    minimum, maximum : float or None
        Inclusive bounds of numeric columns.
    unique : bool
        Whether values must be unique within the table.
    """

    name: str
    kind: Kind = "str"
    required: bool = True
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unique: bool = False


@dataclass(frozen=True)
class TableSchema:
    """A table: its file name, columns, and the keys that must be unique."""

    name: str
    filename: str
    columns: tuple[Column, ...]
    unique_together: tuple[str, ...] = ()
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names, in file order."""
        return tuple(c.name for c in self.columns)


def _text(name: str, required: bool = True, unique: bool = False) -> Column:
    return Column(name, "str", required=required, unique=unique)


def _count(name: str, minimum: int = 0) -> Column:
    return Column(name, "int", minimum=minimum)


SOURCE = _text("source")

REVISION = TableSchema(
    name="revision",
    filename="revision_studies.csv",
    description="14 cohort studies of revision after augmentation (Takahashi 2023, Tables 1-2)",
    columns=(
        _text("study_id", unique=True),
        _text("author"),
        Column("year", "int", minimum=1900, maximum=2100),
        Column("review_ref", "int", minimum=1),
        _text("design_text"),
        Column("design", "enum", choices=("retrospective", "prospective", "randomized")),
        _text("population"),
        Column("database", "enum", choices=YES_NO),
        Column("procedure", "enum", choices=PROCEDURES),
        _count("n", minimum=1),
        _text("age_text"),
        Column("age_years", "float", required=False, minimum=0, maximum=120),
        _text("age_note", required=False),
        _text("followup_text"),
        Column("followup_months", "float", required=False, minimum=0),
        _text("followup_reading"),
        _text("outcome_text"),
        Column(
            "outcome",
            "enum",
            choices=("revision", "repeat_augmentation", "salvage_cement_leakage"),
        ),
        _text("rate_text"),
        Column("rate_pct", "float", required=False, minimum=0, maximum=100),
        _count("events"),
        _text("events_derivation"),
        Column("rob_selection", "enum", choices=ROB_LEVELS),
        Column("rob_reporting", "enum", choices=ROB_LEVELS),
        SOURCE,
    ),
)

REVISION_ARMS = TableSchema(
    name="revision_arms",
    filename="revision_arms.csv",
    description="studies of the revision table that report arms separately (Hazzard 2014)",
    columns=(
        _text("study_id"),
        _text("arm"),
        Column("procedure", "enum", choices=PROCEDURES),
        _count("n", minimum=1),
        _text("rate_text"),
        Column("rate_pct", "float", required=False, minimum=0, maximum=100),
        _count("events"),
        _text("events_derivation"),
        SOURCE,
    ),
    unique_together=("study_id", "arm"),
)

REVISION_VARIANTS = TableSchema(
    name="revision_variants",
    filename="revision_variants.csv",
    description="alternative readings of ambiguous revision rows (Lin 2016 '4%-13%')",
    columns=(
        _text("variant_id", unique=True),
        _text("study_id"),
        Column("action", "enum", choices=("events", "exclude")),
        Column("events", "int", required=False, minimum=0),
        _text("resolution"),
        SOURCE,
    ),
)

AVF_COHORTS = TableSchema(
    name="avf_cohorts",
    filename="avf_cohorts.csv",
    description="adjacent or new vertebral fracture cohorts (Reyhani Yassavoly 2025, abstracts)",
    columns=(
        _text("study_id", unique=True),
        _text("label"),
        Column("year", "int", required=False, minimum=1900, maximum=2100),
        Column("procedure", "enum", choices=(*PROCEDURES, "implant")),
        _text("design"),
        _count("n", minimum=1),
        _count("events"),
        Column(
            "outcome",
            "enum",
            choices=("adjacent_fracture", "remote_fracture", "any_new_fracture"),
        ),
        Column("count_basis", "enum", choices=("stated", "derived")),
        _text("followup_text"),
        Column("followup_months", "float", required=False, minimum=0),
        Column("selected_population", "enum", choices=YES_NO),
        _text("quote"),
        SOURCE,
        _text("note", required=False),
    ),
)

AVF_CONTRASTS = TableSchema(
    name="avf_contrasts",
    filename="avf_contrasts.csv",
    description="within-study AVF contrasts of Reyhani Yassavoly 2025 (brace, leakage type)",
    columns=(
        _text("study_id"),
        _text("contrast"),
        _text("group"),
        Column("is_reference", "enum", choices=YES_NO),
        _count("n", minimum=1),
        _count("events"),
        SOURCE,
        _text("note", required=False),
    ),
    unique_together=("contrast", "group"),
)

AN2021_COEFFICIENTS = TableSchema(
    name="an2021_coefficients",
    filename="an2021_coefficients.csv",
    description="An et al. 2021 Table 2: multivariable logistic regression of recompression",
    columns=(
        _text("covariate", unique=True),
        _text("label"),
        _text("coded_1"),
        _text("unit", required=False),
        Column("B", "float"),
        Column("SE", "float", minimum=0),
        Column("wald", "float", minimum=0),
        _text("p_text"),
        Column("OR", "float", minimum=0),
        Column("ci_low", "float", minimum=0),
        Column("ci_high", "float", minimum=0),
        SOURCE,
        _text("note", required=False),
    ),
)

AN2021_TABLE1 = TableSchema(
    name="an2021_table1",
    filename="an2021_table1.csv",
    description="An et al. 2021 Table 1: covariates by recompression group",
    columns=(
        _text("variable"),
        _text("level", required=False),
        Column("statistic", "enum", choices=("count", "mean_sd")),
        Column("recompression_value", "float"),
        Column("recompression_sd", "float", required=False, minimum=0),
        Column("noncompression_value", "float"),
        Column("noncompression_sd", "float", required=False, minimum=0),
        Column("test_value", "float", required=False),
        _text("p_text", required=False),
        SOURCE,
        _text("note", required=False),
    ),
    unique_together=("variable", "level"),
)

GAUGHEN2002 = TableSchema(
    name="gaughen2002",
    filename="gaughen2002.csv",
    description="Gaughen et al. 2002: outcome of repeat vertebroplasty at treated levels",
    columns=(
        _text("measure", unique=True),
        Column("value", "float"),
        Column("denominator", "int", required=False, minimum=1),
        _text("unit", required=False),
        SOURCE,
        _text("note", required=False),
    ),
)

PUBLISHED = TableSchema(
    name="published_estimates",
    filename="published_estimates.csv",
    description="estimates printed in the source papers, for comparison (never model inputs)",
    columns=(
        _text("estimate_id", unique=True),
        _text("label"),
        Column("scale", "enum", choices=("proportion", "percent", "count")),
        Column("value", "float"),
        Column("lower", "float", required=False),
        Column("upper", "float", required=False),
        SOURCE,
        _text("note", required=False),
    ),
)

TABLES: dict[str, TableSchema] = {
    s.name: s
    for s in (
        REVISION,
        REVISION_ARMS,
        REVISION_VARIANTS,
        AVF_COHORTS,
        AVF_CONTRASTS,
        AN2021_COEFFICIENTS,
        AN2021_TABLE1,
        GAUGHEN2002,
        PUBLISHED,
    )
}
"""Every table bayes_va knows, by name."""

BY_FILENAME: dict[str, TableSchema] = {s.filename: s for s in TABLES.values()}
