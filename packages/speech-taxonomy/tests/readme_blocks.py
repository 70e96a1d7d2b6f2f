"""The README's generated blocks: command outputs and tables, kept equal to what the code prints.

Each block sits between ``<!-- begin:NAME -->`` and ``<!-- end:NAME -->``. ``test_readme.py`` fails when one differs;
refresh them all with ``uv run --package speech-taxonomy python packages/speech-taxonomy/tests/readme_blocks.py``.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

COMMANDS = {
    "which-tts": ["which", "-c", "text_input,speech_output,voice_conditioning"],
    "which-hubert": ["which", "--model", "hubert", "--no", "human_judges", "--no-near"],
    "which-moshi": ["which", "--model", "moshi", "--no", "human_judges", "--aspect", "interaction"],
    "gaps": ["gaps"],
}


def _run(argv: list[str]) -> str:
    from speech_taxonomy.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return buf.getvalue()


def _profiles() -> str:
    from speech_taxonomy.catalogue import load
    from speech_taxonomy.match import which

    tax = load()
    out = [
        "| profile | capabilities | fits | via a cascade | near misses |",
        "|---|---|---|---|---|",
    ]
    for m in tax.models.values():
        r = which(tax, m.capabilities)
        via = ", ".join(f"{x.key} ({'+'.join(x.cascades)})" for x in r.via_cascade) or "none"
        out.append(
            f"| `{m.key}` ({m.name}) | {', '.join(m.capabilities)} | {len(r.fits)} | {via} | {len(r.near_misses)} |"
        )
    return "\n".join(out) + "\n"


def _axes() -> str:
    from speech_taxonomy.catalogue import load
    from speech_taxonomy.export import axes_markdown

    return axes_markdown(load())


def render(name: str) -> str:
    if name in COMMANDS:
        argv = COMMANDS[name]
        return f"```\n$ speech-taxonomy {' '.join(argv)}\n{_run(argv)}```\n"
    return {"profiles": _profiles, "axes": _axes}[name]()


NAMES = [*COMMANDS, "profiles", "axes"]


def blocks(text: str) -> dict[str, str]:
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"<!-- begin:([a-z-]+) -->\n(.*?)<!-- end:\1 -->", text, flags=re.S)
    }


def write() -> None:
    text = README.read_text()
    for name in NAMES:
        new = render(name)
        text, n = re.subn(
            rf"(<!-- begin:{name} -->\n).*?(<!-- end:{name} -->)",
            lambda m, new=new: m.group(1) + new + m.group(2),
            text,
            flags=re.S,
        )
        assert n == 1, f"README has no block {name!r}"
    README.write_text(text)


if __name__ == "__main__":
    write()
    print(f"rewrote {len(NAMES)} blocks of {README}", file=sys.stderr)
