"""Load and validate the taxonomy: vocabularies, the catalogue of evaluations, the model profiles.

A data folder holds ``vocabulary.toml``, ``models.toml`` and ``evaluations/*.toml`` (the package ships one under
``speech_taxonomy/data``; ``--data DIR`` or ``$SPEECH_TAXONOMY_DATA`` points elsewhere). Every problem found is
reported with its file, its entry and its field, all at once::

    evaluations/dialogue.toml: evaluation 'talk_arena' (#7), field 'protocol[0]': 'streaming' is a model
    capability required (axis 2), not a task or protocol requirement (axis 3)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .records import (
    AXES,
    AXIS_TITLES,
    EVALUATION_AXIS_FIELDS,
    AxisValue,
    Evaluation,
    ModelProfile,
    Vocabulary,
)

ENV = "SPEECH_TAXONOMY_DATA"
CACHE_ENV = "SPEECH_TAXONOMY_CACHE"  # folder for the record of validated data; "off" disables it
ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
VOCABULARY = "vocabulary.toml"
MODELS = "models.toml"
EVALUATIONS = "evaluations"
JSON_FORMAT = "speech-taxonomy/2"  # 2: capability kinds, protocol-implied capabilities, links


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
        if len(hits) > 1:
            raise LookupError(
                f"ambiguous model {name!r}: it starts {', '.join(sorted(hits))}; give more of the name"
            )
        raise LookupError(
            f"unknown model {name!r}; known: "
            + ", ".join(
                f"{m.key} ({', '.join(m.aliases)})" if m.aliases else m.key for m in self.models.values()
            )
        )

    def evaluation(self, name: str) -> Evaluation:
        """An evaluation by key, case- and dash-insensitive (``SUPERB``, ``slue-2``), or by its exact name."""
        if name in self.evaluations:
            return self.evaluations[name]
        norm = name.strip().lower().replace("-", "_").replace(" ", "_")
        if norm in self.evaluations:
            return self.evaluations[norm]
        by_name = [e for e in self.evaluations.values() if e.name.lower() == name.strip().lower()]
        if len(by_name) == 1:
            return by_name[0]
        import difflib

        pool = {k.lower(): k for k in self.evaluations} | {
            e.name.lower(): e.key for e in self.evaluations.values()
        }
        close = dict.fromkeys(pool[c] for c in difflib.get_close_matches(norm, list(pool), n=3, cutoff=0.5))
        close |= dict.fromkeys(k for k in self.evaluations if k.startswith(norm))
        hint = (
            f"; did you mean {', '.join(list(close)[:4])}?"
            if close
            else "; see `speech-taxonomy list --keys`"
        )
        raise LookupError(f"no evaluation {name!r}{hint}")

    def task_capabilities(self) -> set[str]:
        """Capabilities of kind ``task``: what a model must do itself (no cascade may supply them)."""
        return {c.id for c in self.vocabulary.capability if c.kind == "task"}

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON-ready data (the JSON export; :func:`from_dict` reads it back)."""
        return {
            "format": JSON_FORMAT,
            "vocabulary": self.vocabulary.to_dict(),
            "evaluations": [
                {"file": self.files.get(k, ""), **e.to_dict()} for k, e in self.evaluations.items()
            ],
            "models": [m.to_dict() for m in self.models.values()],
        }


# -- loading ------------------------------------------------------------------------------------------------------


def load(data_dir: str | Path | None = None, strict: bool = False) -> Taxonomy:
    """Load and validate a data folder (default: :func:`default_data_dir`); raise :class:`CatalogueError`.

    Validation (pydantic schema, vocabularies, duplicates, consistency) runs the first time a folder's content is
    seen; the validated records are then kept as JSON under the folder's digest (``$SPEECH_TAXONOMY_CACHE``, else
    ``$XDG_CACHE_HOME/speech-taxonomy``, else ``~/.cache/speech-taxonomy``; ``SPEECH_TAXONOMY_CACHE=off`` disables
    it), and later loads of the same bytes read them back, without pydantic or a TOML parser. Any edit changes the
    digest and validates again. ``strict=True`` always validates (``validate`` and ``add`` do).
    """
    root = Path(data_dir) if data_dir else default_data_dir()
    digest = _digest(root)
    if not strict and digest is not None:
        cached = _cached(digest)
        if cached is not None and cached.exists():
            tax = _fast_load(root, digest)
            if tax is not None:
                return tax
    tax, problems = _load(root)
    if problems:
        raise CatalogueError(problems)
    assert tax is not None
    if digest is not None:
        _remember(digest, tax)
    return tax


