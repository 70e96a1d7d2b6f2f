"""Load and validate the taxonomy: vocabularies, the catalogue of evaluations, the model profiles.

A data folder holds ``vocabulary.toml``, ``models.toml`` and ``evaluations/*.toml`` (the package ships one under
``speech_taxonomy/data``; ``--data DIR`` or ``$SPEECH_TAXONOMY_DATA`` points elsewhere). Every problem found is
reported with its file, its entry and its field, all at once::

    evaluations/dialogue.toml: evaluation 'talk_arena' (#7), field 'protocol[0]': 'streaming' is a model
    capability required (axis 2), not a task or protocol requirement (axis 3)
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .schema import (
    AXES,
    AXIS_TITLES,
    EVALUATION_AXIS_FIELDS,
    AxisValue,
    Evaluation,
    ModelProfile,
    Vocabulary,
)

ENV = "SPEECH_TAXONOMY_DATA"
VOCABULARY = "vocabulary.toml"
MODELS = "models.toml"
EVALUATIONS = "evaluations"
JSON_FORMAT = "speech-taxonomy/1"


def default_data_dir() -> Path:
    """The data folder in use: ``$SPEECH_TAXONOMY_DATA`` if set, else the one shipped inside the package."""
    env = os.environ.get(ENV)
    return Path(env) if env else Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data, located by file, entry and field."""

    file: str
    entry: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f", field '{self.field}'" if self.field else ""
        entry = f": {self.entry}" if self.entry else ""
        return f"{self.file}{entry}{where}: {self.message}"


class CatalogueError(ValueError):
    """The data does not validate; ``problems`` lists everything found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        head = f"{len(problems)} problem(s) in the taxonomy data:"
        super().__init__("\n".join([head, *(f"  {p}" for p in problems)]))


# -- the loaded taxonomy ------------------------------------------------------------------------------------------


@dataclass
class Taxonomy:
    """The validated data set, with the lookups the queries need."""

    vocabulary: Vocabulary
    evaluations: dict[str, Evaluation]
    models: dict[str, ModelProfile]
    files: dict[str, str] = field(default_factory=dict)  # evaluation key -> file it came from
    data_dir: Path | None = None

    def axis(self, name: str) -> dict[str, AxisValue]:
        return {v.id: v for v in getattr(self.vocabulary, name)}

    @cached_property
    def children(self) -> dict[str, list[str]]:
        """Parent aspect -> its leaves, in vocabulary order."""
        out: dict[str, list[str]] = {}
        for a in self.vocabulary.aspect:
            if a.parent:
                out.setdefault(a.parent, []).append(a.id)
        return out

    @cached_property
    def leaves(self) -> list[str]:
        return [a.id for a in self.vocabulary.aspect if a.id not in self.children]

    @cached_property
    def parents(self) -> list[str]:
        return [a.id for a in self.vocabulary.aspect if a.id in self.children]

    @cached_property
    def parent_of(self) -> dict[str, str | None]:
        return {a.id: a.parent for a in self.vocabulary.aspect}

    def expand_aspect(self, aspect: str) -> list[str]:
        """A leaf stands for itself, a parent for all its leaves."""
        if aspect in self.children:
            return list(self.children[aspect])
        if aspect in self.parent_of:
            return [aspect]
        raise LookupError(_unknown("aspect", aspect, list(self.parent_of)))

    def check_values(self, axis: str, values: Iterable[str]) -> list[str]:
        """Return ``values`` if all belong to ``axis``, else raise LookupError naming the bad one."""
        known = self.axis(axis)
        values = list(values)
        for v in values:
            if v not in known:
                raise LookupError(_unknown(axis, v, list(known), self._axis_of(v)))
        return values

    def _axis_of(self, value: str) -> str | None:
        for a in AXES:
            if value in self.axis(a):
                return a
        return None

    def model(self, name: str) -> ModelProfile:
        """A model profile by key, alias or unambiguous prefix of either."""
        name = name.strip().lower().replace("-", "_")
        names = {m.key: m for m in self.models.values()}
        names.update({a: m for m in self.models.values() for a in m.aliases})
        if name in names:
            return names[name]
        hits = {m.key for n, m in names.items() if n.startswith(name)}
        if len(hits) == 1:
            return self.models[hits.pop()]
        raise LookupError(
            f"unknown model {name!r}; known: "
            + ", ".join(
                f"{m.key} ({', '.join(m.aliases)})" if m.aliases else m.key for m in self.models.values()
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON-ready data (the JSON export; :func:`from_dict` reads it back)."""
        return {
            "format": JSON_FORMAT,
            "vocabulary": self.vocabulary.model_dump(exclude_none=True),
            "evaluations": [
                {"file": self.files.get(k, ""), **e.model_dump(exclude_none=True)}
                for k, e in self.evaluations.items()
            ],
            "models": [m.model_dump(exclude_none=True) for m in self.models.values()],
        }


