"""Claims: one measured statement of a paper, checked by the run that measured it.

A claim is ``{"id", "statement", "value", "op", "threshold", "passed"}`` plus, for claims measured over seeds,
``interval`` (``[lo, hi]`` of the value), ``level``, ``seeds``, ``values`` (the per-seed measurements) and
``control`` (the arm that must fail the claim in the same run). ``passed`` is always computed here; a trainer
never writes it.

Two forms measure a paper's statement against a control, over seeds:

* :meth:`Claim.difference`: the method beats the control. ``value = mean(method - control)`` (paired over seeds
  by default), ``passed`` when the interval's bound on the far side of the threshold passes: for ``op=">"`` the
  lower bound must exceed ``threshold``. The threshold may not favour the method (``>= 0`` for ``">"``), so an
  arm compared with itself never passes::

      Claim.difference("more_views", "M=8 beats M=2 at fixed K", method=acc_m8, control=acc_m2,
                       control_name="M=2", op=">", threshold=0.0)

* :meth:`Claim.over_seeds`: a level the method reaches and the control does not. ``value = mean(values)``;
  the method passes on its interval's bound, and the claim passes only when the control arm, measured the
  same way, does **not** pass::

      Claim.over_seeds("ema_rule", "|acc(kappa=16) - acc(kappa=1)| <= 2 points with the rule", values=gap_rule,
                       op="<=", threshold=2.0, control=gap_fixed, control_name="rho fixed")

Intervals are Student-t over seeds by default (``ci="t"``: honest with few seeds), or a percentile bootstrap
(``ci="bootstrap"``). :meth:`Claim.check` remains for a single deterministic value (no interval, no control).
Nothing here imports torch.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads on first use: `train --help` stays fast
    import numpy as np

OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
CI_METHODS = ("t", "bootstrap")


# -- intervals -------------------------------------------------------------------------------------------------


def _t_cdf(x: float, df: int) -> float:
    """Student-t CDF by the regularised incomplete beta function (continued fraction, Numerical Recipes form)."""
    if x == 0:
        return 0.5
    z = df / (df + x * x)
    ib = _betainc(df / 2.0, 0.5, z)
    return 1.0 - 0.5 * ib if x > 0 else 0.5 * ib


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(lbeta) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbeta) * _betacf(b, a, 1 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF; |error| < 1e-10)."""
    if not 0 < p < 1:
        raise ValueError(f"t_quantile: p must lie in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def bootstrap_ci(
    units: Sequence[float] | np.ndarray,
    other: Sequence[float] | np.ndarray | None = None,
    *,
    n: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Percentile bootstrap of a mean over independent units (seeds), or of the difference of two means
    (``mean(units) - mean(other)``, each resampled independently). Returns ``mean``, ``lo``, ``hi``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = np.asarray(units, dtype=float)
    if a.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    stat = a.mean()
    boot = a[rng.integers(0, a.size, (n, a.size))].mean(1)
    if other is not None:
        b = np.asarray(other, dtype=float)
        stat = stat - b.mean()
        boot = boot - b[rng.integers(0, b.size, (n, b.size))].mean(1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return {"mean": float(stat), "lo": float(lo), "hi": float(hi)}


def interval(
    values: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    ci: str = "t",
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of per-seed ``values`` with a two-sided ``level`` interval: Student-t (``ci="t"``) or percentile
    bootstrap (``ci="bootstrap"``). One value, or a non-finite one, gives an interval of NaN (never passes)."""
    import numpy as np

    if ci not in CI_METHODS:
        raise ValueError(f"unknown interval method {ci!r}; expected one of {CI_METHODS}")
    if not 0 < level < 1:
        raise ValueError(f"interval level must lie in (0, 1), got {level}")
    a = np.asarray(values, dtype=float).ravel()
    nan = {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    if a.size == 0 or not np.isfinite(a).all():
        return {**nan, "mean": float(a.mean()) if a.size else float("nan")}
    mean = float(a.mean())
    if a.size < 2:
        return {**nan, "mean": mean}
    if ci == "bootstrap":
        return bootstrap_ci(a, n=n_boot, level=level, seed=seed)
    half = t_quantile(0.5 + level / 2, a.size - 1) * float(a.std(ddof=1)) / math.sqrt(a.size)
    return {"mean": mean, "lo": mean - half, "hi": mean + half}


# -- claims ----------------------------------------------------------------------------------------------------


def _bound_passes(op: str, iv: dict[str, float], threshold: float) -> bool:
    """Decide on the bound of the interval that lies on the far side of the threshold: for ``>``/``>=`` the lower
    bound, for ``<``/``<=`` the upper one. ``==`` is not a claim over seeds."""
    bound = iv["lo"] if op in (">", ">=") else iv["hi"]
    return math.isfinite(bound) and bool(OPS[op](bound, threshold))


def _floats(name: str, values: Sequence[float] | np.ndarray) -> list[float]:
    import numpy as np

    a = np.asarray(values, dtype=float).ravel()
    if a.size == 0:
        raise ValueError(f"claim: no per-seed values for {name}")
    return [float(v) for v in a]


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    value: float | None
    op: str
    threshold: float
    passed: bool
    interval: list[float] | None = None
    level: float | None = None
    seeds: int | None = None
    values: list[float] | None = None
    control: dict | None = None

    @classmethod
    def check(
        cls,
        id: str,
        statement: str,
        value: float | None,
        op: str,
        threshold: float,
        *,
        control: float | None = None,
        control_name: str | None = None,
    ) -> Claim:
        """A single deterministic value against a threshold (NaN or None never passes): an exact count or a
        closed form, where seeds change nothing. With ``control`` (the same quantity for the control arm, named
        ``control_name``) it passes only when the control does not. Prefer :meth:`difference` or
        :meth:`over_seeds` for anything learned."""
        if op not in OPS:
            raise ValueError(f"claim {id!r}: unknown op {op!r}; expected one of {sorted(OPS)}")

        def ok(v: float | None) -> bool:
            return v is not None and math.isfinite(v) and bool(OPS[op](v, float(threshold)))

        measured = None if value is None else float(value)
        ctrl = None
        if control is not None or control_name is not None:
            if control_name is None:
                raise ValueError(f"claim {id!r}: a control needs a control_name")
            c_value = None if control is None else float(control)
            ctrl = {"name": control_name, "value": c_value, "passed": ok(c_value), "exact": True}
        passed = ok(measured) and not (ctrl and ctrl["passed"])
        return cls(id, statement, measured, op, float(threshold), passed, control=ctrl)

    @classmethod
    def difference(
        cls,
        id: str,
        statement: str,
        *,
        method: Sequence[float],
        control: Sequence[float],
        control_name: str,
        op: str = ">",
        threshold: float = 0.0,
        paired: bool = True,
        level: float = 0.95,
        ci: str = "t",
        seed: int = 0,
    ) -> Claim:
        """The method arm beats the control arm: ``value = mean(method) - mean(control)`` over seeds.

        ``paired`` (the default) takes per-seed differences (the arms share seeds, in the same order);
        otherwise the interval is Welch's t (or an independent bootstrap). ``passed`` is decided on the interval
        bound beyond ``threshold``; the threshold may not favour the method, so equal arms never pass."""
        if op not in (">", ">=", "<", "<="):
            raise ValueError(f"claim {id!r}: a difference claim needs op >, >=, < or <=, got {op!r}")
        threshold = float(threshold)
        if (op in (">", ">=") and threshold < 0) or (op in ("<", "<=") and threshold > 0):
            raise ValueError(
                f"claim {id!r}: threshold {threshold} with {op!r} would let a method equal to its control pass; "
                "state non-inferiority with Claim.over_seeds and a control that fails it"
            )
        m, c = _floats(f"{id} method", method), _floats(f"{id} control", control)
        strict = {">=": ">", "<=": "<"}.get(op, op)  # equal arms (difference exactly 0) must not pass
        if paired:
            if len(m) != len(c):
                raise ValueError(
                    f"claim {id!r}: paired arms need one value per seed each ({len(m)} vs {len(c)})"
                )
            iv = interval([a - b for a, b in zip(m, c, strict=True)], level=level, ci=ci, seed=seed)
        elif ci == "bootstrap":
            iv = bootstrap_ci(m, c, level=level, seed=seed)
        else:
            iv = _welch(m, c, level)
        ok = _bound_passes(strict if threshold == 0 else op, iv, threshold)
        c_iv = interval(c, level=level, ci=ci, seed=seed)
        return cls(
            id,
            statement,
            iv["mean"],
            op,
            threshold,
            ok,
            interval=[iv["lo"], iv["hi"]],
            level=level,
            seeds=len(m),
            values=m,
            control={
                "name": control_name,
                "value": c_iv["mean"],
                "interval": [c_iv["lo"], c_iv["hi"]],
                "values": c,
                "passed": False,  # the control compared with itself has difference 0: it fails by construction
                "paired": paired,
            },
        )

    @classmethod
    def over_seeds(
        cls,
        id: str,
        statement: str,
        *,
        values: Sequence[float],
        op: str,
        threshold: float,
        control: Sequence[float],
        control_name: str,
        level: float = 0.95,
        ci: str = "t",
        seed: int = 0,
    ) -> Claim:
        """The method arm's per-seed ``values`` meet ``op threshold`` on the interval's bound, and the control
        arm's per-seed values, judged the same way, do not. Both conditions make ``passed``."""
        if op not in (">", ">=", "<", "<="):
            raise ValueError(f"claim {id!r}: a claim over seeds needs op >, >=, < or <=, got {op!r}")
        threshold = float(threshold)
        m, c = _floats(f"{id} values", values), _floats(f"{id} control", control)
        iv = interval(m, level=level, ci=ci, seed=seed)
        c_iv = interval(c, level=level, ci=ci, seed=seed)
        method_ok = _bound_passes(op, iv, threshold)
        control_ok = _bound_passes(op, c_iv, threshold)
        return cls(
            id,
            statement,
            iv["mean"],
            op,
            threshold,
            method_ok and not control_ok,
            interval=[iv["lo"], iv["hi"]],
            level=level,
            seeds=len(m),
            values=m,
            control={
                "name": control_name,
                "value": c_iv["mean"],
                "interval": [c_iv["lo"], c_iv["hi"]],
                "values": c,
                "passed": control_ok,
            },
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _welch(a: list[float], b: list[float], level: float) -> dict[str, float]:
    import numpy as np

    x, y = np.asarray(a), np.asarray(b)
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return {"mean": diff, "lo": float("nan"), "hi": float("nan")}
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0:
        return {"mean": diff, "lo": diff, "hi": diff}
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = t_quantile(0.5 + level / 2, max(1, int(df))) * se
    return {"mean": diff, "lo": diff - half, "hi": diff + half}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def format_table(claims: list[Claim]) -> str:
    """A plain-text table of claims for the end of a run: value, interval, test, control and verdict."""
    if not claims:
        return "(no claims)"
    rows = [("claim", "value", "interval", "test", "control", "result")]
    for c in claims:
        iv = f"[{_fmt(c.interval[0])}, {_fmt(c.interval[1])}]" if c.interval else "-"
        ctrl = "-"
        if c.control:
            ctrl = f"{c.control['name']}: {_fmt(c.control['value'])} ({'passes' if c.control['passed'] else 'fails'})"
        rows.append(
            (c.id, _fmt(c.value), iv, f"{c.op} {c.threshold:.4g}", ctrl, "PASS" if c.passed else "FAIL")
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for c in claims:
        seeds = f" ({c.seeds} seeds, {100 * c.level:.0f}% interval)" if c.seeds else ""
        lines.append(f"  {c.id}: {c.statement}{seeds}")
    return "\n".join(lines)
