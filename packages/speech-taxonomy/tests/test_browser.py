"""The HTML page in a real headless browser (Debian's chromium): its filters change the rows shown.

Each case opens the page with a filter in the URL fragment; the page's script copies the fragment into the filter
controls, filters from the controls and marks hidden rows, and ``--dump-dom`` prints the DOM after the scripts ran.
The expected counts come from the library. Skipped when no chromium is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from speech_taxonomy.catalogue import load
from speech_taxonomy.export import to_bibtex
from speech_taxonomy.match import counted, select, which
from speech_taxonomy.page import to_html

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
pytestmark = [
    pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install chromium)"),
    pytest.mark.slow,  # a browser start per case: 1-4 s each
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--virtual-time-budget=5000",
]


class Rows(HTMLParser):
    """Collects the catalogue rows (key, hidden?), the counter, the empty-result note, the heatmap cells, the BibTeX
    block and the page's own overflow measurement."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[str, bool]] = []
        self.count = None
        self.ready = False
        self.overflow = None
        self.empty_hidden = None
        self.heat: dict[tuple[str, str], int] = {}
        self.bibtex = ""
        self._in = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "ev" in (a.get("class") or "").split():
            self.rows.append((a["data-key"], "hidden" in a))
        if tag == "span" and a.get("id") == "count":
            self._in = "count"
        if tag == "p" and a.get("id") == "empty":
            self.empty_hidden = "hidden" in a
        if tag == "pre" and a.get("id") == "bibtex":
            self._in = "bibtex"
        if tag == "td" and "data-leaf" in a:
            self._cell = (a["data-leaf"], a["data-col"])
        if tag == "body" and a.get("data-ready") == "1":
            self.ready = True
            self.overflow = int(a.get("data-overflow", "-1"))

    def handle_endtag(self, tag):
        if tag == "pre" and self._in == "bibtex":
            self._in = None

    def handle_data(self, data):
        if self._in == "count":
            self.count = int(data)
            self._in = None
        elif self._in == "bibtex":
            self.bibtex += data
        elif self._cell is not None:
            self.heat[self._cell] = int(data)
            self._cell = None


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tax = load()
    folder = tmp_path_factory.mktemp("page")
    path = folder / "speech-taxonomy.html"
    path.write_text(to_html(tax), encoding="utf-8")
    return tax, path, folder


def dom(page, fragment: str = "", width: int = 1280) -> Rows:
    tax, path, folder = page
    url = path.as_uri() + (f"#{fragment}" if fragment else "")
    profile = folder / f"profile-{width}-{abs(hash(fragment))}"
    env = {**os.environ, "HOME": str(folder)}
    r = subprocess.run(
        [BROWSER, *FLAGS, f"--window-size={width},900", f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    p = Rows()
    p.feed(r.stdout)
    assert p.ready, "the page's script did not run"
    assert len(p.rows) == len(tax.evaluations)
    return p


def shown(page, fragment: str = "") -> list[str]:
    p = dom(page, fragment)
    visible = [k for k, hidden in p.rows if not hidden]
    assert p.count == len(visible)
    assert p.empty_hidden == (len(visible) > 0)
    return visible


def test_no_filter_shows_every_row(page):
    assert len(shown(page)) == len(page[0].evaluations)


def test_aspect_filter_with_a_budget(page):
    tax = page[0]
    expected = [e.key for e in counted(tax, None, ["human_judges"]) if "prosody" in e.aspects]
    got = shown(page, "aspect=prosody&exclude=human_judges")
    assert sorted(got) == sorted(expected) and 0 < len(got) < len(tax.evaluations)


def test_model_filter_equals_which(page):
    tax = page[0]
    res = which(tax, tax.model("hubert_like").capabilities, ["human_judges", "fine_tuning"], cascades=False)
    got = shown(page, "model=hubert_like&exclude=human_judges,fine_tuning")
    assert sorted(got) == sorted(res.keys("fit"))


def test_parent_aspect_and_protocol_filters(page):
    tax = page[0]
    leaves = set(tax.children["interaction"])
    expected = [
        e.key
        for e in tax.evaluations.values()
        if leaves & set(e.aspects) and "real_time_harness" in e.protocol
    ]
    assert sorted(shown(page, "aspect=interaction&protocol=real_time_harness")) == sorted(expected)


def test_year_language_task_filters_equal_the_library(page):
    tax = page[0]
    cases = [
        ("from=2024&to=2024", dict(year_from=2024, year_to=2024)),
        ("language=french", dict(language="french")),
        ("task=translation&from=2020", dict(task="translation", year_from=2020)),
        (
            "language=en&kind=metric&exclude=human_judges",
            dict(language="en", kind="metric", forbid=["human_judges"]),
        ),
    ]
    for fragment, kw in cases:
        expected = [e.key for e in select(tax, **kw)]
        assert sorted(shown(page, fragment)) == sorted(expected), fragment
        assert expected, fragment


def test_empty_result_says_so(page):
    p = dom(page, "from=2030")
    assert p.count == 0 and p.empty_hidden is False and all(hidden for _, hidden in p.rows)


def test_sort_by_year_descending_then_key(page):
    p = dom(page, "sort=-year")
    tax = page[0]
    order = [k for k, _ in p.rows]
    years = [tax.evaluations[k].year for k in order]
    assert years == sorted(years, reverse=True)
    p = dom(page, "sort=key")
    assert [k for k, _ in p.rows] == sorted(tax.evaluations)


def test_heatmap_and_bibtex_follow_the_filters(page):
    tax = page[0]
    fragment, kw = (
        "aspect=interaction&exclude=human_judges",
        dict(aspect="interaction", forbid=["human_judges"]),
    )
    p = dom(page, fragment)
    sel = select(tax, **kw)
    for leaf in tax.leaves:
        assert p.heat[(leaf, "")] == sum(leaf in e.aspects for e in sel), leaf
        for m in tax.models.values():
            fits = set(which(tax, m.capabilities, cascades=False).keys())
            assert p.heat[(leaf, m.key)] == sum(leaf in e.aspects and e.key in fits for e in sel), (
                leaf,
                m.key,
            )
    shown_keys = [k for k, hidden in p.rows if not hidden]
    assert p.bibtex.strip() == to_bibtex([tax.evaluations[k] for k in shown_keys]).strip()
    assert p.bibtex.count("@misc{") == len(sel) > 0


@pytest.mark.parametrize("width", [420, 1280])
def test_no_horizontal_overflow(page, width, tmp_path):
    """The page fits the window: the page's own measurement (scrollWidth - innerWidth) and a screenshot whose right
    edge must be empty page background (an overflowing element would be painted up to the edge and cut)."""
    p = dom(page, "", width)
    assert p.overflow == 0, f"{p.overflow} px wider than a {width} px window"
    png = screenshot(page[1], tmp_path / f"page-{width}.png", width, 2400)
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(png)
    assert img.shape[1] == width
    edge = img[:, -3:, :3]
    assert np.all(edge > 0.97), "something is painted at the right edge of the window"


def screenshot(path, out, width: int, height: int):
    folder = out.parent
    env = {**os.environ, "HOME": str(folder)}
    r = subprocess.run(
        [
            BROWSER,
            *FLAGS,
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--user-data-dir={folder / f'shot-{width}'}",
            f"--screenshot={out}",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0 and out.exists(), r.stderr[-2000:]
    return out
