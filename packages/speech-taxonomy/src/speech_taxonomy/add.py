"""``speech-taxonomy add``: a guided new catalogue entry that is validated before anything is written.

Interactive by default (each answer is checked against the vocabularies as it is given); ``--from FILE`` reads the
entry from a TOML file instead. The entry is checked like the catalogue itself (schema, vocabularies, wrong axis,
duplicate key), appended to ``evaluations/<file>`` in TOML, and the whole data folder is validated again; if that
fails the file is restored.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .catalogue import EVALUATIONS, Problem, Taxonomy, check, check_entry, load

ORDER = (
    "key",
    "name",
    "kind",
    "year",
    "aspects",
    "input",
    "output",
    "capabilities_required",
    "capabilities_any_of",
    "protocol",
    "metrics",
    "languages",
    "tasks",
    "confidence",
    "citation",
    "provenance",
    "notes",
)
CITATION_ORDER = ("title", "year", "venue", "arxiv", "doi", "url", "id_source")
PROVENANCE_ORDER = ("classification", "source", "detail")


class Aborted(Exception):
    pass


# -- TOML writing (the few types an entry has) --------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):  # validation refuses float years; other floats are written as TOML floats
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def entry_toml(entry: dict[str, Any]) -> str:
    """One ``[[evaluation]]`` table, fields in the catalogue's order, empty optional fields left out."""
    written: dict[str, Any] = {}
    for k in ORDER:
        if k not in entry or entry[k] in (None, "", []):
            continue
        v = entry[k]
        if k == "citation" and isinstance(v, dict):
            v = {
                f: v[f]
                for f in (*CITATION_ORDER, *sorted(set(v) - set(CITATION_ORDER)))
                if v.get(f) not in (None, "")
            }
        elif k == "provenance" and isinstance(v, dict):
            v = {
                f: v[f]
                for f in (*PROVENANCE_ORDER, *sorted(set(v) - set(PROVENANCE_ORDER)))
                if v.get(f) not in (None, "")
            }
        written[k] = v
    for k in sorted(set(entry) - set(ORDER)):  # kept so that validation names them
        written[k] = entry[k]
    text = "[[evaluation]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in written.items())
    if tomllib.loads(text)["evaluation"][0] != written:  # the writer must round-trip
        raise ValueError("internal error: the TOML writer does not round-trip this entry")
    return text


# -- guided questions ---------------------------------------------------------------------------------------------


def _split(text: str, sep: str) -> list[str]:
    return [x.strip() for x in text.split(sep) if x.strip()]


