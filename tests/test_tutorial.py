"""The tutorial ``docs/your-data.md`` runs as written, and shows what its commands print.

Every ```` ```sh ```` block is run, command by command and in order, exactly as written (through
``bash -c``, with the venv's ``bayes-va`` first on ``PATH``), from a temporary folder that holds a
copy of ``docs/your-data/``, so the commands' relative paths resolve as they do from the
repository root and ``results/`` is written there. Each must exit 0. Then:

* the ```` ```text ```` block right after a ``sh`` block is that command's output: each of its
  lines must appear in what the command printed with every number masked, and the numbers of
  the estimate lines (pooled, predictive, tau, OR) must agree within Monte-Carlo error (4 MCSE of
  that quantile from the run's ``diagnostics.json``, the last printed digit's rounding on top);
* every ```` ```toml ```` block is the config file it names, byte for byte, and the CSV excerpt
  is the CSV's first lines;
* every ``results/...`` path the page names exists after the run.

A different ``BAYES_VA_SEED_OFFSET`` shifts the seed of the copied base config (the children
inherit it), so the shown numbers are checked against fresh streams too. The configs take
2000 draws per chain, so R-hat > 1.01 (exit 1) has probability ~1e-4 per fit (``margins.py``:
log(R-hat - 1) ~ Normal(-6.66, 0.73) at 1000 draws, minus log 2 for twice the draws).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from seeds import SEED_OFFSET, seed

from bayes_va.config.model import SamplerConfig

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "your-data.md"
INPUTS = ROOT / "docs" / "your-data"
BASE_CONFIG = "adherence.toml"

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
# the estimate lines of `bayes-va fit`: label -> key of diagnostics.json's "mcse"
ESTIMATES = {
    "pooled proportion": "pooled",
    "predictive (new study)": "predictive",
    "tau": "tau",
}
QUANTILES = ("q50", "q2.5", "q97.5")  # the printed order: median [lower, upper]


@dataclass
class Step:
    """One ``sh`` block: its commands and the output the page shows for it (may be empty)."""

    commands: list[str]
    shown: list[str]


def blocks(text: str) -> list[tuple[str, str, int, int]]:
    """Every fenced block of the page: (language, body, start, end offsets)."""
    return [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]


def steps(text: str) -> list[Step]:
    """The ``sh`` blocks in order, each with the ``text`` block that directly follows it."""
    found = blocks(text)
    out = []
    for i, (lang, body, _, end) in enumerate(found):
        if lang != "sh":
            continue
        joined = body.replace("\\\n", " ")  # a continued line is one command
        commands = [c.strip() for c in joined.splitlines() if c.strip() and not c.startswith("#")]
        shown: list[str] = []
        if i + 1 < len(found):
            nxt_lang, nxt_body, nxt_start, _ = found[i + 1]
            if nxt_lang == "text" and not text[end:nxt_start].strip():
                shown = [line for line in nxt_body.splitlines() if line.strip()]
        out.append(Step(commands, shown))
    return out


def mask(line: str) -> str:
    """The line with every number replaced by ``#`` and runs of blanks collapsed."""
    return " ".join(NUMBER.sub("#", line).split())


def numbers(line: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(line)]


def half_digit(token: str) -> float:
    """Half a unit of the last printed digit of ``token`` (its rounding error)."""
    decimals = len(token.split(".")[1]) if "." in token else 0
    return 0.5 * 10.0**-decimals


def test_the_page_is_well_formed():
    """The parser sees the commands and outputs the page is built around (fails if it is not)."""
    page = steps(DOC.read_text(encoding="utf-8"))
    commands = [c for s in page for c in s.commands]
    assert [c.split()[:2] for c in commands] == [
        ["bayes-va", "data"],
        ["bayes-va", "fit"],
        ["bayes-va", "report"],
        ["bayes-va", "fit"],
        ["bayes-va", "sensitivity"],
    ]
    assert all(s.shown for s in page), "every command shows its output"
    assert mask("  tau  0.6771 [0.4289, 1.1335]") == "tau # [#, #]"


