"""Claims: one measured statement of a paper, checked by the run that measured it.

A claim is ``{"id", "statement", "value", "op", "threshold", "passed"}``. ``passed`` is always computed here
from ``value``, ``op`` and ``threshold``; a trainer never writes it.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass

OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    value: float | None
    op: str
    threshold: float
    passed: bool

    @classmethod
    def check(cls, id: str, statement: str, value: float | None, op: str, threshold: float) -> Claim:
        """Build a claim, deciding ``passed`` from the measured ``value`` (NaN or None never passes)."""
        if op not in OPS:
            raise ValueError(f"claim {id!r}: unknown op {op!r}; expected one of {sorted(OPS)}")
        measured = None if value is None else float(value)
        ok = measured is not None and math.isfinite(measured) and bool(OPS[op](measured, float(threshold)))
        return cls(id, statement, measured, op, float(threshold), ok)

    def to_dict(self) -> dict:
        return asdict(self)


def format_table(claims: list[Claim]) -> str:
    """A plain-text table of claims for the end of a run."""
    if not claims:
        return "(no claims)"
    rows = [("claim", "value", "test", "result")]
    for c in claims:
        value = "n/a" if c.value is None else f"{c.value:.4g}"
        rows.append((c.id, value, f"{c.op} {c.threshold:.4g}", "PASS" if c.passed else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for c in claims:
        lines.append(f"  {c.id}: {c.statement}")
    return "\n".join(lines)