def ask(
    tax: Taxonomy, input_fn: Callable[[str], str] = input, out=sys.stdout, tries: int = 3
) -> dict[str, Any]:
    """Ask for every field; re-ask (up to ``tries`` times) when an answer does not fit the vocabulary."""
    from .catalogue import _axis_problem

    def say(text: str) -> None:
        print(text, file=out)

    def q(prompt: str, check: Callable[[str], Any], default: str | None = None, help_text: str = ""):
        if help_text:
            say(help_text)
        for _ in range(tries):
            suffix = f" [{default}]" if default is not None else ""
            try:
                raw = input_fn(f"{prompt}{suffix}: ").strip()
            except EOFError as e:
                raise Aborted("input ended before the entry was complete") from e
            if not raw and default is not None:
                raw = default
            try:
                return check(raw)
            except ValueError as e:
                say(f"  ! {e}")
        raise Aborted(f"no valid answer for {prompt!r} after {tries} tries")

    def nonempty(s: str) -> str:
        if not s:
            raise ValueError("an answer is required")
        return s

    def at_least(n: int) -> Callable[[str], str]:
        def f(s: str) -> str:
            if len(s) < n:
                raise ValueError(f"at least {n} characters")
            return s

        return f

    def key(s: str) -> str:
        import re

        if not re.fullmatch(r"[a-z][a-z0-9_]*", s):
            raise ValueError("lower_snake_case: letters, digits and underscores, starting with a letter")
        if s in tax.evaluations:
            raise ValueError(f"{s!r} exists already ({tax.files[s]})")
        return s

    def year(s: str) -> int:
        if not s.isdigit() or not 1900 <= int(s) <= 2100:
            raise ValueError("a year such as 2024")
        return int(s)

    def choice(options) -> Callable[[str], str]:
        def f(s: str) -> str:
            if s not in options:
                raise ValueError(f"one of: {', '.join(options)}")
            return s

        return f

    def values(axis: str, allow_empty: bool = False) -> Callable[[str], list[str]]:
        def f(s: str) -> list[str]:
            items = _split(s, ",")
            if not items and not allow_empty:
                raise ValueError("give at least one value")
            for v in items:
                msg = _axis_problem(axis, v, tax)
                if msg:
                    raise ValueError(msg)
            return items

        return f

    def modalities(s: str) -> list[str]:
        known = [m.id for m in tax.vocabulary.modality]
        items = _split(s, ",")
        bad = [v for v in items if v not in known]
        if not items or bad:
            raise ValueError(f"modalities from: {', '.join(known)}")
        return items

    def groups(s: str) -> list[list[str]]:
        out = []
        for g in _split(s, ";"):
            alts = _split(g, "|")
            if len(alts) < 2:
                raise ValueError(
                    "each group lists alternatives separated by '|', e.g. text_output|speech_output"
                )
            values("capability")(",".join(alts))
            out.append(alts)
        return out

    def items(allow_empty: bool = False) -> Callable[[str], list[str]]:
        def f(s: str) -> list[str]:
            got = _split(s, ";")
            if not got and not allow_empty:
                raise ValueError("give at least one item")
            if any("|" in x for x in got):
                raise ValueError("items may not contain '|'")
            return got

        return f

    def optional(s: str) -> str | None:
        return s or None

    leaves = ", ".join(f"{tax.parent_of[x]}/{x}" if tax.parent_of[x] else x for x in tax.leaves)
    e: dict[str, Any] = {}
    say(
        "New evaluation. Lists are comma-separated (free-text lists: ';'). Axis values: `speech-taxonomy axes`."
    )
    e["key"] = q("key (lower_snake_case)", key)
    e["name"] = q("name", at_least(2))
    e["kind"] = q(
        "kind (benchmark, metric, protocol)", choice(("benchmark", "metric", "protocol")), "benchmark"
    )
    e["year"] = q("year of the first public version", year)
    e["aspects"] = q("aspects, primary first", values("aspect"), help_text=f"  axis 1 leaves: {leaves}")
    mods = ", ".join(m.id for m in tax.vocabulary.modality)
    e["input"] = q(f"input modalities ({mods})", modalities, "speech")
    e["output"] = q(f"output modalities ({mods})", modalities)
    tasks = ", ".join(c.id for c in tax.vocabulary.capability if c.kind == "task")
    plugs = ", ".join(c.id for c in tax.vocabulary.capability if c.kind != "task")
    e["capabilities_required"] = q(
        "capabilities required (all needed)",
        values("capability", allow_empty=True),
        "",
        f"  axis 2, tasks (name the one the model performs): {tasks}\n  axis 2, interfaces: {plugs}",
    )
    e["capabilities_any_of"] = q("alternatives, groups 'a|b' separated by ';' (optional)", groups, "")
    prots = ", ".join(p.id for p in tax.vocabulary.protocol)
    e["protocol"] = q("protocol requirements", values("protocol"), help_text=f"  axis 3: {prots}")
    e["metrics"] = q("metrics (';'-separated)", items())
    e["languages"] = q("languages (';'-separated)", items(), "en")
    e["tasks"] = q("tasks (';'-separated, optional)", items(allow_empty=True), "")
    e["confidence"] = q("confidence (high, medium, low)", choice(("high", "medium", "low")), "medium")
    c: dict[str, Any] = {"title": q("citation title", at_least(3)), "year": q("citation year", year)}
    c["venue"] = q("citation venue (optional)", optional, "")
    say("  Give an arXiv id or DOI only if you have checked it; never guess one.")
    c["arxiv"] = q("arXiv id, e.g. 2409.07437 (optional)", optional, "")
    c["doi"] = q("DOI (optional)", optional, "")
    c["url"] = q("URL (optional)", optional, "")
    if c["arxiv"] or c["doi"]:
        c["id_source"] = q(
            "how was the id confirmed (checked, notes, memory)", choice(("checked", "notes", "memory"))
        )
    e["citation"] = {k: v for k, v in c.items() if v is not None}
    e["provenance"] = {
        "classification": q(
            "classification from the paper or reconstructed (paper, recon)",
            choice(("paper", "recon")),
            "recon",
        ),
        "source": q("source of the facts (3 characters or more)", at_least(3), "contributed"),
        "detail": q("provenance detail (optional)", lambda s: s, ""),
    }
    e["notes"] = q("notes (optional)", lambda s: s, "")
    return {k: v for k, v in e.items() if v not in (None, "", [])}