# -- loading ------------------------------------------------------------------------------------------------------


def load(data_dir: str | Path | None = None) -> Taxonomy:
    """Load and validate a data folder (default: :func:`default_data_dir`); raise :class:`CatalogueError`."""
    tax, problems = _load(Path(data_dir) if data_dir else default_data_dir())
    if problems:
        raise CatalogueError(problems)
    assert tax is not None
    return tax


def check(data_dir: str | Path | None = None) -> list[Problem]:
    """Every problem in a data folder (empty when it validates)."""
    return _load(Path(data_dir) if data_dir else default_data_dir())[1]


def from_dict(data: dict[str, Any], name: str = "<json>") -> Taxonomy:
    """Rebuild a :class:`Taxonomy` from :meth:`Taxonomy.to_dict` output, validating it like the TOML files."""
    if data.get("format") != JSON_FORMAT:
        raise CatalogueError(
            [Problem(name, "", "format", f"expected {JSON_FORMAT!r}, got {data.get('format')!r}")]
        )
    groups: dict[str, list[dict]] = {}
    for e in data.get("evaluations", []):
        e = dict(e)
        groups.setdefault(e.pop("file", "") or name, []).append(e)
    tax, problems = _build(
        (name, data.get("vocabulary", {})),
        list(groups.items()),
        (name, {"model": data.get("models", [])}),
        None,
    )
    if problems:
        raise CatalogueError(problems)
    assert tax is not None
    return tax


def load_json(path: str | Path) -> Taxonomy:
    path = Path(path)
    return from_dict(json.loads(path.read_text(encoding="utf-8")), path.name)


def _read_toml(path: Path, root: Path, problems: list[Problem]) -> dict:
    rel = path.relative_to(root).as_posix()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(Problem(rel, "", "", "file not found"))
    except tomllib.TOMLDecodeError as e:
        problems.append(Problem(rel, "", "", f"not valid TOML: {e}"))
    return {}


def _load(root: Path) -> tuple[Taxonomy | None, list[Problem]]:
    problems: list[Problem] = []
    if not root.is_dir():
        return None, [Problem(str(root), "", "", "data folder not found")]
    vocab_raw = _read_toml(root / VOCABULARY, root, problems)
    models_raw = _read_toml(root / MODELS, root, problems)
    files = sorted((root / EVALUATIONS).glob("*.toml"))
    if not files:
        problems.append(Problem(f"{EVALUATIONS}/", "", "", "no evaluation files (*.toml)"))
    sources = []
    for f in files:
        raw = _read_toml(f, root, problems)
        rel = f.relative_to(root).as_posix()
        for extra in sorted(set(raw) - {"evaluation"}):
            problems.append(
                Problem(rel, "", extra, "unknown top-level table; a file holds [[evaluation]] entries")
            )
        entries = raw.get("evaluation", [])
        if not isinstance(entries, list):
            problems.append(Problem(rel, "", "evaluation", "must be an array of tables ([[evaluation]])"))
            entries = []
        sources.append((rel, entries))
    if problems:  # unreadable files: report those first
        return None, problems
    tax, more = _build((VOCABULARY, vocab_raw), sources, (MODELS, models_raw), root)
    return tax, more


