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
from speech_taxonomy.match import counted, which
from speech_taxonomy.page import to_html

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="chromium is not installed (apt-get install chromium)"
)
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
    """Collects the catalogue rows (key, hidden?) and the counter's text."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[str, bool]] = []
        self.count = None
        self.ready = False
        self._in_count = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "ev" in (a.get("class") or "").split():
            self.rows.append((a["data-key"], "hidden" in a))
        if tag == "span" and a.get("id") == "count":
            self._in_count = True
        if tag == "body" and a.get("data-ready") == "1":
            self.ready = True

    def handle_data(self, data):
        if self._in_count:
            self.count = int(data)
            self._in_count = False


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tax = load()
    folder = tmp_path_factory.mktemp("page")
    path = folder / "speech-taxonomy.html"
    path.write_text(to_html(tax), encoding="utf-8")
    return tax, path, folder


def shown(page, fragment: str = "") -> list[str]:
    tax, path, folder = page
    url = path.as_uri() + (f"#{fragment}" if fragment else "")
    profile = folder / f"profile-{abs(hash(fragment))}"
    env = {**os.environ, "HOME": str(folder)}
    r = subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
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
    visible = [k for k, hidden in p.rows if not hidden]
    assert p.count == len(visible)
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