# -- the record of validated data (for a fast start) --------------------------------------------------------------


def _cache_dir() -> Path | None:
    env = os.environ.get(CACHE_ENV)
    if env:
        return None if env.lower() == "off" else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "speech-taxonomy"


def _data_files(root: Path) -> list[Path]:
    return [root / VOCABULARY, root / MODELS, *sorted((root / EVALUATIONS).glob("*.toml"))]


def _digest(root: Path) -> str | None:
    """sha256 over the data files (names and bytes) and the validating code; None if a file is unreadable."""
    if _cache_dir() is None:
        return None
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    try:
        for f in (here / "schema.py", here / "catalogue.py", here / "records.py"):
            h.update(f.read_bytes())
        for f in _data_files(root):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    except OSError:
        return None
    return h.hexdigest()


def _cached(digest: str) -> Path | None:
    d = _cache_dir()
    return d / f"{digest}.json" if d else None


def _remember(digest: str, tax: Taxonomy) -> None:
    """Record that these bytes validated, with the records as JSON (faster to read back than TOML)."""
    path = _cached(digest)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(tax.to_dict(), ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
        old = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-20]
        for p in old:  # keep the 20 most recent
            p.unlink(missing_ok=True)
    except OSError:  # a read-only home: validate every time
        pass


def _fast_load(root: Path, digest: str | None = None) -> Taxonomy | None:
    """Records of a folder that validated before: from the cached JSON, else straight from its TOML files.

    None on any surprise (the caller then validates)."""
    try:
        cached = _cached(digest) if digest else None
        if cached is not None and cached.exists():
            data = json.loads(cached.read_text(encoding="utf-8"))
            tax = Taxonomy(Vocabulary.from_dict(data["vocabulary"]), {}, {}, data_dir=root)
            for raw in data["evaluations"]:
                raw = dict(raw)
                rel = raw.pop("file")
                ev = Evaluation.from_dict(raw)
                tax.evaluations[ev.key] = ev
                tax.files[ev.key] = rel
            for raw in data["models"]:
                m = ModelProfile.from_dict(raw)
                tax.models[m.key] = m
            return tax
        vocab = Vocabulary.from_dict(tomllib.loads((root / VOCABULARY).read_text(encoding="utf-8")))
        tax = Taxonomy(vocabulary=vocab, evaluations={}, models={}, data_dir=root)
        for f in _data_files(root)[2:]:
            rel = f.relative_to(root).as_posix()
            for raw in tomllib.loads(f.read_text(encoding="utf-8")).get("evaluation", []):
                ev = Evaluation.from_dict(raw)
                tax.evaluations[ev.key] = ev
                tax.files[ev.key] = rel
        for raw in tomllib.loads((root / MODELS).read_text(encoding="utf-8")).get("model", []):
            m = ModelProfile.from_dict(raw)
            tax.models[m.key] = m
        return tax
    except (OSError, ValueError, TypeError, KeyError):
        return None


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
    if problems:  # some files unreadable: still check what could be read, so every problem shows at once
        unreadable = {p.file for p in problems}
        vocab_ok = VOCABULARY not in unreadable
        if vocab_ok:
            _, more = _build((VOCABULARY, vocab_raw), sources, (MODELS, models_raw), root)
        else:
            more = _schema_problems(sources, (MODELS, models_raw) if MODELS not in unreadable else None)
        return None, problems + more
    tax, more = _build((VOCABULARY, vocab_raw), sources, (MODELS, models_raw), root)
    return tax, more


