"""Exports: Markdown, CSV, JSON, one self-contained HTML page, the coverage heatmap as PNG.

JSON and CSV read back into the same records (:func:`speech_taxonomy.catalogue.load_json`, :func:`read_csv`).
In CSV, list cells join items with ``|`` (items never contain it; the schema forbids it) and any-of groups are
separated by ``;``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from .catalogue import Taxonomy
from .match import sorted_evaluations
from .records import Evaluation

LIST_FIELDS = (
    "aspects",
    "input",
    "output",
    "capabilities_required",
    "protocol",
    "metrics",
    "languages",
    "tasks",
)
CITATION_FIELDS = ("title", "year", "venue", "arxiv", "doi", "url", "id_source", "authors")
LINK_FIELDS = ("paper", "code", "data", "leaderboard")
PROVENANCE_FIELDS = ("classification", "source", "detail")
CSV_COLUMNS = (
    ["key", "name", "kind", "year", *LIST_FIELDS[:4], "capabilities_any_of", *LIST_FIELDS[4:], "confidence"]
    + [f"citation_{f}" for f in CITATION_FIELDS]
    + [f"provenance_{f}" for f in PROVENANCE_FIELDS]
    + [f"links_{f}" for f in LINK_FIELDS]
    + ["notes", "file"]
)


# -- JSON ---------------------------------------------------------------------------------------------------------


def to_json(tax: Taxonomy) -> str:
    return json.dumps(tax.to_dict(), indent=2, ensure_ascii=False) + "\n"


# -- CSV ----------------------------------------------------------------------------------------------------------


def to_csv(tax: Taxonomy) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for ev in sorted_evaluations(tax):
        row = {k: getattr(ev, k) for k in ("key", "name", "kind", "year", "confidence", "notes")}
        row.update({f: "|".join(getattr(ev, f)) for f in LIST_FIELDS})
        row["capabilities_any_of"] = ";".join("|".join(g) for g in ev.capabilities_any_of)
        row.update({f"citation_{f}": getattr(ev.citation, f) or "" for f in CITATION_FIELDS})
        row.update({f"provenance_{f}": getattr(ev.provenance, f) for f in PROVENANCE_FIELDS})
        row.update({f"links_{f}": (getattr(ev.links, f) if ev.links else None) or "" for f in LINK_FIELDS})
        row["file"] = tax.files.get(ev.key, "")
        w.writerow(row)
    return buf.getvalue()


def read_csv(text: str) -> list[tuple[str, Evaluation]]:
    """Parse :func:`to_csv` output back into ``(file, Evaluation)`` pairs."""
    from . import schema

    out = []
    for row in csv.DictReader(io.StringIO(text)):
        rec = {k: row[k] for k in ("key", "name", "kind", "confidence", "notes")}
        rec["year"] = int(row["year"])
        rec.update({f: row[f].split("|") if row[f] else [] for f in LIST_FIELDS})
        rec["capabilities_any_of"] = [g.split("|") for g in row["capabilities_any_of"].split(";") if g]
        cit = {f: row[f"citation_{f}"] for f in CITATION_FIELDS if row[f"citation_{f}"]}
        cit["year"] = int(cit["year"])
        rec["citation"] = cit
        rec["provenance"] = {f: row[f"provenance_{f}"] for f in PROVENANCE_FIELDS}
        links = {f: row[f"links_{f}"] for f in LINK_FIELDS if row.get(f"links_{f}")}
        if links:
            rec["links"] = links
        validated = schema.Evaluation.model_validate(rec)
        out.append((row["file"], Evaluation.from_dict(validated.model_dump(exclude_none=True))))
    return out


# -- Markdown -----------------------------------------------------------------------------------------------------


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def axes_markdown(tax: Taxonomy) -> str:
    """The three axes as Markdown tables (value, definition, provenance)."""
    out = []
    titles = {
        "aspect": "Axis 1 - evaluation aspect (what is measured)",
        "capability": "Axis 2 - model capabilities required (what the model must expose)",
        "protocol": "Axis 3 - task or protocol requirements (what the evaluator must supply)",
    }
    for axis, title in titles.items():
        if axis == "capability":
            out += [f"### {title}", "", "| value | kind | definition | provenance |", "|---|---|---|---|"]
        else:
            out += [f"### {title}", "", "| value | definition | provenance |", "|---|---|---|"]
        for v in getattr(tax.vocabulary, axis):
            name = f"{v.parent} / **{v.id}**" if v.parent else f"**{v.id}**"
            prov = f'paper ("{v.paper_term}")' if v.paper_term else v.provenance
            definition = _md(v.definition)
            if v.requires_capability:
                definition += f" *Requires of the model: {', '.join(v.requires_capability)}.*"
            kind = f" {v.kind} |" if axis == "capability" else ""
            out.append(f"| {name} |{kind} {definition} | {prov} |")
        out.append("")
    return "\n".join(out)


def to_markdown(tax: Taxonomy) -> str:
    m = tax.vocabulary.meta
    out = [
        "# Speech evaluation taxonomy",
        "",
        f"After *{m.paper}* ({m.authors}, {m.year}, arXiv {m.arxiv}). {len(tax.evaluations)} evaluations.",
        "",
        axes_markdown(tax),
        "## Catalogue",
        "",
        "| key | name | year | aspects | capabilities required | protocol | citation |",
        "|---|---|---|---|---|---|---|",
    ]
    for ev in sorted_evaluations(tax):
        caps = list(ev.capabilities_required) + [" or ".join(g) for g in ev.capabilities_any_of]
        c = ev.citation
        link = f" [arXiv:{c.arxiv}](https://arxiv.org/abs/{c.arxiv})" if c.arxiv else ""
        out.append(
            f"| {ev.key} | {_md(ev.name)} | {ev.year} | {', '.join(ev.aspects)} | {', '.join(caps)} | "
            f"{', '.join(ev.protocol)} | {_md(c.title)} ({c.year}){link} |"
        )
    return "\n".join(out) + "\n"


def read_markdown_catalogue(text: str) -> dict[str, dict[str, list[str]]]:
    """The catalogue table of :func:`to_markdown` back as ``{key: {aspects, capabilities, protocol}}``."""
    rows = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("| key | name |"):
            in_table = True
            continue
        if in_table and line.startswith("|---"):
            continue
        if in_table and line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0]] = {
                "aspects": cells[3].split(", "),
                "capabilities": cells[4].split(", "),
                "protocol": cells[5].split(", "),
            }
        elif in_table:
            break
    return rows


# -- BibTeX -------------------------------------------------------------------------------------------------------

_BIB_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _bib(text: str) -> str:
    return "".join(_BIB_ESCAPES.get(ch, ch) for ch in str(text))


def bibtex_entry(ev: Evaluation) -> str:
    """One ``@misc`` entry for an evaluation's citation, keyed by the evaluation's key (always valid BibTeX:
    the venue goes in ``note``; the title is braced to keep its capitals; identifiers as ``eprint`` and ``doi``)."""
    c = ev.citation
    fields = [("title", "{" + _bib(c.title) + "}")]
    if c.authors:
        fields.append(("author", _bib(c.authors)))
    fields.append(("year", str(c.year)))
    if c.venue:
        fields.append(("note", _bib(c.venue)))
    if c.arxiv:
        fields += [("eprint", c.arxiv), ("archivePrefix", "arXiv")]
    if c.doi:
        fields.append(("doi", c.doi))
    url = ev.paper_url()
    if url:
        fields.append(("url", url))
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)
    return f"@misc{{{ev.key},\n{body}\n}}\n"


def to_bibtex(evaluations) -> str:
    """BibTeX for a selection of evaluations (records, in the order given)."""
    return "\n".join(bibtex_entry(ev) for ev in evaluations)


# -- PNG heatmap --------------------------------------------------------------------------------------------------


def heatmap_png(tax: Taxonomy, path: str | Path) -> Path:
    """The coverage heatmap: aspect leaves x (all, each model profile); the one place matplotlib is imported."""
    from paperkit.plotting import figure

    from .match import coverage_matrix

    rows, cols, matrix = coverage_matrix(tax)
    labels = [f"{tax.parent_of[r]} / {r}" if tax.parent_of[r] else r for r in rows]
    fig, axes = figure(1, 1, width=7.6, height=0.26 * len(rows) + 2.0)
    ax = axes[0, 0]
    ax.grid(False)
    vmax = max(max(r) for r in matrix) or 1
    ax.imshow(matrix, cmap="YlGnBu", aspect="auto", vmin=0, vmax=vmax)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v > vmax * 0.6 else "black",
            )
    ax.set_xticks(
        range(len(cols)),
        [c.replace("_like", "").replace("_", " ") for c in cols],
        fontsize=8,
        rotation=35,
        ha="left",
        rotation_mode="anchor",
    )
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    prev = None
    for i, r in enumerate(rows):  # a line between parents
        if prev is not None and tax.parent_of[r] != prev:
            ax.axhline(i - 0.5, color="grey", lw=0.6)
        prev = tax.parent_of[r]
    ax.axvline(0.5, color="grey", lw=0.8)
    ax.set_title(
        f"Evaluations per aspect ({len(tax.evaluations)} in the catalogue) that each model can take",
        fontsize=9,
        pad=40,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# -- the command --------------------------------------------------------------------------------------------------

DEFAULT_NAMES = {
    "md": "speech-taxonomy.md",
    "csv": "speech-taxonomy.csv",
    "json": "speech-taxonomy.json",
    "html": "speech-taxonomy.html",
    "png": "coverage.png",
    "bib": "speech-taxonomy.bib",
}


def render(tax: Taxonomy, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(tax)
    if fmt == "csv":
        return to_csv(tax)
    if fmt == "json":
        return to_json(tax)
    if fmt == "html":
        from .page import to_html

        return to_html(tax)
    raise ValueError(fmt)


def run_export(tax: Taxonomy, fmt: str, out: str | None, selection=None) -> int:
    """Write one format (``bib`` writes ``selection``, default the whole catalogue) or ``all`` into a folder."""
    if fmt == "bib":
        text = to_bibtex(sorted_evaluations(tax) if selection is None else selection)
        if out is None:
            sys.stdout.write(text)
            return 0
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
        return 0
    if fmt == "all":
        folder = Path(out or ".")
        folder.mkdir(parents=True, exist_ok=True)
        for f in ("md", "csv", "json", "html", "png", "bib"):
            run_export(tax, f, str(folder / DEFAULT_NAMES[f]))
        return 0
    if fmt == "png":
        print(f"wrote {heatmap_png(tax, out or DEFAULT_NAMES['png'])}")
        return 0
    text = render(tax, fmt)
    if out is None and fmt in ("md", "csv", "json"):
        sys.stdout.write(text)
        return 0
    path = Path(out or DEFAULT_NAMES[fmt])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0
