"""Exports round-trip: JSON and CSV back to the same records, Markdown and HTML back to the same catalogue."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from speech_taxonomy.catalogue import from_dict, load, load_json
from speech_taxonomy.export import (
    heatmap_png,
    read_csv,
    read_markdown_catalogue,
    to_csv,
    to_json,
    to_markdown,
)
from speech_taxonomy.page import read_html_data, to_html


@pytest.fixture(scope="module")
def shipped():
    return load()


def test_json_round_trip(shipped, tmp_path):
    path = tmp_path / "t.json"
    path.write_text(to_json(shipped))
    back = load_json(path)
    assert back.evaluations == shipped.evaluations
    assert back.vocabulary == shipped.vocabulary
    assert back.models == shipped.models
    assert back.files == shipped.files
    assert to_json(back) == to_json(shipped)


def test_json_import_is_validated(shipped):
    data = shipped.to_dict()
    data["evaluations"][0]["aspects"] = ["nonsense"]
    with pytest.raises(ValueError, match=r"field 'aspects\[0\]': unknown aspect 'nonsense'"):
        from_dict(data)


def test_csv_round_trip(shipped):
    rows = read_csv(to_csv(shipped))
    assert len(rows) == len(shipped.evaluations)
    for file, ev in rows:
        assert ev == shipped.evaluations[ev.key]
        assert file == shipped.files[ev.key]


def test_csv_keeps_any_of_groups(mini):
    tax = load(mini)
    (row,) = [ev for _, ev in read_csv(to_csv(tax)) if ev.key == "e_any"]
    assert row.capabilities_any_of == [["tx_out", "sp_out"]]


def test_markdown_round_trip(shipped):
    text = to_markdown(shipped)
    rows = read_markdown_catalogue(text)
    assert set(rows) == set(shipped.evaluations)
    for key, row in rows.items():
        ev = shipped.evaluations[key]
        assert row["aspects"] == ev.aspects
        assert row["protocol"] == ev.protocol
        assert row["capabilities"] == ev.capabilities_required + [
            " or ".join(g) for g in ev.capabilities_any_of
        ]
    for v in shipped.vocabulary.capability:  # the axes tables
        assert f"**{v.id}**" in text


def test_html_embeds_the_data_and_a_row_per_evaluation(shipped):
    page = to_html(shipped)
    assert from_dict(read_html_data(page)).evaluations == shipped.evaluations
    assert len(re.findall(r'<tr class="ev"', page)) == len(shipped.evaluations)
    assert 'id="heatmap"' in page and 'id="filters"' in page


def test_html_is_self_contained(shipped):
    page = to_html(shipped)
    # no external resources: scripts and styles are inline, nothing is fetched
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link\b", page)
    assert not re.search(r"<(img|iframe|audio|video|source)\b", page)
    assert "@import" not in page and "url(" not in page
    assert "fetch(" not in page and "XMLHttpRequest" not in page
    # the only http(s) references are plain links (the embedded JSON data aside)
    visible = re.sub(r'<script type="application/json"[^>]*>.*?</script>', "", page, flags=re.S)
    links = list(re.finditer(r"https?://[^\s\"'<]+", visible))
    assert len(links) > len(shipped.evaluations)  # every entry links at least its paper, many more
    for m in links:
        before = visible[max(0, m.start() - 6) : m.start()]
        assert before.endswith('href="'), m.group(0)


def test_png_heatmap(mini, tmp_path):
    out = heatmap_png(load(mini), tmp_path / "h.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 300 and height > 200


def test_only_the_png_export_imports_matplotlib(mini, tmp_path):
    code = (
        "import sys\n"
        "from speech_taxonomy.cli import main\n"
        "args = ['--data', sys.argv[1]]\n"
        "for cmd in (['which', '-m', 'enc'], ['gaps'], ['list'], ['show', 'e_abx'], ['validate'],\n"
        "            ['export', '-f', 'html', '-o', sys.argv[2] + '/p.html'], ['export', '-f', 'csv']):\n"
        "    assert main(args + cmd) == 0, cmd\n"
        "heavy = [m for m in ('matplotlib', 'numpy', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert main(args + ['export', '-f', 'png', '-o', sys.argv[2] + '/h.png']) == 0\n"
        "assert 'matplotlib' in sys.modules and 'torch' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(mini), str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _braces_balanced(text: str) -> bool:
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
        i += 1
    return depth == 0


def test_bibtex_of_the_whole_catalogue(shipped):
    from speech_taxonomy.export import to_bibtex

    text = to_bibtex(shipped.evaluations.values())
    keys = re.findall(r"^@misc\{([a-z0-9_]+),$", text, flags=re.M)
    assert keys == list(shipped.evaluations)
    assert _braces_balanced(text)
    for ev in shipped.evaluations.values():
        if ev.citation.arxiv:
            assert f"eprint = {{{ev.citation.arxiv}}}" in text


def test_bibtex_escapes_and_fields(mini):
    from speech_taxonomy.export import bibtex_entry
    from speech_taxonomy.records import Citation

    tax = load(mini)
    ev = tax.evaluations["e_abx"]
    cit = Citation(
        title="A & B: 100% of {x}_y", year=2024, venue="Proc. #1", doi="10.1/x_y", authors="Doe, Jane"
    )
    text = bibtex_entry(type(ev)(**{**ev.__dict__, "citation": cit}))
    assert "title = {{A \\& B: 100\\% of \\{x\\}\\_y}}" in text
    assert "author = {Doe, Jane}" in text and "note = {Proc. \\#1}" in text
    assert "doi = {10.1/x_y}" in text and "url = {https://doi.org/10.1/x_y}" in text
    assert _braces_balanced(text)


def test_links_default_to_the_paper(shipped):
    ev = shipped.evaluations["voicebench"]
    assert ev.link_map() == {
        "paper": "https://arxiv.org/abs/2410.17196",
        "code": "https://github.com/MatthewCYM/VoiceBench",
        "data": "https://huggingface.co/datasets/hlt-lab/voicebench",
    }
    assert shipped.evaluations["visqol"].paper_url() == "https://doi.org/10.1186/s13636-015-0054-9"
    assert shipped.evaluations["pesq"].paper_url() is None  # an ITU recommendation: no link given
    linked = [
        e
        for e in shipped.evaluations.values()
        if e.links and (e.links.code or e.links.data or e.links.leaderboard)
    ]
    assert len(linked) >= 40