def _schema_problems(
    eval_sources: list[tuple[str, list]], models_src: tuple[str, dict] | None
) -> list[Problem]:
    """Schema problems of entries and models alone: what can be checked when the vocabulary cannot be read."""
    from pydantic import ValidationError

    from . import schema

    out: list[Problem] = []
    for fname, entries in eval_sources:
        for i, raw in enumerate(entries, 1):
            label = _entry_label("evaluation", raw, i)
            try:
                schema.Evaluation.model_validate(raw)
            except ValidationError as e:
                out += _pydantic_problems(fname, e, lambda _loc, label=label: label)
    if models_src is not None:
        mname, mraw = models_src
        for i, raw in enumerate(mraw.get("model", []), 1):
            label = _entry_label("model", raw, i)
            try:
                schema.ModelProfile.model_validate(raw)
            except ValidationError as e:
                out += _pydantic_problems(mname, e, lambda _loc, label=label: label)
    return out


def _record(cls, model):
    """A pydantic model, once validated, as the plain record the rest of the package uses."""
    return cls.from_dict(model.model_dump(exclude_none=True))


def _build(
    vocab_src: tuple[str, dict],
    eval_sources: list[tuple[str, list[dict]]],
    models_src: tuple[str, dict],
    root: Path | None,
) -> tuple[Taxonomy | None, list[Problem]]:
    """Validate raw data strictly (pydantic schema, then the whole-data-set checks) and build the records.

    Every entry is checked in full, whatever else is wrong with it: its schema problems, its vocabulary problems,
    its consistency problems and a duplicate key are all reported in one pass.
    """
    from pydantic import ValidationError

    from . import schema

    problems: list[Problem] = []
    vname, vraw = vocab_src
    try:
        vocab = _record(Vocabulary, schema.Vocabulary.model_validate(vraw))
    except ValidationError as e:
        more = _schema_problems(eval_sources, models_src)
        return None, _pydantic_problems(vname, e, _vocab_entry_label(vraw)) + more
    problems += _check_vocabulary(vname, vocab)
    if problems:  # the entries cannot be checked against a broken vocabulary; their schema can
        return None, problems + _schema_problems(eval_sources, models_src)
    tax = Taxonomy(vocabulary=vocab, evaluations={}, models={}, data_dir=root)
    seen: dict[str, str] = {}
    for fname, entries in eval_sources:
        for i, raw in enumerate(entries, 1):
            label = _entry_label("evaluation", raw, i)
            more, ev = _check_one(tax, raw, fname, label, seen)
            problems += more
            if ev is not None and not more:
                tax.evaluations[ev.key] = ev
                tax.files[ev.key] = fname
            if isinstance(raw, dict) and isinstance(raw.get("key"), str):
                seen.setdefault(raw["key"], f"{fname} ({label})")
    mname, mraw = models_src
    for extra in sorted(set(mraw) - {"model"}):
        problems.append(
            Problem(mname, "", extra, "unknown top-level table; the file holds [[model]] entries")
        )
    names: dict[str, str] = {}
    for i, raw in enumerate(mraw.get("model", []), 1):
        label = _entry_label("model", raw, i)
        try:
            m = _record(ModelProfile, schema.ModelProfile.model_validate(raw))
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


def _check_one(
    tax: Taxonomy, raw: Any, fname: str, label: str, seen: dict[str, str]
) -> tuple[list[Problem], Evaluation | None]:
    """All problems of one raw evaluation entry (schema, vocabularies, consistency, duplicate key)."""
    from pydantic import ValidationError

    from . import schema

    if not isinstance(raw, dict):
        return [Problem(fname, label, "", "an entry must be a table")], None
    problems: list[Problem] = []
    ev = None
    try:
        ev = _record(Evaluation, schema.Evaluation.model_validate(raw))
    except ValidationError as e:
        problems += _pydantic_problems(fname, e, lambda _loc: label)
    problems += _check_evaluation(fname, label, raw, tax)
    key = raw.get("key")
    if isinstance(key, str) and key in seen:
        problems.append(Problem(fname, label, "key", f"duplicate key {key!r}: also defined in {seen[key]}"))
    return problems, ev


def check_entry(tax: Taxonomy, raw: Any, fname: str, index: int | None = None) -> list[Problem]:
    """Every problem of one new evaluation entry against a loaded taxonomy, all at once: schema, vocabularies,
    consistency with the protocol's required capabilities, duplicate key."""
    label = _entry_label("evaluation", raw, index or len(tax.evaluations) + 1)
    seen = {k: tax.files.get(k, "?") for k in tax.evaluations}
    return _check_one(tax, raw, fname, label, seen)[0]


# -- checks -------------------------------------------------------------------------------------------------------