def _build(
    vocab_src: tuple[str, dict],
    eval_sources: list[tuple[str, list[dict]]],
    models_src: tuple[str, dict],
    root: Path | None,
) -> tuple[Taxonomy | None, list[Problem]]:
    problems: list[Problem] = []
    vname, vraw = vocab_src
    try:
        vocab = Vocabulary.model_validate(vraw)
    except ValidationError as e:
        return None, _pydantic_problems(vname, e, _vocab_entry_label(vraw))
    problems += _check_vocabulary(vname, vocab)
    if problems:
        return None, problems
    tax = Taxonomy(vocabulary=vocab, evaluations={}, models={}, data_dir=root)
    seen: dict[str, str] = {}
    for fname, entries in eval_sources:
        for i, raw in enumerate(entries, 1):
            label = _entry_label("evaluation", raw, i)
            if not isinstance(raw, dict):
                problems.append(Problem(fname, label, "", "an entry must be a table"))
                continue
            try:
                ev = Evaluation.model_validate(raw)
            except ValidationError as e:
                problems += _pydantic_problems(fname, e, lambda _loc, label=label: label)
                continue
            problems += _check_evaluation(fname, label, ev, tax)
            if ev.key in seen:
                problems.append(
                    Problem(fname, label, "key", f"duplicate key {ev.key!r}: also defined in {seen[ev.key]}")
                )
                continue
            seen[ev.key] = f"{fname} ({label})"
            tax.evaluations[ev.key] = ev
            tax.files[ev.key] = fname
    mname, mraw = models_src
    for extra in sorted(set(mraw) - {"model"}):
        problems.append(
            Problem(mname, "", extra, "unknown top-level table; the file holds [[model]] entries")
        )
    names: dict[str, str] = {}
    for i, raw in enumerate(mraw.get("model", []), 1):
        label = _entry_label("model", raw, i)
        try:
            m = ModelProfile.model_validate(raw)
        except ValidationError as e:
            problems += _pydantic_problems(mname, e, lambda _loc, label=label: label)
            continue
        for j, c in enumerate(m.capabilities):
            msg = _axis_problem("capability", c, tax)
            if msg:
                problems.append(Problem(mname, label, f"capabilities[{j}]", msg))
        for n in (m.key, *m.aliases):
            if n in names:
                problems.append(
                    Problem(
                        mname, label, "key" if n == m.key else "aliases", f"name {n!r} is also {names[n]}"
                    )
                )
            names[n] = f"model '{m.key}'"
        tax.models[m.key] = m
    if not tax.models:
        problems.append(Problem(mname, "", "model", "no model profiles"))
    return (None if problems else tax), problems


def check_entry(tax: Taxonomy, raw: Any, fname: str, index: int | None = None) -> list[Problem]:
    """Every problem of one new evaluation entry against a loaded taxonomy (schema, vocabularies, duplicate key)."""
    label = _entry_label("evaluation", raw, index or len(tax.evaluations) + 1)
    if not isinstance(raw, dict):
        return [Problem(fname, label, "", "an entry must be a table")]
    try:
        ev = Evaluation.model_validate(raw)
    except ValidationError as e:
        return _pydantic_problems(fname, e, lambda _loc: label)
    problems = _check_evaluation(fname, label, ev, tax)
    if ev.key in tax.evaluations:
        problems.append(
            Problem(
                fname, label, "key", f"duplicate key {ev.key!r}: also defined in {tax.files.get(ev.key, '?')}"
            )
        )
    return problems


# -- checks -------------------------------------------------------------------------------------------------------


