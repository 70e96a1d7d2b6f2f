"""The README's results table, rendered from a real run's ``summary.json`` so that the two cannot disagree.

A package README holds one block between the markers ``<!-- results:begin -->`` and ``<!-- results:end -->``.
``python -m paperkit.report packages/NAME`` rewrites that block from ``packages/NAME/docs/default-summary.json``
(or another summary with ``--summary``); ``python -m paperkit.report --check packages/NAME`` exits 1 when the
README's block differs from what the summary renders to. Every package's tests call
:func:`readme_mismatch` (through :func:`paperkit.testing.assert_readme_matches_summary`). Torch-free.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
DEFAULT_SUMMARY = Path("docs") / "default-summary.json"


def _num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.4g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_results(summary: dict, *, source: str = "docs/default-summary.json") -> str:
    """Markdown for a summary's claims: one row per claim with its value, interval, test, control and verdict,
    under a line naming the run (preset, date, CPU, GPU, threads, commit)."""
    prov = summary.get("provenance") or {}
    gpu = prov.get("gpu")
    threads = (prov.get("threads") or {}).get("torch") or (prov.get("threads") or {}).get("config")
    where = [
        f"preset `{summary.get('preset')}`",
        f"finished {summary.get('finished', 'n/a')}",
        f"CPU {prov.get('cpu', 'not recorded')}",
    ]
    if gpu:
        where.append(f"GPU {', '.join(gpu)}")
    if threads:
        where.append(f"{threads} thread(s)")
    if prov.get("git_commit"):
        where.append(f"commit {str(prov['git_commit'])[:12]}")
    wall = (summary.get("results") or {}).get("wall_seconds")
    if wall is not None:
        where.append(f"{wall:.0f} s")
    lines = [
        f"Rendered from `{source}` ({'; '.join(where)}).",
        "",
        "| claim | statement | value | interval | test | control (its value) | seeds | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in summary.get("claims", []):
        iv = c.get("interval")
        if iv:
            iv_text = f"[{_num(iv[0])}, {_num(iv[1])}] ({100 * (c.get('level') or 0.95):.0f}%)"
        else:
            iv_text = "exact" if (c.get("control") or {}).get("exact") else "-"
        ctrl = c.get("control")
        ctrl_text = "-"
        if ctrl:
            verdict = "passes too" if ctrl.get("passed") else "fails"
            ctrl_text = f"{ctrl.get('name')}: {_num(ctrl.get('value'))}, {verdict}"
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    f"`{c['id']}`",
                    c.get("statement", ""),
                    f"**{_num(c.get('value'))}**",
                    iv_text,
                    f"{c['op']} {_num(c['threshold'])}",
                    ctrl_text,
                    c.get("seeds") or "-",
                    "PASS" if c.get("passed") else "FAIL",
                )
            )
            + " |"
        )
    return "\n".join(lines)


def _split(readme: str, path: Path) -> tuple[str, str, str]:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise ValueError(f"{path}: needs exactly one {BEGIN} ... {END} block")
    head, rest = readme.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    return head, block, tail


def _load(package_dir: Path, summary: Path | None) -> tuple[Path, Path, dict]:
    package_dir = Path(package_dir)
    readme = package_dir / "README.md"
    summary_path = Path(summary) if summary is not None else package_dir / DEFAULT_SUMMARY
    if not readme.is_file():
        raise FileNotFoundError(f"no README.md in {package_dir}")
    if not summary_path.is_file():
        raise FileNotFoundError(
            f"no summary at {summary_path}: run the default preset and copy its summary.json"
        )
    try:
        data = json.loads(summary_path.read_text())
    except ValueError as e:
        raise ValueError(f"{summary_path} does not parse: {e}") from None
    return readme, summary_path, data


def _source(package_dir: Path, summary_path: Path) -> str:
    try:
        return str(summary_path.resolve().relative_to(Path(package_dir).resolve()))
    except ValueError:
        return summary_path.name


def readme_mismatch(package_dir: Path, summary: Path | None = None) -> str | None:
    """None when the README's results block is what the summary renders to; else a description."""
    readme, summary_path, data = _load(package_dir, summary)
    _, block, _ = _split(readme.read_text(), readme)
    want = render_results(data, source=_source(package_dir, summary_path))
    if block.strip() == want.strip():
        return None
    return (
        f"{readme}'s results block differs from {summary_path}; run: python -m paperkit.report {package_dir}\n"
        f"--- README\n{block.strip()}\n--- rendered\n{want}"
    )


def write_readme(package_dir: Path, summary: Path | None = None) -> Path:
    """Rewrite the README's results block from the summary (atomic)."""
    readme, summary_path, data = _load(package_dir, summary)
    head, _, tail = _split(readme.read_text(), readme)
    text = f"{head}{BEGIN}\n{render_results(data, source=_source(package_dir, summary_path))}\n{END}{tail}"
    tmp = readme.with_name(f".{readme.name}.tmp")
    tmp.write_text(text)
    tmp.replace(readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m paperkit.report", description=__doc__.split("\n\n")[0])
    p.add_argument("package_dir", type=Path, help="the package folder (holds README.md and docs/)")
    p.add_argument("--summary", type=Path, help="summary.json to render (default: docs/default-summary.json)")
    p.add_argument(
        "--check", action="store_true", help="exit 1 when the README's block differs; write nothing"
    )
    a = p.parse_args(argv)
    try:
        if a.check:
            diff = readme_mismatch(a.package_dir, a.summary)
            if diff:
                print(diff, file=sys.stderr)
                return 1
            print(f"{a.package_dir}: README results match the summary")
            return 0
        print(f"wrote {write_readme(a.package_dir, a.summary)}")
    except (OSError, ValueError) as e:
        print(f"paperkit.report: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
