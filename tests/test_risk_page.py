"""The interactive risk page (``paper/build/risk.html``), driven in headless Chromium.

The page is opened in Debian's ``chromium`` (``scripts/setup-venv.sh`` installs it when it can)
and driven like a user over the Chrome DevTools Protocol (a websocket, with tornado, which
dask.distributed already brings): fields are set and ``input``/``change`` events dispatched, and
the displayed results are read back from the DOM. Without Chromium the browser tests are
skipped with the reason; the page's arithmetic is also checked in NumPy.

``BAYES_VA_SCREENSHOT=1`` also writes ``docs/risk-page.png`` (the committed screenshot).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from scipy import special
from seeds import seed
from tornado.websocket import websocket_connect

from bayes_va.risk import (
    EXAMPLE_PROFILES,
    EXTRAPOLATION_SDS,
    RiskModel,
    an2021_cohort_ranges,
    avf_model,
    recompression_model,
    revision_model,
)
from bayes_va.workflows.risk_page import page_data, quantile_mcse, write_risk_page

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRAWS = 4000  # the paper's and the CLI's (RiskConfig default)
THINNED = 1000
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (scripts/setup-venv.sh installs it with apt-get when run "
    "as root; otherwise: apt-get install -y chromium)",
)


class FakeAVF:
    """The AVF fit's interface (``tree``, ``linear_predictor``, ``config.model.moderators``)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(seed(11))
        mu = special.logit(0.07) + 0.15 * rng.standard_normal((2, 500))
        self.tree = xr.DataTree.from_dict(
            {"posterior": xr.Dataset({"mu": (("chain", "draw"), mu)})}
        )

    def linear_predictor(self, moderators: dict[str, float] | None = None) -> xr.DataArray:
        return self.tree["posterior"]["mu"]


@pytest.fixture(scope="module")
def models() -> dict[str, RiskModel]:
    s = seed(20231123)
    return {
        "recompression": recompression_model(n_draws=DRAWS, seed=s),
        "revision": revision_model(
            f"exact:{PROJECT_ROOT / 'models' / 'base.toml'}", n_draws=DRAWS, seed=s
        ),
        "avf": avf_model(FakeAVF(), n_draws=DRAWS, seed=s),
    }


