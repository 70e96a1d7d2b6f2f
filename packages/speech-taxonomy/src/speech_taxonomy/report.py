"""Plain-text rendering of query results for the terminal (the CLI's default output)."""

from __future__ import annotations

import textwrap
from collections import defaultdict

from .catalogue import Taxonomy
from .match import GapReport, Match, WhichResult, paper_gap_aspects
from .records import Evaluation

WIDTH = 100


def aspect_path(tax: Taxonomy, leaf: str) -> str:
    parent = tax.parent_of.get(leaf)
    return f"{parent} / {leaf}" if parent else leaf


def cite(ev_or_citation) -> str:
    c = getattr(ev_or_citation, "citation", ev_or_citation)
    ids = []
    if c.arxiv:
        ids.append(f"arXiv:{c.arxiv}")
    if c.doi:
        ids.append(f"doi:{c.doi}")
    venue = f", {c.venue}" if c.venue else ""
    return f"{c.title} ({c.year}{venue})" + (f" [{', '.join(ids)}]" if ids else "")


def _line(ev: Evaluation, m: Match, key_w: int) -> str:
    return f"    {ev.key:<{key_w}}  {ev.name} ({ev.year}) - {m.reason}"


def render_which(tax: Taxonomy, res: WhichResult, title: str, near: bool = True) -> str:
    out = [title, f"  capabilities: {', '.join(res.capabilities) or 'none'}"]
    out.append(f"  budget: {'excludes ' + ', '.join(res.forbid) if res.forbid else 'no exclusions'}")
    key_w = max([len(m.key) for m in res.fits + res.via_cascade + res.near_misses] or [4])
    out.append("")
    out.append(f"FITS ({len(res.fits)}), by primary aspect")
    groups: dict[str, list[Match]] = defaultdict(list)
    for m in res.fits:
        groups[tax.evaluations[m.key].primary_aspect].append(m)
    for leaf in tax.leaves:
        if leaf in groups:
            out.append(f"  {aspect_path(tax, leaf)}")
            out += [_line(tax.evaluations[m.key], m, key_w) for m in groups[leaf]]
    if not res.fits:
        out.append("  (none)")
    out.append("")
    out.append(f"FITS VIA A CASCADE ({len(res.via_cascade)})")
    out += [_line(tax.evaluations[m.key], m, key_w) for m in res.via_cascade] or ["  (none)"]
    if near:
        out.append("")
        out.append(f"NEAR MISSES ({len(res.near_misses)}), by what is missing")
        by_reason: dict[str, list[Match]] = defaultdict(list)
        for m in res.near_misses:
            by_reason[m.reason].append(m)
        for reason in sorted(by_reason, key=lambda r: (-len(by_reason[r]), r)):
            keys = ", ".join(m.key for m in by_reason[reason])
            out.append(f"  {reason} ({len(by_reason[reason])}):")
            out += textwrap.wrap(keys, WIDTH, initial_indent="    ", subsequent_indent="    ")
        if not res.near_misses:
            out.append("  (none)")
    return "\n".join(out)


def render_gaps(tax: Taxonomy, rep: GapReport, title: str) -> str:
    out = [title, f"  evaluations counted: {rep.total} of {len(tax.evaluations)}", ""]
    out.append(f"  {'aspect':<34}{'count':>6}{'weight':>8}{'primary':>9}")
    parents = {c.aspect: c for c in rep.parents}
    for p in tax.parents:
        c = parents[p]
        out.append(f"  {p:<34}{c.count:>6}{c.weight:>8.2f}{c.primary:>9}")
        for leaf in rep.leaves:
            if leaf.parent == p:
                mark = "  <- thin" if leaf.count <= rep.threshold else ""
                out.append(f"    {leaf.aspect:<32}{leaf.count:>6}{leaf.weight:>8.2f}{leaf.primary:>9}{mark}")
    for leaf in rep.leaves:
        if leaf.parent is None:
            out.append(f"  {leaf.aspect:<34}{leaf.count:>6}{leaf.weight:>8.2f}{leaf.primary:>9}")
    out.append("")
    out.append(
        "  count: evaluations measuring the aspect; weight: each evaluation split equally over its aspects;"
    )
    out.append("  primary: evaluations built around it (first-listed aspect).")
    out.append("")
    thin = sorted(rep.thin, key=lambda c: (c.count, c.weight, c.aspect))
    out.append(f"THIN ASPECTS (count <= {rep.threshold}): {len(thin)}")
    out += textwrap.wrap(
        ", ".join(f"{c.aspect} ({c.count})" for c in thin) or "none",
        WIDTH,
        initial_indent="  ",
        subsequent_indent="  ",
    )
    least = sorted(rep.parents, key=lambda c: (c.count, c.weight))
    out.append("LEAST COVERED PARENTS: " + ", ".join(f"{c.aspect} ({c.count})" for c in least[:3]))
    out.append("")
    out.append(
        "THE PAPER'S GAPS (aspects with provenance 'paper'), rank from the least covered (1 = thinnest):"
    )
    for a in paper_gap_aspects(tax):
        pool = "parents" if a in tax.children else "leaves"
        cov = next(c for c in (rep.parents if a in tax.children else rep.leaves) if c.aspect == a)
        ranks = ", ".join(
            f"{by} {rep.rank(a, by)[0]}/{rep.rank(a, by)[1]}" for by in ("count", "weight", "primary")
        )
        out.append(f"  {a:<14} count {cov.count:>3}, primary {cov.primary:>2}; rank among {pool} by {ranks}")
    return "\n".join(out)


