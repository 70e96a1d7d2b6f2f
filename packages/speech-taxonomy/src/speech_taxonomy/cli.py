"""``speech-taxonomy``: which evaluation for which model, from the command line.

    speech-taxonomy which --model hubert
    speech-taxonomy which --capabilities speech_input,text_output --no human_judges,fine_tuning
    speech-taxonomy gaps [--model M | --capabilities ...] [--no ...]
    speech-taxonomy show KEY | list [filters] | axes | models | validate | add | export --format ...

Start-up is kept short: this module imports only the standard library; each command imports what it needs
(pydantic when the data is loaded, matplotlib only for the PNG export).
"""

from __future__ import annotations

import argparse
import json
import sys

PROG = "speech-taxonomy"
TOOL_HINT = "uv run --package speech-taxonomy speech-taxonomy --help"


def no_trainer(argv: list[str] | None = None) -> int:
    """The ``paperkit.trainers`` entry: this package has nothing to train; say so in one line.

    Returns 0 for ``--help``/``-h`` (asking for help is not an error) and 2 otherwise, like any command-line
    usage error, so that scripts calling ``train`` for this package fail loudly.
    """
    argv = list(argv or [])
    print(
        f"speech-taxonomy has no trainer: it is a data set and a query tool; run `{TOOL_HINT}`",
        file=sys.stderr,
    )
    return 0 if ("-h" in argv or "--help" in argv) else 2


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _years(value: str) -> tuple[int | None, int | None]:
    """``2024`` -> (2024, 2024); ``2020-2024``; ``2020-`` (from); ``-2019`` (until)."""
    text = value.strip()
    try:
        if "-" not in text:
            return int(text), int(text)
        lo, hi = text.split("-", 1)
        out = (int(lo) if lo.strip() else None, int(hi) if hi.strip() else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a year or a range such as 2020-2024, not {value!r}") from None
    if out == (None, None) or (None not in out and out[0] > out[1]):
        raise argparse.ArgumentTypeError(f"a year or a range such as 2020-2024, not {value!r}")
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Which evaluation for which speech model? The three-axis taxonomy of de Seyssel & Dhekane "
        "(arXiv 2510.19509): evaluation aspect, model capabilities required, task/protocol requirements.",
        epilog="Values of the axes: `speech-taxonomy axes`. Model profiles: `speech-taxonomy models`.",
    )
    p.add_argument(
        "--data", metavar="DIR", help="data folder (default: $SPEECH_TAXONOMY_DATA or the packaged data)"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def who(sp: argparse.ArgumentParser, required: bool) -> None:
        g = sp.add_mutually_exclusive_group(required=required)
        g.add_argument("--model", "-m", help="a model profile: key, alias or prefix (see `models`)")
        g.add_argument(
            "--capabilities", "-c", type=_csv, metavar="A,B,...", help="the capabilities the model has"
        )
        sp.add_argument(
            "--no", type=_csv, default=[], metavar="P,Q,...", help="protocol budget: requirements to exclude"
        )

    def catalogue_filters(sp: argparse.ArgumentParser) -> None:
        g = sp.add_argument_group("restrict the catalogue (optional)")
        g.add_argument("--year", type=_years, metavar="Y|Y1-Y2|Y1-|-Y2", help="first public year, or a range")
        g.add_argument("--language", help="a language as a word of the entry's languages (en, English, ...)")
        g.add_argument(
            "--task", help="text in the entry's name, tasks or metrics (ASR, question answering, ...)"
        )

    s = sub.add_parser("which", help="the evaluations a model can take, grouped by aspect, with near misses")
    who(s, required=True)
    catalogue_filters(s)
    s.add_argument("--aspect", "-a", type=_csv, metavar="A,...", help="only evaluations of these aspects")
    s.add_argument("--no-cascade", action="store_true", help="do not consider cascades (ASR front end, ...)")
    s.add_argument("--no-near", action="store_true", help="leave out the near misses")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("gaps", help="evaluation counts per aspect; the thin aspects")
    who(s, required=False)
    catalogue_filters(s)
    s.add_argument("--threshold", type=int, default=2, help="an aspect with at most this many is thin (2)")
    s.add_argument("--cascade", action="store_true", help="also count fits via a cascade")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("show", help="one evaluation in full")
    s.add_argument("key")
    s.add_argument("--json", action="store_true")

    def filters(sp: argparse.ArgumentParser) -> None:
        g = sp.add_argument_group(
            "filters (all optional, combined with AND; the HTML page has the same ones)"
        )
        g.add_argument("--aspect", "-a", help="aspect leaf or parent")
        g.add_argument("--capability", help="evaluations requiring this capability")
        g.add_argument("--protocol", help="evaluations using this protocol requirement")
        g.add_argument("--kind", choices=("benchmark", "metric", "protocol"))
        g.add_argument("--model", "-m", help="only evaluations that fit this model profile directly")
        g.add_argument(
            "--no", type=_csv, default=[], metavar="P,Q,...", help="exclude these protocol requirements"
        )
        g.add_argument("--year", type=_years, metavar="Y|Y1-Y2|Y1-|-Y2", help="first public year, or a range")
        g.add_argument("--language", help="a language as a word of the entry's languages (en, English, ...)")
        g.add_argument(
            "--task", help="text in the entry's name, tasks or metrics (ASR, question answering, ...)"
        )

    s = sub.add_parser("list", help="the catalogue, filtered (by axis, model, year, language, task)")
    filters(s)
    s.add_argument("--keys", action="store_true", help="print keys only")

    sub.add_parser("axes", help="the three vocabularies with definitions and provenance")
    sub.add_parser("models", help="the example model profiles")
    sub.add_parser("validate", help="check schema, vocabularies, duplicates, consistency and orthogonality")
    s = sub.add_parser(
        "summary", help="the paper's gap statements checked on the catalogue, as the core's summary.json"
    )
    s.add_argument("--out", "-o", help="file to write (default: stdout)")
    s = sub.add_parser("copy-data", help="copy the data folder in use to DIR, to edit or `add` to it")
    s.add_argument("dest", metavar="DIR", help="a folder that does not exist yet")

    s = sub.add_parser("add", help="add an evaluation (guided), validated before it is written")
    s.add_argument(
        "--from", dest="source", metavar="FILE", help="read the entry from a TOML file instead of asking"
    )
    s.add_argument(
        "--file", default="contributed.toml", help="evaluations/FILE to append to (contributed.toml)"
    )
    s.add_argument("--dry-run", action="store_true", help="validate and print, write nothing")
    s.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    s = sub.add_parser(
        "export", help="Markdown, CSV, JSON, a self-contained HTML page, or the coverage heatmap PNG"
    )
    s.add_argument(
        "--format", "-f", required=True, choices=("md", "csv", "json", "html", "png", "bib", "all")
    )
    s.add_argument("--out", "-o", help="output file (a folder for 'all'); md/csv/json/bib default to stdout")
    filters(s)  # bib exports the selection; the other formats export everything
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    from .catalogue import CatalogueError

    try:
        return COMMANDS[args.command](args)
    except CatalogueError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except LookupError as e:
        print(f"{PROG}: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `speech-taxonomy list | head`
        return 0


def _load(args):
    from .catalogue import load

    return load(args.data)


def _who(tax, args) -> tuple[list[str] | None, str]:
    if getattr(args, "model", None):
        m = tax.model(args.model)
        return list(m.capabilities), f"{m.key} ({m.name})"
    if getattr(args, "capabilities", None) is not None:
        return tax.check_values("capability", args.capabilities), "capabilities " + ",".join(
            args.capabilities
        )
    return None, "all evaluations"


def cmd_which(args) -> int:
    from . import match, report

    tax = _load(args)
    caps, who = _who(tax, args)
    res = match.which(
        tax, caps or [], args.no, aspects=args.aspect, cascades=not args.no_cascade, keys=_restrict(tax, args)
    )
    if args.json:
        out = {
            "capabilities": list(res.capabilities),
            "forbid": list(res.forbid),
            **{
                name: [
                    {
                        "key": m.key,
                        "reason": m.reason,
                        "missing": list(m.missing),
                        "over_budget": list(m.over_budget),
                        "cascades": list(m.cascades),
                        "added_protocol": list(m.added_protocol),
                    }
                    for m in ms
                ]
                for name, ms in (
                    ("fits", res.fits),
                    ("via_cascade", res.via_cascade),
                    ("near_misses", res.near_misses),
                )
            },
        }
        print(json.dumps(out, indent=2))
    else:
        title = f"Evaluations for {who}{_restriction_text(args)}"
        print(report.render_which(tax, res, title, near=not args.no_near))
    return 0


def cmd_gaps(args) -> int:
    from . import match, report

    tax = _load(args)
    caps, who = _who(tax, args)
    keys = _restrict(tax, args)
    rep = match.gaps(tax, caps, args.no, threshold=args.threshold, cascades=args.cascade, keys=keys)
    if args.json:
        print(
            json.dumps(
                {
                    "total": rep.total,
                    "threshold": rep.threshold,
                    "leaves": [c.__dict__ | {"keys": list(c.keys)} for c in rep.leaves],
                    "parents": [c.__dict__ | {"keys": list(c.keys)} for c in rep.parents],
                    "thin": [c.aspect for c in rep.thin],
                },
                indent=2,
            )
        )
    else:
        budget = f"; budget excludes {', '.join(args.no)}" if args.no else ""
        print(report.render_gaps(tax, rep, f"Coverage by aspect: {who}{budget}{_restriction_text(args)}"))
    return 0


def cmd_show(args) -> int:
    from . import report

    tax = _load(args)
    ev = tax.evaluation(args.key)
    if args.json:
        print(json.dumps({"file": tax.files[ev.key], **ev.to_dict()}, indent=2))
    else:
        print(report.render_show(tax, ev))
    return 0


def _select(tax, args):
    from . import match

    year_from, year_to = args.year or (None, None)
    return match.select(
        tax,
        aspect=args.aspect,
        capability=args.capability,
        protocol=args.protocol,
        kind=args.kind,
        model=args.model,
        forbid=args.no,
        year_from=year_from,
        year_to=year_to,
        language=args.language,
        task=args.task,
    )


def _restriction_text(args) -> str:
    parts = []
    if args.year:
        lo, hi = args.year
        parts.append(f"years {lo or ''}-{hi or ''}" if lo != hi else f"year {lo}")
    if args.language:
        parts.append(f"language {args.language!r}")
    if args.task:
        parts.append(f"task {args.task!r}")
    return f" (catalogue restricted to {', '.join(parts)})" if parts else ""


def _restrict(tax, args) -> list[str] | None:
    """The keys left by --year/--language/--task (None when none is given)."""
    if not (args.year or args.language or args.task):
        return None
    from . import match

    year_from, year_to = args.year or (None, None)
    return [
        e.key
        for e in match.select(
            tax, year_from=year_from, year_to=year_to, language=args.language, task=args.task
        )
    ]


def cmd_list(args) -> int:
    from . import report

    tax = _load(args)
    evs = _select(tax, args)
    if not evs:
        print("no evaluation matches these filters", file=sys.stderr)
        return 1
    print("\n".join(e.key for e in evs) if args.keys else report.render_list(tax, evs))
    return 0


def cmd_axes(args) -> int:
    from . import report

    print(report.render_axes(_load(args)))
    return 0


def cmd_models(args) -> int:
    from . import report

    print(report.render_models(_load(args)))
    return 0


def cmd_validate(args) -> int:
    from .catalogue import check, default_data_dir

    problems = check(args.data)
    where = args.data or default_data_dir()
    if problems:
        print(f"{PROG}: {len(problems)} problem(s) in {where}:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    tax = _load(args)
    counts = ", ".join(
        f"{len(getattr(tax.vocabulary, a))} {a} values" for a in ("aspect", "capability", "protocol")
    )
    print(
        f"ok: {len(tax.evaluations)} evaluations in {len(set(tax.files.values()))} files, {len(tax.models)} model "
        f"profiles, {counts}; axes orthogonal, no duplicates ({where})"
    )
    return 0


def cmd_summary(args) -> int:
    from .summary import run_summary

    return run_summary(_load(args), args.out)


def cmd_copy_data(args) -> int:
    import shutil
    from pathlib import Path

    from .catalogue import default_data_dir

    src = Path(args.data) if args.data else default_data_dir()
    dest = Path(args.dest)
    if dest.exists():
        raise LookupError(f"{dest} exists already; name a new folder")
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    print(f"copied {src} to {dest}; use it with --data {dest} (or SPEECH_TAXONOMY_DATA={dest})")
    return 0


def cmd_add(args) -> int:
    from .add import run_add

    return run_add(args)


def cmd_export(args) -> int:
    from .export import run_export

    tax = _load(args)
    selection = _select(tax, args) if args.format == "bib" else None
    if selection == []:
        print("no evaluation matches these filters", file=sys.stderr)
        return 1
    return run_export(tax, args.format, args.out, selection)


COMMANDS = {
    "which": cmd_which,
    "gaps": cmd_gaps,
    "show": cmd_show,
    "list": cmd_list,
    "axes": cmd_axes,
    "models": cmd_models,
    "validate": cmd_validate,
    "add": cmd_add,
    "copy-data": cmd_copy_data,
    "summary": cmd_summary,
    "export": cmd_export,
}


if __name__ == "__main__":
    sys.exit(main())