def _unknown(axis: str, value: str, known: list[str], other_axis: str | None = None) -> str:
    import difflib

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


def _ids(values: Any) -> list[tuple[int, str]]:
    """(index, value) of the well-formed identifiers in a raw list (the schema reports the others)."""
    if not isinstance(values, list):
        return []
    return [(j, v) for j, v in enumerate(values) if isinstance(v, str) and ID_RE.match(v)]


def _check_evaluation(fname: str, label: str, raw: dict, tax: Taxonomy) -> list[Problem]:
    """The whole-data-set checks of one raw entry; tolerant of malformed fields (the schema reports those)."""
    out = []
    for fld, axis in EVALUATION_AXIS_FIELDS.items():
        values = raw.get(fld)
        if fld == "capabilities_any_of":
            groups = values if isinstance(values, list) else []
            items = [(f"{fld}[{g}][{j}]", v) for g, group in enumerate(groups) for j, v in _ids(group)]
        else:
            items = [(f"{fld}[{j}]", v) for j, v in _ids(values)]
        for where, v in items:
            msg = _axis_problem(axis, v, tax)
            if msg:
                out.append(Problem(fname, label, where, msg))
    modalities = {m.id for m in tax.vocabulary.modality}
    for fld in ("input", "output"):
        for j, v in _ids(raw.get(fld)):
            if v not in modalities:
                other = tax._axis_of(v)
                msg = (
                    f"{v!r} is a value of axis {other!r}, not a modality"
                    if other
                    else _unknown("modality", v, sorted(modalities))
                )
                out.append(Problem(fname, label, f"{fld}[{j}]", msg))
    required = {v for _, v in _ids(raw.get("capabilities_required"))}
    groups = raw.get("capabilities_any_of") if isinstance(raw.get("capabilities_any_of"), list) else []
    alternatives = {v for g in groups for _, v in _ids(g)}
    overlap = required & alternatives
    if overlap:
        out.append(
            Problem(
                fname,
                label,
                "capabilities_any_of",
                f"{sorted(overlap)} already required: drop the alternative",
            )
        )
    # an evaluation that takes the model's speech input says what the model must do with it
    tasks = tax.task_capabilities()
    if "speech_input" in required | alternatives and not (
        tasks & required or any({v for _, v in _ids(g)} <= tasks and _ids(g) for g in groups)
    ):
        out.append(
            Problem(
                fname,
                label,
                "capabilities_required",
                "an evaluation with speech_input names the task the model performs (a capability of kind "
                f"'task': {', '.join(c.id for c in tax.vocabulary.capability if c.kind == 'task')})",
            )
        )
    # consistency: a protocol that needs a capability of the model needs it in every entry that uses it
    prots = tax.axis("protocol")
    for _, p in _ids(raw.get("protocol")):
        for c in prots[p].requires_capability if p in prots else ():
            if c not in required:
                out.append(
                    Problem(
                        fname,
                        label,
                        "capabilities_required",
                        f"protocol {p!r} needs {c!r} among the required capabilities (every entry using "
                        f"{p!r} requires it, so that entries of the same protocol match the same models)",
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
            if axis == "capability" and v.kind is None:
                out.append(Problem(fname, label, "kind", "a capability is of kind 'task' or 'interface'"))
            if axis != "capability" and v.kind is not None:
                out.append(Problem(fname, label, "kind", "only capabilities have a kind"))
            if axis != "protocol" and v.requires_capability:
                out.append(Problem(fname, label, "requires_capability", "only protocol values have it"))
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
    caps = {c.id: c for c in vocab.capability}
    prots = {p.id for p in vocab.protocol}
    for i, p in enumerate(vocab.protocol):
        for j, c in enumerate(p.requires_capability):
            if c not in caps:
                label = f"protocol '{p.id}' (#{i + 1})"
                out.append(Problem(fname, label, f"requires_capability[{j}]", f"unknown capability {c!r}"))
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
        for j, g in enumerate(c.grants):
            if g in caps and caps[g].kind == "task":
                out.append(
                    Problem(
                        fname,
                        label,
                        f"grants[{j}]",
                        f"{g!r} is a task capability: a cascade converts modalities, the model must do the "
                        "task itself",
                    )
                )
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


def _pydantic_problems(fname: str, err, label_of) -> list[Problem]:
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