def render_show(tax: Taxonomy, ev: Evaluation) -> str:
    def vals(axis: str, ids) -> list[str]:
        known = tax.axis(axis)
        return [f"      {i:<24} {known[i].definition} [{known[i].provenance}]" for i in ids]

    out = [f"{ev.name}  ({ev.key}, {ev.kind}, {ev.year})", f"  file: {tax.files.get(ev.key, '?')}"]
    out.append(
        f"  citation: {cite(ev)}" + (f" (id: {ev.citation.id_source})" if ev.citation.id_source else "")
    )
    out.append("  aspects (axis 1; first is primary):")
    for a in ev.aspects:
        v = tax.axis("aspect")[a]
        out.append(f"      {aspect_path(tax, a):<32} {v.definition} [{v.provenance}]")
    out.append("  capabilities required (axis 2):")
    out += vals("capability", ev.capabilities_required)
    for g in ev.capabilities_any_of:
        out.append(f"      one of: {', '.join(g)}")
    out.append("  protocol (axis 3):")
    out += vals("protocol", ev.protocol)
    out.append(f"  input -> output: {' + '.join(ev.input)} -> {' / '.join(ev.output)}")
    out.append(f"  metrics: {'; '.join(ev.metrics)}")
    out.append(f"  languages: {', '.join(ev.languages)}")
    if ev.tasks:
        out.append(f"  tasks: {'; '.join(ev.tasks)}")
    p = ev.provenance
    out.append(f"  provenance: {p.classification}, {p.source}" + (f" ({p.detail})" if p.detail else ""))
    out.append(f"  confidence: {ev.confidence}")
    if ev.notes:
        out += textwrap.wrap("notes: " + ev.notes, WIDTH, initial_indent="  ", subsequent_indent="    ")
    fits = [
        m.key
        for m in tax.models.values()
        if set(ev.capabilities_required) <= set(m.capabilities)
        and all(set(g) & set(m.capabilities) for g in ev.capabilities_any_of)
    ]
    out.append(f"  model profiles it fits: {', '.join(fits) or 'none'}")
    return "\n".join(out)


def render_list(tax: Taxonomy, evs: list[Evaluation]) -> str:
    key_w = max([len(e.key) for e in evs] or [3])
    out = [f"{'key':<{key_w}}  year  {'primary aspect':<22}  name"]
    for e in evs:
        out.append(f"{e.key:<{key_w}}  {e.year}  {e.primary_aspect:<22}  {e.name}")
    out.append(f"({len(evs)} of {len(tax.evaluations)} evaluations)")
    return "\n".join(out)


def render_axes(tax: Taxonomy) -> str:
    out = []
    titles = {
        "aspect": "AXIS 1: evaluation aspect",
        "capability": "AXIS 2: model capability required",
        "protocol": "AXIS 3: task or protocol requirement",
    }
    for axis, title in titles.items():
        out.append(title)
        for v in getattr(tax.vocabulary, axis):
            indent = "    " if v.parent else "  "
            paper = f' (paper: "{v.paper_term}")' if v.paper_term else ""
            out.append(f"{indent}{v.id:<{26 - len(indent) + 2}} [{v.provenance}] {v.definition}{paper}")
        out.append("")
    out.append("CASCADES")
    for c in tax.vocabulary.cascade:
        out.append(f"  {c.id:<24} {c.definition} ({', '.join(c.requires)} -> {', '.join(c.grants)})")
    return "\n".join(out)


def render_models(tax: Taxonomy) -> str:
    out = []
    for m in tax.models.values():
        out.append(f"{m.key}  {m.name}" + (f"  (aliases: {', '.join(m.aliases)})" if m.aliases else ""))
        out.append(f"    capabilities: {', '.join(m.capabilities)}")
        out.append(f"    citation: {cite(m)}")
    return "\n".join(out)