@pytest.fixture(scope="module")
def pages(models: dict[str, RiskModel], tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("risk_page")
    full = write_risk_page(d / "risk.html", models, transport="beta:2,2", quiet=True)
    thin = write_risk_page(d / "thin.html", models, max_draws=THINNED, quiet=True)
    return {"full": full, "thin": thin}


def cli_rows(models: dict[str, RiskModel], outcome: str) -> dict[str, dict[str, Any]]:
    """What ``bayes-va risk`` prints for the example profiles (``RiskModel.summarise``)."""
    profiles = [{"id": k, **v} for k, v in EXAMPLE_PROFILES.items()]
    table = models[outcome].summarise(profiles, threshold=0.1, warn=False)
    return {r["id"]: r for r in table.to_dict(orient="records")}


# ------------------------------------------------------------------------- without a browser


def test_embedded_draws_reproduce_summarise_exactly(models, pages):
    """Decode the page's draws and apply the page's formula in NumPy: the CLI's numbers."""
    text = pages["full"].read_text()
    data = json.loads(re.search(r'id="risk-data"[^>]*>(.*?)</script>', text, re.S)[1])
    for outcome, model in models.items():
        o = data["outcomes"][outcome]
        alpha = np.frombuffer(base64.b64decode(o["alpha"]), "<f8")
        beta = np.frombuffer(base64.b64decode(o["beta"]), "<f8").reshape(-1, len(o["columns"]))
        assert o["draws"] == DRAWS and np.array_equal(alpha, model.layer.alpha)
        assert np.array_equal(beta, model.layer.beta)
        enc = model.encode([{"id": k, **v} for k, v in EXAMPLE_PROFILES.items()], warn=False)
        risk = special.expit(alpha + (enc.X - np.array(o["x_ref"])) @ beta.T)  # (P, S)
        cli = cli_rows(models, outcome)
        for j, pid in enumerate(enc.ids):
            lo, med, hi = np.quantile(risk[j], [0.025, 0.5, 0.975])
            np.testing.assert_allclose(
                [med, lo, hi], [cli[pid][k] for k in ("median", "lower", "upper")], rtol=1e-12
            )
            assert o["examples"][pid]["cli"]["median"] == pytest.approx(cli[pid]["median"])


def test_page_states_each_calibrated_intercepts_integration_error(models, pages):
    text = pages["full"].read_text()
    data = json.loads(re.search(r'id="risk-data"[^>]*>(.*?)</script>', text, re.S)[1])
    for outcome, model in models.items():
        o, info = data["outcomes"][outcome], model.integration()
        assert o["integration"] == info
        said = [n for n in o["notes"] if n.startswith("integration error")]
        assert len(said) == (0 if info is None or info["exact"] else 1), outcome
        if said:
            assert f"{info['mcse']:.2g}" in said[0]


def test_page_is_self_contained_and_small(pages):
    text = pages["full"].read_text()
    assert len(text.encode()) < 2_000_000
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    for name in ("An 2021", "Table 2", "Data hash", "Patient-level risk"):
        assert name in text


def test_quantile_mcse_matches_the_normal_theory_value():
    rng = np.random.default_rng(seed(5))
    x = rng.standard_normal(20_000)
    # sd of the sample median of N(0, 1): sqrt(pi / 2 / n)
    assert quantile_mcse(x, 0.5) == pytest.approx(math.sqrt(math.pi / 2 / x.size), rel=0.15)


def test_thinning_keeps_every_kth_draw(models):
    data = page_data({"recompression": models["recompression"]}, max_draws=THINNED)
    o = data["outcomes"]["recompression"]
    alpha = np.frombuffer(base64.b64decode(o["alpha"]), "<f8")
    assert o["draws"] == THINNED and o["thin_step"] == DRAWS // THINNED
    assert np.array_equal(alpha, models["recompression"].layer.alpha[:: DRAWS // THINNED])
    m = o["examples"]["typical"]["mcse"]["median"]
    assert m["page"] > m["full"] > 0


# ----------------------------------------------------------------------------- in Chromium


class Browser:
    """Headless Chromium driven over the DevTools Protocol (one page)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert CHROMIUM is not None
        self.loop = loop
        self.profile = tempfile.mkdtemp(prefix="bayes-va-chromium-")
        args = [
            CHROMIUM,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--window-size=1100,1500",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with the sandbox
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        self.ws = loop.run_until_complete(self._connect(url))
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    async def _connect(self, url: str) -> Any:
        # websocket_connect needs the running loop (it creates its futures at once)
        return await websocket_connect(url, max_message_size=64 << 20)

    async def _close(self) -> None:
        self.ws.close()  # inside the loop: tornado schedules the closing handshake on it
        await asyncio.sleep(0.05)

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        mid = self.next_id
        await self.ws.write_message(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = await asyncio.wait_for(self.ws.read_message(), 30)
            assert msg is not None, "the DevTools connection closed"
            m = json.loads(msg)
            if m.get("id") == mid:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self._call(method, params))

    def js(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page error: {r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, path: Path) -> float:
        """Navigate to ``path``; return seconds until the page's script has rendered."""
        t0 = time.perf_counter()
        self.call("Page.navigate", url=path.resolve().as_uri())
        while self.js("document.body && document.body.dataset.ready") != "1":
            if time.perf_counter() - t0 > 30:
                raise RuntimeError("the page did not render in 30 s")
            time.sleep(0.02)
        return time.perf_counter() - t0

    def set_field(self, element_id: str, value: str) -> None:
        """Type ``value`` into a field the way a user's edit arrives: value, input, change."""
        self.js(
            f"(() => {{ const el = document.getElementById({json.dumps(element_id)}); "
            f"el.value = {json.dumps(value)}; "
            "el.dispatchEvent(new Event('input', {bubbles: true})); "
            "el.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    def result(self) -> dict[str, Any]:
        return self.js(
            "(() => { const r = document.getElementById('result'); return {"
            "state: r.dataset.state, median: r.dataset.median, lower: r.dataset.lower, "
            "upper: r.dataset.upper, mean: r.dataset.mean, pAbove: r.dataset.pAbove, "
            "shown: document.getElementById('median').textContent, "
            "interval: document.getElementById('interval').textContent, "
            "errors: document.getElementById('errors').innerText, "
            "extrapolation: document.getElementById('extrapolation').innerText, "
            "bars: document.querySelectorAll('#hist rect').length}; })()"
        )

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.loop.run_until_complete(self._close())
            self.ws = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    loop = asyncio.new_event_loop()
    try:
        b = Browser(loop)
    except Exception:
        loop.close()
        raise
    try:
        yield b
    finally:
        b.close()
        loop.close()


def enter_profile(b: Browser, outcome: str, profile: dict[str, Any]) -> dict[str, Any]:
    b.set_field("outcome", outcome)
    for key, value in profile.items():
        b.set_field(f"f-{key}", str(value))
    return b.result()


@needs_chromium
def test_page_shows_the_cli_numbers_for_the_example_profiles(browser, pages, models):
    seconds = browser.open(pages["full"])
    print(f"risk page: {pages['full'].stat().st_size / 1e6:.2f} MB, rendered in {seconds:.2f} s")
    for outcome in models:
        cli = cli_rows(models, outcome)
        for pid, profile in EXAMPLE_PROFILES.items():
            shown = enter_profile(browser, outcome, profile)
            assert shown["state"] == "ok", shown
            for key in ("median", "lower", "upper", "mean"):
                assert float(shown[key]) == pytest.approx(cli[pid][key], rel=1e-9), (outcome, pid)
            assert float(shown["pAbove"]) == pytest.approx(cli[pid]["p_above_threshold"], abs=1e-9)
            med = cli[pid]["median"]
            assert shown["shown"] == f"{100 * med:.{2 if med < 0.01 else 1}f} %"  # what one reads
            assert shown["bars"] > 10


@needs_chromium
def test_thinned_page_agrees_within_its_stated_monte_carlo_error(browser, pages, models):
    browser.open(pages["thin"])
    data = browser.js("window.riskPage.data")
    for outcome in models:
        cli = cli_rows(models, outcome)
        for pid, profile in EXAMPLE_PROFILES.items():
            shown = enter_profile(browser, outcome, profile)
            stated = data["outcomes"][outcome]["examples"][pid]["mcse"]
            for key in ("median", "lower", "upper"):
                # a nested subset: page - CLI has sd <= the page's MCSE; 4 sd
                assert abs(float(shown[key]) - cli[pid][key]) <= 4 * stated[key]["page"] + 1e-12


@needs_chromium
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("f-bmd", "abc", "is not a number"),
        ("f-bmd", "", "bmd is missing"),
        ("f-bmd", "-9", "outside the allowed range [-6, 4]"),
        ("f-cement_volume", "1e3", "outside the allowed range"),
        ("threshold", "1.5", "threshold must lie in (0, 1)"),
    ],
)
def test_nonsense_input_is_refused_with_a_message(browser, pages, field, value, message):
    browser.open(pages["full"])
    enter_profile(browser, "revision", EXAMPLE_PROFILES["typical"])
    browser.set_field(field, value)
    shown = browser.result()
    assert shown["state"] == "refused" and shown.get("median") is None
    assert message in shown["errors"]


@needs_chromium
def test_bmd_beyond_the_cohort_is_flagged_as_extrapolation(browser, pages, models):
    browser.open(pages["full"])
    lo, hi = an2021_cohort_ranges()["bmd"]
    shown = enter_profile(browser, "recompression", {**EXAMPLE_PROFILES["typical"], "bmd": -5})
    assert shown["state"] == "extrapolated" and shown.get("median") is not None
    assert "extrapolation" in shown["extrapolation"]
    assert f"[{lo:.2f}, {hi:.2f}]" in shown["extrapolation"]
    assert f"± {EXTRAPOLATION_SDS:g} SD" in shown["extrapolation"]
    with pytest.warns(Warning, match="extrapolation"):  # the CLI's rule flags it too
        models["recompression"].summarise({**EXAMPLE_PROFILES["typical"], "bmd": -5})
    inside = enter_profile(browser, "recompression", EXAMPLE_PROFILES["typical"])
    assert inside["state"] == "ok" and inside["extrapolation"] == ""


@needs_chromium
@pytest.mark.skipif(
    os.environ.get("BAYES_VA_SCREENSHOT") != "1", reason="set BAYES_VA_SCREENSHOT=1 to update"
)
def test_write_the_screenshot(browser, pages):
    browser.open(pages["full"])
    enter_profile(browser, "revision", EXAMPLE_PROFILES["high"])
    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
    out = PROJECT_ROOT / "docs" / "risk-page.png"
    out.write_bytes(base64.b64decode(shot["data"]))
    assert out.stat().st_size > 10_000


def test_cli_html_writes_the_page_of_its_outcome(tmp_path, capsys):
    from bayes_va.cli import risk as risk_cli

    out = tmp_path / "page.html"
    argv = ["risk", "--outcome", "recompression", "--draws", "500", "--seed", str(seed(3))]
    argv += ["--bmd", "-2.1", "--ivc", "no", "--procedure", "PKP", "--cement-volume", "4.2"]
    assert risk_cli.main([*argv, "--endplate-contact", "no", "--html", str(out)]) == 0
    text = out.read_text()
    data = json.loads(re.search(r'id="risk-data"[^>]*>(.*?)</script>', text, re.S)[1])
    assert list(data["outcomes"]) == ["recompression"]
    assert data["outcomes"]["recompression"]["draws"] == 500
    assert "median" in capsys.readouterr().out
