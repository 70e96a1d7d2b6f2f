"""Which evaluation for which model, and where the catalogue is thin.

The matching rule (reconstructed from the paper's framing; the paper's own procedure was not available):

* an evaluation **fits** a model when every capability it requires is one the model has (and, for each any-of
  group, at least one alternative), and none of its protocol requirements is excluded by the budget
  (``forbid``, for example ``{"human_judges", "fine_tuning"}``);
* it **fits via a cascade** when external components (an ASR front end, a TTS back end; see the vocabulary's
  ``cascade`` entries) supply the missing capabilities, every aspect the evaluation measures survives the cascade
  (``valid_for``), and what the cascade adds to the protocol is within the budget. A cascade only converts
  modalities (it grants *interface* capabilities, never *task* ones): the evaluation must name the task the model
  performs (a capability of kind ``task``: transcription, translation, response generation, ...) and the model
  must have it. An evaluation that names no task (a MOS listening test of any speech) is never reached through
  a cascade: what it would score is the cascade's output, not the model's;
* it is a **near miss** at distance 1 when exactly one capability (or one any-of group) is missing, or when the
  capabilities are all there but the protocol breaks the budget.

Coverage (``gaps``) counts, for each aspect leaf, the evaluations that measure it among those that fit (``count``);
``weight`` shares each evaluation equally among the aspects it measures, so a 40-task suite that touches prosody
once does not count as much as a benchmark about prosody; ``primary`` counts the evaluations built around the
aspect (their first-listed aspect).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

from .catalogue import Taxonomy
from .records import Cascade, Evaluation

FIT, CASCADE, NEAR = "fit", "cascade", "near"


@dataclass(frozen=True)
class Match:
    """How one evaluation relates to a capability set and a budget."""

    key: str
    status: str  # fit | cascade | near | none
    missing: tuple[str, ...] = ()  # capabilities (an unmet any-of group reads "a|b")
    over_budget: tuple[str, ...] = ()  # protocol requirements excluded by the budget
    cascades: tuple[str, ...] = ()
    added_protocol: tuple[str, ...] = ()
    reason: str = ""

    @property
    def distance(self) -> int:
        return len(self.missing) + (1 if self.over_budget else 0)


@dataclass
class WhichResult:
    capabilities: tuple[str, ...]
    forbid: tuple[str, ...]
    fits: list[Match] = field(default_factory=list)
    via_cascade: list[Match] = field(default_factory=list)
    near_misses: list[Match] = field(default_factory=list)

    def keys(self, status: str = FIT) -> list[str]:
        return [m.key for m in {FIT: self.fits, CASCADE: self.via_cascade, NEAR: self.near_misses}[status]]


def missing_capabilities(ev: Evaluation, caps: set[str]) -> list[str]:
    out = [c for c in ev.capabilities_required if c not in caps]
    out += ["|".join(g) for g in ev.capabilities_any_of if not caps.intersection(g)]
    return out


def assess(
    tax: Taxonomy,
    ev: Evaluation,
    capabilities: Iterable[str],
    forbid: Iterable[str] = (),
    cascades: bool = True,
) -> Match:
    """Classify one evaluation against a capability set and a budget (see the module docstring)."""
    caps, forbid = set(capabilities), set(forbid)
    missing = missing_capabilities(ev, caps)
    over = tuple(p for p in ev.protocol if p in forbid)
    needed = _describe_needs(ev)
    if not missing and not over:
        budget = " (within the budget)" if forbid else ""
        return Match(ev.key, FIT, reason=f"has {needed}; protocol {', '.join(ev.protocol)}{budget}")
    if missing and cascades:
        via = _cascade_route(tax, ev, caps, forbid)
        if via is not None:
            names = tuple(c.id for c in via)
            added = tuple(dict.fromkeys(p for c in via for p in c.adds_protocol if p not in ev.protocol))
            grants = sorted({g for c in via for g in c.grants} - caps)
            extra = f"; adds {', '.join(added)}" if added else ""
            return Match(
                ev.key,
                CASCADE,
                missing=tuple(missing),
                cascades=names,
                added_protocol=added,
                reason=f"via {' + '.join(names)} (grants {', '.join(grants)}){extra}",
            )
    if len(missing) + (1 if over else 0) == 1:
        if over:
            reason = f"needs {', '.join(over)} (excluded by the budget)"
        else:
            reason = f"missing {missing[0].replace('|', ' or ')}"
        return Match(ev.key, NEAR, missing=tuple(missing), over_budget=over, reason=reason)
    return Match(ev.key, "none", missing=tuple(missing), over_budget=over)


def _describe_needs(ev: Evaluation) -> str:
    parts = list(ev.capabilities_required) + [" or ".join(g) for g in ev.capabilities_any_of]
    return ", ".join(parts)


def _cascade_route(
    tax: Taxonomy, ev: Evaluation, caps: set[str], forbid: set[str]
) -> tuple[Cascade, ...] | None:
    """The smallest set of cascades that supplies every missing capability within the budget, if any."""
    usable = []
    for c in tax.vocabulary.cascade:
        valid = {leaf for a in c.valid_for for leaf in tax.expand_aspect(a)}
        if set(c.requires) <= caps and set(ev.aspects) <= valid and not set(c.adds_protocol) & forbid:
            usable.append(c)
    if set(ev.protocol) & forbid:
        return None
    if not _does_the_task(tax, ev, caps):
        return None
    for size in range(1, len(usable) + 1):
        for combo in combinations(usable, size):
            granted = caps | {g for c in combo for g in c.grants}
            if missing_capabilities(ev, granted):
                continue
            # every cascade in the route must supply something that was missing
            if all(set(c.grants) - caps for c in combo):
                return combo
    return None


def _does_the_task(tax: Taxonomy, ev: Evaluation, caps: set[str]) -> bool:
    """The evaluation names at least one task capability, and the model itself has every task it names (one of
    each any-of group made of tasks)."""
    tasks = tax.task_capabilities()
    named = [c for c in ev.capabilities_required if c in tasks]
    groups = [g for g in ev.capabilities_any_of if set(g) <= tasks]
    if not named and not groups:
        return False
    return all(c in caps for c in named) and all(caps.intersection(g) for g in groups)


def which(
    tax: Taxonomy,
    capabilities: Iterable[str],
    forbid: Iterable[str] = (),
    aspects: Iterable[str] | None = None,
    cascades: bool = True,
    keys: Iterable[str] | None = None,
) -> WhichResult:
    """The evaluations a model with ``capabilities`` can take under the budget ``forbid``.

    ``aspects`` (leaves or parents) restricts the catalogue to evaluations measuring one of them, ``keys`` to those
    entries (for example a :func:`select` by year, language or task). Results are in vocabulary order of their
    primary aspect, then by year and key.
    """
    only = None if keys is None else set(keys)
    caps = tuple(tax.check_values("capability", capabilities))
    forbid = tuple(tax.check_values("protocol", forbid))
    wanted = None
    if aspects:
        wanted = {leaf for a in aspects for leaf in tax.expand_aspect(a)}
    out = WhichResult(capabilities=caps, forbid=forbid)
    for ev in sorted_evaluations(tax):
        if wanted is not None and not wanted.intersection(ev.aspects):
            continue
        if only is not None and ev.key not in only:
            continue
        m = assess(tax, ev, caps, forbid, cascades=cascades)
        {FIT: out.fits, CASCADE: out.via_cascade, NEAR: out.near_misses}.get(m.status, []).append(m)
    return out


def sorted_evaluations(tax: Taxonomy) -> list[Evaluation]:
    order = {leaf: i for i, leaf in enumerate(tax.leaves)}
    return sorted(tax.evaluations.values(), key=lambda e: (order[e.primary_aspect], e.year, e.key))


# -- coverage -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    aspect: str
    parent: str | None
    count: int  # evaluations measuring it
    weight: float  # each evaluation split equally over its aspects
    primary: int  # evaluations whose primary (first-listed) aspect it is: those built around it
    keys: tuple[str, ...]


@dataclass
class GapReport:
    total: int  # evaluations counted (after the capability and budget filters)
    leaves: list[Coverage]
    parents: list[Coverage]
    threshold: int

    @property
    def thin(self) -> list[Coverage]:
        return [c for c in self.leaves if c.count <= self.threshold]

    def rank(self, aspect: str, by: str = "count") -> tuple[int, int]:
        """1-based rank of ``aspect`` from the least covered, among leaves or among parents, and the pool size.

        Ties share the best (lowest) rank, so an aspect never looks thinner than its equals.
        """
        pool = self.parents if any(c.aspect == aspect for c in self.parents) else self.leaves
        value = {c.aspect: getattr(c, by) for c in pool}
        if aspect not in value:
            raise LookupError(f"no aspect {aspect!r} in the coverage report")
        return 1 + sum(v < value[aspect] for v in value.values()), len(pool)


def counted(
    tax: Taxonomy,
    capabilities: Iterable[str] | None = None,
    forbid: Iterable[str] = (),
    cascades: bool = False,
) -> list[Evaluation]:
    """The evaluations that count for coverage: all of them, or those fitting the capability set and budget."""
    evs = sorted_evaluations(tax)
    forbid = set(tax.check_values("protocol", forbid))
    if capabilities is None:
        return [e for e in evs if not forbid.intersection(e.protocol)]
    caps = tax.check_values("capability", capabilities)
    keep = {FIT, CASCADE} if cascades else {FIT}
    return [e for e in evs if assess(tax, e, caps, forbid, cascades=cascades).status in keep]


def gaps(
    tax: Taxonomy,
    capabilities: Iterable[str] | None = None,
    forbid: Iterable[str] = (),
    threshold: int = 2,
    cascades: bool = False,
    keys: Iterable[str] | None = None,
) -> GapReport:
    """Coverage of every aspect leaf and parent by the evaluations that count (see :func:`counted`), among the
    entries ``keys`` if given (a :func:`select` by year, language or task)."""
    evs = counted(tax, capabilities, forbid, cascades)
    if keys is not None:
        only = set(keys)
        evs = [e for e in evs if e.key in only]
    leaves = []
    for leaf in tax.leaves:
        hits = [e for e in evs if leaf in e.aspects]
        w = sum(1 / len(e.aspects) for e in hits)
        first = sum(e.primary_aspect == leaf for e in hits)
        leaves.append(
            Coverage(leaf, tax.parent_of[leaf], len(hits), round(w, 3), first, tuple(e.key for e in hits))
        )
    parents = []
    for p in tax.parents:
        kids = set(tax.children[p])
        hits = [e for e in evs if kids.intersection(e.aspects)]
        w = sum(c.weight for c in leaves if c.parent == p)
        first = sum(e.primary_aspect in kids for e in hits)
        parents.append(Coverage(p, None, len(hits), round(w, 3), first, tuple(e.key for e in hits)))
    return GapReport(total=len(evs), leaves=leaves, parents=parents, threshold=threshold)


def paper_gap_aspects(tax: Taxonomy) -> list[str]:
    """The aspects the paper names (provenance 'paper'): the gaps it reports."""
    return [a.id for a in tax.vocabulary.aspect if a.provenance == "paper"]


def coverage_matrix(
    tax: Taxonomy, forbid: Iterable[str] = ()
) -> tuple[list[str], list[str], list[list[int]]]:
    """Rows: aspect leaves; columns: all evaluations, then each model profile (direct fits).

    Entry: the number of evaluations measuring the leaf that count for the column.
    """
    forbid = list(forbid)
    columns = ["all"] + list(tax.models)
    sets = [counted(tax, None, forbid)] + [counted(tax, m.capabilities, forbid) for m in tax.models.values()]
    rows = list(tax.leaves)
    matrix = [[sum(leaf in e.aspects for e in evs) for evs in sets] for leaf in rows]
    return rows, columns, matrix


# -- selecting entries (the CLI's `list` and `export` filters, mirrored by the HTML page's script) --------------------


def language_matches(languages: Iterable[str], query: str) -> bool:
    """True if ``query`` is a whole word of one of the entry's languages (case-insensitive), or the entry lists
    ``any`` language. ``en`` matches ``en``; ``English`` matches ``21 languages to English``."""
    import re

    q = query.strip().lower()
    if not q:
        return True
    pattern = re.compile(r"(^|[^a-z0-9])" + re.escape(q) + r"($|[^a-z0-9])")
    return any(x.lower() == "any" or pattern.search(x.lower()) for x in languages)


def task_matches(ev: Evaluation, query: str) -> bool:
    """True if ``query`` occurs (case-insensitive) in the entry's name, key, tasks or metrics."""
    q = query.strip().lower()
    return not q or any(q in x.lower() for x in (ev.key, ev.name, *ev.tasks, *ev.metrics))