# -- the command --------------------------------------------------------------------------------------------------


def _read_entry(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise Aborted(f"{path}: not valid TOML: {e}") from e
    except OSError as e:
        raise Aborted(f"{path}: cannot read it ({e.strerror or e})") from e
    if "evaluation" in raw:
        entries = raw["evaluation"]
        if not isinstance(entries, list) or len(entries) != 1:
            raise Aborted(f"{path}: give exactly one [[evaluation]] entry")
        return entries[0]
    return raw


def add_entry(
    tax: Taxonomy, entry: dict[str, Any], file: str, dry_run: bool = False
) -> tuple[str, list[Problem]]:
    """Validate ``entry`` against ``tax``; unless ``dry_run``, append it to ``evaluations/<file>``.

    Returns the TOML text and the problems (nothing is written when there are any).
    """
    if not file.endswith(".toml") or "/" in file or "\\" in file:
        return "", [Problem(file, "", "", "the target is a file name ending in .toml inside evaluations/")]
    rel = f"{EVALUATIONS}/{file}"
    problems = check_entry(tax, entry, rel)
    if problems:
        return "", problems
    text = entry_toml(entry)
    if dry_run:
        return text, []
    assert tax.data_dir is not None, "adding needs a data folder"
    path = tax.data_dir / EVALUATIONS / file
    before = path.read_text(encoding="utf-8") if path.exists() else None
    head = before if before is not None else "# Evaluations added with `speech-taxonomy add`.\n"
    path.write_text(head.rstrip("\n") + "\n\n" + text, encoding="utf-8")
    after = check(tax.data_dir)
    if after:  # should not happen: restore
        if before is None:
            path.unlink()
        else:
            path.write_text(before, encoding="utf-8")
        return "", after
    return text, []


def run_add(args) -> int:
    import os

    from .catalogue import ENV

    if not (args.data or os.environ.get(ENV)) and not args.dry_run:
        print(
            "speech-taxonomy add: name the data folder to write to with --data DIR (or $SPEECH_TAXONOMY_DATA); "
            "without it the entry would go into the installed package's own files. Start a folder of your own "
            "with `speech-taxonomy copy-data DIR`, or, in a checkout of the repository, pass "
            "--data packages/speech-taxonomy/src/speech_taxonomy/data",
            file=sys.stderr,
        )
        return 2
    tax = load(args.data, strict=True)
    try:
        entry = _read_entry(Path(args.source)) if args.source else ask(tax)
    except Aborted as e:
        print(f"speech-taxonomy add: {e}", file=sys.stderr)
        return 1
    text, problems = add_entry(tax, entry, args.file, dry_run=True)
    if problems:
        print(
            f"speech-taxonomy add: the entry does not validate ({len(problems)} problem(s)); nothing written:",
            file=sys.stderr,
        )
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(text, end="")
    if args.dry_run:
        print("(dry run: valid, nothing written)")
        return 0
    target = tax.data_dir / EVALUATIONS / args.file
    if not args.yes:
        try:
            answer = input(f"append to {target}? [y/N] ").strip().lower()
        except EOFError:
            answer = ""
        if answer not in ("y", "yes"):
            print("nothing written")
            return 1
    _, problems = add_entry(tax, entry, args.file)
    if problems:
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"added {entry['key']!r} to {target}")
    return 0
