"""``speech-taxonomy summary``: the paper's gap statements, checked on the catalogue, as the core's ``summary.json``.

The paper reports "limited coverage of prosody, interaction, or reasoning". Here each statement becomes one test
on the catalogue's coverage (:func:`speech_taxonomy.match.gaps`): the aspect ranks in the thinnest third of its pool
(leaves for prosody and reasoning, parents for interaction) by ``weight`` (each evaluation split equally over the
aspects it measures). The control of each claim is the best-covered aspect of the same pool, put through the same
test: it must fail it, or the test measures nothing.

These are exact counts of a data set, not measurements over seeds: there is no sampling and nothing depends on the
CPU, so the claims use the core's deterministic form (:meth:`paperkit.claims.Claim.check`), with the control's own
check attached. ``docs/default-summary.json`` is this command's output on the shipped data; the README's results
table is rendered from it by ``python -m paperkit.report packages/speech-taxonomy``, and a test fails when the
data, the summary or the README disagree.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from pathlib import Path

from .catalogue import Taxonomy
from .match import GapReport, gaps, paper_gap_aspects

BY = "weight"


def _rank_of(rep: GapReport, aspect: str) -> tuple[int, int]:
    return rep.rank(aspect, by=BY)


def gap_claims(tax: Taxonomy, rep: GapReport | None = None) -> tuple[list, dict]:
    """The claims (core :class:`~paperkit.claims.Claim` objects) and the numbers behind them."""
    from paperkit.claims import Claim

    rep = rep or gaps(tax)
    claims, numbers = [], {}
    for aspect in paper_gap_aspects(tax):
        is_parent = aspect in tax.children
        pool = rep.parents if is_parent else rep.leaves
        third = math.ceil(len(pool) / 3)
        rank, size = _rank_of(rep, aspect)
        best = max(pool, key=lambda c: (getattr(c, BY), c.count))
        best_rank, _ = _rank_of(rep, best.aspect)
        kind = "parents" if is_parent else "leaves"
        cov = next(c for c in pool if c.aspect == aspect)
        statement = (
            f"{aspect} is among the least covered {kind}: rank by weight (1 = thinnest of {size}) "
            f"in the thinnest third (<= {third}); {cov.count} evaluations measure it, weight {cov.weight:.2f}"
        )
        claim = Claim.check(
            f"{aspect}_thin",
            statement,
            rank,
            "<=",
            third,
            control=best_rank,
            control_name=f"{best.aspect} (best covered)",
        )
        claims.append(claim)
        numbers[aspect] = {
            "pool": kind,
            "pool_size": size,
            "rank_by_weight": rank,
            "rank_by_count": rep.rank(aspect, by="count")[0],
            "rank_by_primary": rep.rank(aspect, by="primary")[0],
            "count": cov.count,
            "weight": cov.weight,
            "primary": cov.primary,
            "control": best.aspect,
            "control_rank_by_weight": best_rank,
        }
    return claims, numbers


def build_summary(tax: Taxonomy) -> dict:
    """The summary document: results (coverage numbers), claims, provenance, in the core's format."""
    from paperkit.provenance import collect_provenance

    start = time.perf_counter()
    rep = gaps(tax)
    claims, numbers = gap_claims(tax, rep)
    results = {
        "evaluations": len(tax.evaluations),
        "model_profiles": len(tax.models),
        "aspect_leaves": len(tax.leaves),
        "thin_leaves": [c.aspect for c in rep.thin],
        "paper_gaps": numbers,
        "leaves": {
            c.aspect: {"count": c.count, "weight": c.weight, "primary": c.primary} for c in rep.leaves
        },
        "parents": {
            c.aspect: {"count": c.count, "weight": c.weight, "primary": c.primary} for c in rep.parents
        },
        "wall_seconds": round(time.perf_counter() - start, 3),
    }
    return {
        "package": "speech-taxonomy",
        "preset": "shipped catalogue",
        "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        "results": results,
        "claims": [c.to_dict() for c in claims],
        "figures": ["coverage.png"],
        "provenance": collect_provenance("speech-taxonomy"),
    }


def comparable(summary: dict) -> dict:
    """The parts of a summary that depend on the data only (not on when or where it was written)."""
    res = {k: v for k, v in summary["results"].items() if k != "wall_seconds"}
    return {"results": res, "claims": summary["claims"]}


def run_summary(tax: Taxonomy, out: str | None) -> int:
    from paperkit.claims import Claim, format_table

    summary = build_summary(tax)
    text = json.dumps(summary, indent=2) + "\n"
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    else:
        print(text, end="")
    claims = [Claim(**c) for c in summary["claims"]]
    print(format_table(claims), file=__import__("sys").stderr)
    return 0