def test_the_config_and_csv_excerpts_are_the_files():
    text = DOC.read_text(encoding="utf-8")
    tomls = [body for lang, body, _, _ in blocks(text) if lang == "toml"]
    assert len(tomls) == 3
    for body in tomls:
        (name,) = re.findall(r'^name = "([^"]+)"', body, re.M)
        assert body == (INPUTS / f"{name}.toml").read_text(encoding="utf-8"), name
    texts = [body for lang, body, _, _ in blocks(text) if lang == "text"]
    (excerpt,) = [body for body in texts if body.startswith('"author"')]
    head = (INPUTS / "debruin2009.csv").read_text(encoding="utf-8").splitlines()
    shown = [line for line in excerpt.splitlines() if line != "..."]
    assert shown == head[: len(shown)]


@pytest.mark.sampling
def test_the_tutorial_runs_as_written(tmp_path):
    text = DOC.read_text(encoding="utf-8")
    shutil.copytree(INPUTS, tmp_path / "docs" / "your-data")
    if SEED_OFFSET:  # fresh streams: shift the base config's seed (the others extend it)
        default = int(SamplerConfig.model_fields["seed"].default)
        base = tmp_path / "docs" / "your-data" / BASE_CONFIG
        assert "\n[sampler]\n" in base.read_text(), "the seed goes into the last table, [sampler]"
        base.write_text(base.read_text() + f"seed = {seed(default)}\n")

    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "bayes-va").exists(), f"no bayes-va beside {sys.executable}"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["MPLBACKEND"] = "Agg"

    for step in steps(text):
        printed = ""
        for command in step.commands:
            proc = subprocess.run(
                ["bash", "-c", command],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, f"{command}\n-> exit {proc.returncode}\n{proc.stderr}"
            printed += proc.stdout
        check_output(step, printed, tmp_path)

    named = set(re.findall(r"`(results/[^`*<>\s]+)`", text))
    assert len(named) >= 10
    missing = sorted(p for p in named if not (tmp_path / p).exists())
    assert not missing, f"the page names files the run did not write: {missing}"


def check_output(step: Step, printed: str, root: Path) -> None:
    """The shown output's lines appear in ``printed`` (numbers masked); estimates agree."""
    lines = printed.splitlines()
    by_shape = {mask(line): line for line in lines}
    results = None
    for line in lines:  # "  results in results/<name>/ ..." names the folder of the fit
        m = re.search(r"results in (results/[^/\s]+)/", line)
        if m:
            results = root / m.group(1)
    command = " ".join(step.commands)
    for shown in step.shown:
        actual = by_shape.get(mask(shown))
        assert actual is not None, f"{command}: shown line not printed:\n{shown}\n---\n{printed}"
        label = shown.split("  ")[1].strip() if shown.startswith("  ") else ""
        if label in ESTIMATES or label.startswith("OR "):
            assert results is not None, command
            compare_estimate(label, shown, actual, results)


def compare_estimate(label: str, shown: str, actual: str, results: Path) -> None:
    """A printed estimate (median [lower, upper]) against the page's, within 4 MCSE + rounding."""
    # the three numbers after the label; a trailing "(posterior median [95% ETI])" is not one
    got = numbers(actual.strip()[len(label) :])[:3]
    want = numbers(shown.strip()[len(label) :])[:3]
    tokens = NUMBER.findall(shown.strip()[len(label) :])[:3]
    assert len(got) == len(want) == 3, (shown, actual)
    diagnostics = json.loads((results / "diagnostics.json").read_text())
    for q, g, w, token in zip(QUANTILES, got, want, tokens, strict=True):
        if label in ESTIMATES:
            mcse = diagnostics["mcse"][ESTIMATES[label]][q]
        else:  # an odds ratio: the coefficient's MCSE (summary.csv) through exp, tails ~3x
            mcse = 3 * g * beta_mcse(results, label.removeprefix("OR "))
        assert abs(g - w) <= 4 * mcse + 2 * half_digit(token), (
            f"{label} {q}: page {w}, run {g} (4 MCSE = {4 * mcse:.4f})"
        )


def beta_mcse(results: Path, coef: str) -> float:
    """The Monte-Carlo SE of the mean of ``beta[coef]`` from the run's ``summary.csv``."""
    summary = pd.read_csv(results / "summary.csv", index_col=0)
    return float(summary.loc[f"beta[{coef}]", "mcse_mean"])
