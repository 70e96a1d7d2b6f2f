"""The records a loaded taxonomy is made of: plain frozen dataclasses, built without pydantic.

:mod:`speech_taxonomy.schema` holds the same structure as pydantic models; they *validate* raw data (``validate``,
``add``, the first load of a data folder). Once a data folder has validated, reading it again builds these records
directly (see :func:`speech_taxonomy.catalogue.load`), so the command line starts without importing pydantic.
Field names and defaults are the schema's (lists stay lists); :meth:`_Rec.to_dict` equals pydantic's
``model_dump(exclude_none=True)``. Records are frozen: do not mutate their lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

AXES = ("aspect", "capability", "protocol")
AXIS_TITLES = {
    "aspect": "evaluation aspect (axis 1)",
    "capability": "model capability required (axis 2)",
    "protocol": "task or protocol requirement (axis 3)",
}
# which axis each list field of an evaluation draws from
EVALUATION_AXIS_FIELDS = {
    "aspects": "aspect",
    "capabilities_required": "capability",
    "capabilities_any_of": "capability",
    "protocol": "protocol",
}


def _plain(v: Any) -> Any:
    if isinstance(v, _Rec):
        return v.to_dict()
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v


class _Rec:
    _nested: dict[str, type] = {}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, fields whose value is None left out."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = _plain(v)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        kw = {}
        for k, v in d.items():
            sub = cls._nested.get(k)
            if sub is not None and v is not None:
                v = [sub.from_dict(x) for x in v] if isinstance(v, list) else sub.from_dict(v)
            elif isinstance(v, list):
                v = [list(x) if isinstance(x, list | tuple) else x for x in v]
            kw[k] = v
        return cls(**kw)


@dataclass(frozen=True)
class AxisValue(_Rec):
    id: str
    definition: str
    provenance: str
    paper_term: str | None = None
    parent: str | None = None
    # capabilities only: "task" (what the model must do: no cascade can supply it) or "interface" (a modality or
    # a mode of operation, which a cascade may supply)
    kind: str | None = None
    # protocol values only: capabilities every evaluation using this protocol must require
    requires_capability: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Modality(_Rec):
    id: str
    definition: str


@dataclass(frozen=True)
class Cascade(_Rec):
    id: str
    definition: str
    requires: list[str]
    grants: list[str]
    adds_protocol: list[str] = field(default_factory=list)
    valid_for: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Meta(_Rec):
    paper: str
    authors: str
    arxiv: str
    year: int


@dataclass(frozen=True)
class Vocabulary(_Rec):
    meta: Meta
    aspect: list[AxisValue]
    capability: list[AxisValue]
    protocol: list[AxisValue]
    modality: list[Modality]
    cascade: list[Cascade] = field(default_factory=list)

    _nested = {
        "meta": Meta,
        "aspect": AxisValue,
        "capability": AxisValue,
        "protocol": AxisValue,
        "modality": Modality,
        "cascade": Cascade,
    }


@dataclass(frozen=True)
class Citation(_Rec):
    title: str
    year: int
    venue: str | None = None
    arxiv: str | None = None
    doi: str | None = None
    url: str | None = None
    id_source: str | None = None
    authors: str | None = None  # "Surname, Given and Surname, Given" as in BibTeX; optional


@dataclass(frozen=True)
class Links(_Rec):
    """Where to find an evaluation: its paper and, where they exist, code, data and leaderboard (URLs)."""

    paper: str | None = None
    code: str | None = None
    data: str | None = None
    leaderboard: str | None = None


@dataclass(frozen=True)
class EntryProvenance(_Rec):
    classification: str
    source: str
    detail: str = ""


@dataclass(frozen=True)
class Evaluation(_Rec):
    key: str
    name: str
    kind: str
    year: int
    aspects: list[str]
    input: list[str]
    output: list[str]
    capabilities_required: list[str]
    protocol: list[str]
    metrics: list[str]
    languages: list[str]
    confidence: str
    citation: Citation
    provenance: EntryProvenance
    capabilities_any_of: list[list[str]] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    links: Links | None = None
    notes: str = ""

    _nested = {"citation": Citation, "provenance": EntryProvenance, "links": Links}

    @property
    def primary_aspect(self) -> str:
        return self.aspects[0]

    def all_capabilities(self) -> set[str]:
        return set(self.capabilities_required) | {c for g in self.capabilities_any_of for c in g}

    def paper_url(self) -> str | None:
        """The paper's page: the explicit link, else arXiv, else the DOI resolver, else the citation's URL."""
        if self.links and self.links.paper:
            return self.links.paper
        c = self.citation
        if c.arxiv:
            return f"https://arxiv.org/abs/{c.arxiv}"
        if c.doi:
            return f"https://doi.org/{c.doi}"
        return c.url

    def link_map(self) -> dict[str, str]:
        """Every link of the entry, paper first (``paper``, ``code``, ``data``, ``leaderboard``)."""
        out = {}
        if self.paper_url():
            out["paper"] = self.paper_url()
        if self.links:
            for k in ("code", "data", "leaderboard"):
                if getattr(self.links, k):
                    out[k] = getattr(self.links, k)
        return out


@dataclass(frozen=True)
class ModelProfile(_Rec):
    key: str
    name: str
    capabilities: list[str]
    citation: Citation
    aliases: list[str] = field(default_factory=list)
    notes: str = ""

    _nested = {"citation": Citation}