def select(
    tax: Taxonomy,
    *,
    aspect: str | None = None,
    capability: str | None = None,
    protocol: str | None = None,
    kind: str | None = None,
    model: str | None = None,
    forbid: Iterable[str] = (),
    year_from: int | None = None,
    year_to: int | None = None,
    language: str | None = None,
    task: str | None = None,
) -> list[Evaluation]:
    """The catalogue filtered like the page's controls; every filter is optional. ``model`` keeps direct fits."""
    evs = counted(tax, None, forbid)
    if aspect:
        leaves = set(tax.expand_aspect(aspect))
        evs = [e for e in evs if leaves.intersection(e.aspects)]
    if capability:
        tax.check_values("capability", [capability])
        evs = [e for e in evs if capability in e.all_capabilities()]
    if protocol:
        tax.check_values("protocol", [protocol])
        evs = [e for e in evs if protocol in e.protocol]
    if kind:
        evs = [e for e in evs if e.kind == kind]
    if model:
        keep = set(which(tax, tax.model(model).capabilities, forbid, cascades=False).keys())
        evs = [e for e in evs if e.key in keep]
    if year_from is not None:
        evs = [e for e in evs if e.year >= year_from]
    if year_to is not None:
        evs = [e for e in evs if e.year <= year_to]
    if language:
        evs = [e for e in evs if language_matches(e.languages, language)]
    if task:
        evs = [e for e in evs if task_matches(e, task)]
    return evs