def _unknown(axis: str, value: str, known: list[str], other_axis: str | None = None) -> str:
    if other_axis:
        title = AXIS_TITLES[other_axis]
        return f"{value!r} is {'an' if title[0] in 'aeiou' else 'a'} {title}, not a {AXIS_TITLES[axis]}"
    close = difflib.get_close_matches(value, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {axis} {value!r}{hint}; known: {', '.join(known)}"


def _axis_problem(axis: str, value: str, tax: Taxonomy) -> str | None:
    """None if ``value`` is a valid value of ``axis`` (a leaf, for aspects), else the message."""
    if axis == "aspect" and value in tax.children:
        return f"{value!r} is a parent aspect; name one of its leaves: {', '.join(tax.children[value])}"
    if value in tax.axis(axis):
        return None
    known = tax.leaves if axis == "aspect" else list(tax.axis(axis))
    return _unknown(axis, value, known, tax._axis_of(value))


def _check_evaluation(fname: str, label: str, ev: Evaluation, tax: Taxonomy) -> list[Problem]:
    out = []
    for fld, axis in EVALUATION_AXIS_FIELDS.items():
        values = getattr(ev, fld)
        if fld == "capabilities_any_of":
            items = [(f"{fld}[{g}][{j}]", v) for g, group in enumerate(values) for j, v in enumerate(group)]
        else:
            items = [(f"{fld}[{j}]", v) for j, v in enumerate(values)]
        for where, v in items:
            msg = _axis_problem(axis, v, tax)
            if msg:
                out.append(Problem(fname, label, where, msg))
    modalities = {m.id for m in tax.vocabulary.modality}
    for fld in ("input", "output"):
        for j, v in enumerate(getattr(ev, fld)):
            if v not in modalities:
                other = tax._axis_of(v)
                msg = (
                    f"{v!r} is a value of axis {other!r}, not a modality"
                    if other
                    else _unknown("modality", v, sorted(modalities))
                )
                out.append(Problem(fname, label, f"{fld}[{j}]", msg))
    overlap = set(ev.capabilities_required) & {c for g in ev.capabilities_any_of for c in g}
    if overlap:
        out.append(
            Problem(
                fname,
                label,
                "capabilities_any_of",
                f"{sorted(overlap)} already required: drop the alternative",
            )
        )
    return out


def _check_vocabulary(fname: str, vocab: Vocabulary) -> list[Problem]:
    out: list[Problem] = []
    where: dict[str, str] = {}
    for axis in AXES:
        for i, v in enumerate(getattr(vocab, axis)):
            label = f"{axis} '{v.id}' (#{i + 1})"
            if v.id in where:
                if where[v.id] == axis:
                    out.append(Problem(fname, label, "id", f"duplicate {axis} {v.id!r}"))
                else:
                    out.append(
                        Problem(
                            fname,
                            label,
                            "id",
                            f"{v.id!r} is also a value of axis {where[v.id]!r}: the axes are orthogonal, "
                            "no value may belong to two of them",
                        )
                    )
            where.setdefault(v.id, axis)
            if v.parent and axis != "aspect":
                out.append(Problem(fname, label, "parent", "only aspects are hierarchical"))
    aspects = {a.id: a for a in vocab.aspect}
    for i, a in enumerate(vocab.aspect):
        if a.parent is None:
            continue
        label = f"aspect '{a.id}' (#{i + 1})"
        if a.parent not in aspects:
            out.append(Problem(fname, label, "parent", f"unknown parent aspect {a.parent!r}"))
        elif aspects[a.parent].parent is not None:
            out.append(Problem(fname, label, "parent", f"{a.parent!r} is itself a leaf: two levels only"))
    mods = [m.id for m in vocab.modality]
    for m in sorted({m for m in mods if mods.count(m) > 1}):
        out.append(Problem(fname, f"modality '{m}'", "id", "duplicate modality"))
    for m in mods:
        if m in where:
            out.append(Problem(fname, f"modality '{m}'", "id", f"also a value of axis {where[m]!r}"))
    caps = {c.id for c in vocab.capability}
    prots = {p.id for p in vocab.protocol}
    for i, c in enumerate(vocab.cascade):
        label = f"cascade '{c.id}' (#{i + 1})"
        for fld, known, axis in (
            ("requires", caps, "capability"),
            ("grants", caps, "capability"),
            ("adds_protocol", prots, "protocol"),
            ("valid_for", set(aspects), "aspect"),
        ):
            for j, v in enumerate(getattr(c, fld)):
                if v not in known:
                    out.append(Problem(fname, label, f"{fld}[{j}]", f"unknown {axis} {v!r}"))
    return out


def _entry_label(kind: str, raw: Any, i: int) -> str:
    key = raw.get("key") if isinstance(raw, dict) else None
    return f"{kind} {key!r} (#{i})" if isinstance(key, str) else f"{kind} #{i}"


def _vocab_entry_label(raw: dict):
    def label(loc: tuple) -> str:
        if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(raw.get(loc[0]), list):
            items = raw[loc[0]]
            item = items[loc[1]] if loc[1] < len(items) else {}
            vid = item.get("id") if isinstance(item, dict) else None
            return f"{loc[0]} {vid!r} (#{loc[1] + 1})" if vid else f"{loc[0]} #{loc[1] + 1}"
        return ""

    return label


def _pydantic_problems(fname: str, err: ValidationError, label_of) -> list[Problem]:
    out = []
    for e in err.errors():
        loc = tuple(e["loc"])
        label = label_of(loc)
        # vocabulary errors are located inside one axis list: drop "<axis>, <index>" from the field path
        path = (
            loc[2:]
            if label
            and len(loc) >= 2
            and isinstance(loc[1], int)
            and not label.startswith(("evaluation", "model"))
            else loc
        )
        fld = ""
        for p in path:
            fld += f"[{p}]" if isinstance(p, int) else (f".{p}" if fld else str(p))
        if e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field (not in the schema)"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and not isinstance(e["input"], dict | list):
                msg += f" (got {e['input']!r})"
        out.append(Problem(fname, label, fld, msg))
    return out
