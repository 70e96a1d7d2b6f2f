"""A tiny data folder whose query results are counted by hand in the tests.

Aspects: ling -> {phon, sem}; para -> {pros}; inter (a root that is itself a leaf).
Capabilities: reps, lik, ans (tasks); sp_in, sp_out, tx_in, tx_out (interfaces).
Protocol: zs, probe, ft, humans, refmodel.
Cascade asr_out: a model with sp_out gets tx_out (adds refmodel), valid for linguistic aspects only.

    key         aspects            capabilities            any-of            protocol   file
    e_abx       phon               reps                                      zs         a
    e_probe     phon, sem, pros    reps                                      probe      a
    e_lik       sem                lik                                       zs         a
    e_mos       pros               sp_out                                    humans     a
    e_asr       sem                sp_in, tx_out, ans                        zs         b
    e_any       inter, sem         sp_in, ans              tx_out|sp_out     ft         b
    e_pros_asr  pros, sem          sp_in, tx_out, ans                        zs         b

Models: enc = {reps}; s2s = {sp_in, sp_out, lik, ans}.
"""

from __future__ import annotations

import json
from pathlib import Path


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def tables(name: str, items: list[dict]) -> str:
    out = []
    for item in items:
        out.append(f"[[{name}]]")
        out += [f"{k} = {toml_value(v)}" for k, v in item.items()]
        out.append("")
    return "\n".join(out)


def value(id, definition, provenance="recon", **kw):
    return {"id": id, "definition": definition, "provenance": provenance, **kw}


VOCAB = {
    "meta": {"paper": "A paper", "authors": "A. Author", "arxiv": "2510.19509", "year": 2025},
    "aspect": [
        value("ling", "linguistic things, parent"),
        value("phon", "phonetic discrimination", parent="ling"),
        value("sem", "meaning of what is said", parent="ling"),
        value("para", "paralinguistic things, parent"),
        value("pros", "prosody of the utterance", "paper", paper_term="prosody", parent="para"),
        value("inter", "live interaction, no leaves", "paper", paper_term="interaction"),
    ],
    "capability": [
        value("reps", "frozen representations", kind="task"),
        value("lik", "sequence likelihood", kind="task"),
        value("ans", "answers what is asked", kind="task"),
        value("sp_in", "speech input to a task", kind="interface"),
        value("sp_out", "speech output", "paper", paper_term="speech generation", kind="interface"),
        value("tx_in", "text instructions", kind="interface"),
        value("tx_out", "text output", kind="interface"),
    ],
    "protocol": [
        value("zs", "zero-shot scoring"),
        value("probe", "trained probe on features"),
        value("ft", "fine-tuning data", "paper", paper_term="fine-tuning data"),
        value("humans", "human judgment", "paper", paper_term="human judgment"),
        value("refmodel", "a reference model scores"),
    ],
    "modality": [
        {"id": "speech", "definition": "speech audio"},
        {"id": "text", "definition": "written text"},
        {"id": "embedding", "definition": "features"},
        {"id": "score", "definition": "a likelihood"},
    ],
    "cascade": [
        {
            "id": "asr_out",
            "definition": "transcribe the spoken answer",
            "requires": ["sp_out"],
            "grants": ["tx_out"],
            "adds_protocol": ["refmodel"],
            "valid_for": ["ling"],
        }
    ],
}


def ev(key, aspects, caps, protocol, any_of=(), out=("text",)):
    e = {
        "key": key,
        "name": key.upper(),
        "kind": "benchmark",
        "year": 2024,
        "aspects": list(aspects),
        "input": ["speech"],
        "output": list(out),
        "capabilities_required": list(caps),
        "protocol": list(protocol),
        "metrics": ["accuracy"],
        "languages": ["en"],
        "confidence": "high",
        "citation": {"title": f"The {key} paper", "year": 2024},
        "provenance": {"classification": "recon", "source": "test fixture"},
    }
    if any_of:
        e["capabilities_any_of"] = [list(g) for g in any_of]
    return e


EVALS = {
    "a.toml": [
        ev("e_abx", ["phon"], ["reps"], ["zs"], out=["embedding"]),
        ev("e_probe", ["phon", "sem", "pros"], ["reps"], ["probe"], out=["embedding"]),
        ev("e_lik", ["sem"], ["lik"], ["zs"], out=["score"]),
        ev("e_mos", ["pros"], ["sp_out"], ["humans"], out=["speech"]),
    ],
    "b.toml": [
        ev("e_asr", ["sem"], ["sp_in", "tx_out", "ans"], ["zs"]),
        ev("e_any", ["inter", "sem"], ["sp_in", "ans"], ["ft"], any_of=[["tx_out", "sp_out"]]),
        ev("e_pros_asr", ["pros", "sem"], ["sp_in", "tx_out", "ans"], ["zs"]),
    ],
}

MODELS = [
    {
        "key": "enc",
        "name": "An encoder",
        "aliases": ["encoder"],
        "capabilities": ["reps"],
        "citation": {"title": "Encoder paper", "year": 2021},
    },
    {
        "key": "s2s",
        "name": "A speech-to-speech model",
        "capabilities": ["sp_in", "sp_out", "lik", "ans"],
        "citation": {"title": "S2S paper", "year": 2024, "arxiv": "2410.00037", "id_source": "memory"},
    },
]


def write_data(root: Path, vocab=None, evals=None, models=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    vocab = VOCAB if vocab is None else vocab
    text = "[meta]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in vocab["meta"].items()) + "\n\n"
    for axis in ("aspect", "capability", "protocol", "modality", "cascade"):
        text += tables(axis, vocab.get(axis, []))
    (root / "vocabulary.toml").write_text(text)
    (root / "models.toml").write_text(tables("model", MODELS if models is None else models))
    (root / "evaluations").mkdir(exist_ok=True)
    for name, items in (EVALS if evals is None else evals).items():
        (root / "evaluations" / name).write_text(tables("evaluation", items))
    return root
