"""The record types of the taxonomy, as pydantic models.

Structure (types, required fields, identifier formats, no unknown fields) is checked here. Whether a value belongs
to the right vocabulary, duplicate keys and the orthogonality of the axes need the whole data set: they are checked
in :mod:`speech_taxonomy.catalogue`, which reports every problem with its file, entry and field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from .records import AXES, AXIS_TITLES, EVALUATION_AXIS_FIELDS  # noqa: F401  (re-exported)

Id = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
# list items must not contain '|' (the CSV list separator) nor line breaks
Item = Annotated[str, StringConstraints(min_length=1, pattern=r"^[^|\n]+$")]
Provenance = Literal["paper", "recon"]
# a year is an integer in the data (TOML 2024, not 2024.0 nor "2024")
Year = Annotated[StrictInt, Field(ge=1900, le=2100)]
# a web address: http(s), a host with a dot, no spaces
Url = Annotated[str, StringConstraints(pattern=r"^https?://[A-Za-z0-9.-]+\.[A-Za-z]{2,}(:\d+)?(/\S*)?$")]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_repeats(values: list) -> list:
    seen = set()
    for v in values:
        key = tuple(v) if isinstance(v, list) else v
        if key in seen:
            raise ValueError(f"{v!r} is listed twice")
        seen.add(key)
    return values


# -- vocabularies -------------------------------------------------------------------------------------------------


class AxisValue(_Record):
    """One value of one axis, with its one-line definition and where it comes from."""

    id: Id
    definition: str = Field(min_length=10)
    provenance: Provenance
    paper_term: str | None = None
    parent: Id | None = None  # aspects only: the parent of a leaf
    # capabilities only: "task" (what the model must do itself; no cascade may grant it) or "interface"
    kind: Literal["task", "interface"] | None = None
    # protocol values only: capabilities that every evaluation using this protocol requires
    requires_capability: list[Id] = []

    @model_validator(mode="after")
    def _paper_term(self):
        if self.provenance == "paper" and not self.paper_term:
            raise ValueError("a value with provenance 'paper' quotes the paper's term in paper_term")
        if self.provenance == "recon" and self.paper_term:
            raise ValueError("paper_term is only for values with provenance 'paper'")
        return self


class Modality(_Record):
    id: Id
    definition: str = Field(min_length=5)


class Cascade(_Record):
    """An external component that grants capabilities a model lacks (an ASR front end, a TTS back end)."""

    id: Id
    definition: str = Field(min_length=10)
    requires: list[Id] = Field(min_length=1)
    grants: list[Id] = Field(min_length=1)
    adds_protocol: list[Id] = []
    valid_for: list[Id] = Field(min_length=1)


class Meta(_Record):
    paper: str
    authors: str
    arxiv: str
    year: Year


class Vocabulary(_Record):
    meta: Meta
    aspect: list[AxisValue] = Field(min_length=1)
    capability: list[AxisValue] = Field(min_length=1)
    protocol: list[AxisValue] = Field(min_length=1)
    modality: list[Modality] = Field(min_length=1)
    cascade: list[Cascade] = []


# -- catalogue ----------------------------------------------------------------------------------------------------


class Citation(_Record):
    """Where an evaluation (or a model) is published. Identifiers only where confirmed; see ``id_source``."""

    title: str = Field(min_length=3)
    year: Year
    venue: str | None = None
    arxiv: str | None = Field(default=None, pattern=r"^\d{4}\.\d{4,5}$")
    doi: str | None = Field(default=None, pattern=r"^10\.\d{4,9}/\S+$")
    url: Url | None = None
    # how the identifier was confirmed: checked (seen in an indexed copy of the paper's page), notes (listed in the
    # project's research notes as seen in indexed sources), memory (recalled, not re-checked)
    id_source: Literal["checked", "notes", "memory"] | None = None
    # for BibTeX: "Surname, Given and Surname, Given" (optional; the export writes the first author et al. if set)
    authors: str | None = Field(default=None, min_length=3)

    @model_validator(mode="after")
    def _id_source(self):
        has_id = bool(self.arxiv or self.doi)
        if has_id and self.id_source is None:
            raise ValueError("id_source is required with an arXiv id or DOI (checked, notes or memory)")
        if self.id_source is not None and not has_id:
            raise ValueError("id_source given but there is no arXiv id or DOI")
        return self


class Links(_Record):
    """Where to find an evaluation: its paper (default: from the citation's arXiv id or DOI), code, data and
    leaderboard. URLs are validated for form only (no network)."""

    paper: Url | None = None
    code: Url | None = None
    data: Url | None = None
    leaderboard: Url | None = None


class EntryProvenance(_Record):
    """Where an entry's classification comes from: the paper's own table, or a reconstruction."""

    classification: Provenance
    source: str = Field(min_length=3)
    detail: str = ""


class Evaluation(_Record):
    """One evaluation or benchmark, classified along the three axes."""

    key: Id
    name: str = Field(min_length=2)
    kind: Literal["benchmark", "metric", "protocol"]
    year: Year
    aspects: list[Id] = Field(min_length=1)
    input: list[Id] = Field(min_length=1)
    output: list[Id] = Field(min_length=1)
    capabilities_required: list[Id]
    capabilities_any_of: list[list[Id]] = []
    protocol: list[Id] = Field(min_length=1)
    metrics: list[Item] = Field(min_length=1)
    languages: list[Item] = Field(min_length=1)
    tasks: list[Item] = []
    confidence: Literal["high", "medium", "low"]
    citation: Citation
    provenance: EntryProvenance
    links: Links | None = None
    notes: str = ""

    _unique = field_validator(
        "aspects", "input", "output", "capabilities_required", "capabilities_any_of", "protocol", "metrics"
    )(_no_repeats)

    @field_validator("capabilities_any_of")
    @classmethod
    def _groups(cls, groups: list[list[str]]) -> list[list[str]]:
        for g in groups:
            if len(g) < 2:
                raise ValueError(f"an any-of group lists at least two alternatives, got {g}")
        return groups

    @model_validator(mode="after")
    def _needs_something(self):
        if not self.capabilities_required and not self.capabilities_any_of:
            raise ValueError("capabilities_required or capabilities_any_of must name at least one capability")
        return self

    @property
    def primary_aspect(self) -> str:
        return self.aspects[0]

    def all_capabilities(self) -> set[str]:
        return set(self.capabilities_required) | {c for g in self.capabilities_any_of for c in g}


class ModelProfile(_Record):
    """An example model: the capabilities it exposes, and the paper it stands for."""

    key: Id
    name: str
    aliases: list[Id] = []
    capabilities: list[Id] = Field(min_length=1)
    citation: Citation
    notes: str = ""

    _unique = field_validator("aliases", "capabilities")(_no_repeats)
