"""The command line: answers, errors in one line, guided add that validates before writing, and `train`."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from speech_taxonomy.add import ask, entry_toml
from speech_taxonomy.catalogue import check, load
from speech_taxonomy.cli import main, no_trainer


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_which_text_groups_by_aspect_with_reasons_and_near_misses(capsys, mini):
    code, out, _ = run(capsys, "--data", str(mini), "which", "--model", "s2s", "--no", "humans")
    assert code == 0
    assert "FITS (2), by primary aspect" in out
    assert "  ling / sem\n    e_lik" in out and "  inter\n    e_any" in out
    assert "e_lik       E_LIK (2024) - has lik; protocol zs (within the budget)" in out
    assert (
        "FITS VIA A CASCADE (1)" in out
        and "e_asr" in out
        and "via asr_out (grants tx_out); adds refmodel" in out
    )
    assert "needs humans (excluded by the budget) (1):\n    e_mos" in out
    assert "missing reps (2):\n    e_abx, e_probe" in out


def test_which_json_matches_the_library(capsys, mini):
    code, out, _ = run(capsys, "--data", str(mini), "which", "-c", "reps,lik", "--json")
    data = json.loads(out)
    assert code == 0 and [m["key"] for m in data["fits"]] == ["e_abx", "e_probe", "e_lik"]
    assert [m["key"] for m in data["near_misses"]] == ["e_mos"]
    assert data["near_misses"][0]["missing"] == ["sp_out"]


def test_which_needs_a_model_or_capabilities(capsys, mini):
    with pytest.raises(SystemExit) as e:
        main(["--data", str(mini), "which"])
    assert e.value.code == 2


def test_unknown_names_are_one_line_errors(capsys, mini):
    for argv, text in (
        (["which", "-m", "nobody"], "unknown model 'nobody'"),
        (["which", "-c", "reps,humans"], "'humans' is a task or protocol requirement"),
        (["show", "e_ab"], "no evaluation 'e_ab'; did you mean e_abx"),
        (["list", "--aspect", "nope"], "unknown aspect 'nope'"),
    ):
        code, out, err = run(capsys, "--data", str(mini), *argv)
        assert code == 2 and out == "" and err.count("\n") == 1 and text in err, (argv, err)


def test_gaps_text_and_json(capsys, mini):
    code, out, _ = run(capsys, "--data", str(mini), "gaps")
    assert code == 0
    assert "THIN ASPECTS (count <= 2): 2\n  inter (1), phon (2)" in out
    assert "pros           count   3, primary  2; rank among leaves by count 3/4" in out
    code, out, _ = run(capsys, "--data", str(mini), "gaps", "-m", "s2s", "--no", "humans", "--json")
    data = json.loads(out)
    assert data["total"] == 2 and {c["aspect"]: c["count"] for c in data["leaves"]}["sem"] == 2


def test_show_and_list(capsys, mini):
    code, out, _ = run(capsys, "--data", str(mini), "show", "e_any")
    assert code == 0 and "one of: tx_out, sp_out" in out and "file: evaluations/b.toml" in out
    assert "model profiles it fits: s2s" in out
    code, out, _ = run(capsys, "--data", str(mini), "show", "e_any", "--json")
    assert json.loads(out)["capabilities_any_of"] == [["tx_out", "sp_out"]]
    code, out, _ = run(capsys, "--data", str(mini), "list", "--aspect", "ling", "--no", "zs", "--keys")
    assert out.split() == ["e_probe", "e_any"]
    code, out, _ = run(capsys, "--data", str(mini), "list", "--model", "enc", "--keys")
    assert out.split() == ["e_abx", "e_probe"]
    code, out, _ = run(capsys, "--data", str(mini), "list", "--capability", "tx_out", "--keys")
    assert out.split() == ["e_asr", "e_pros_asr", "e_any"]


def test_list_filters_by_year_language_task(capsys):
    from speech_taxonomy.catalogue import load
    from speech_taxonomy.match import select

    tax = load()
    code, out, _ = run(capsys, "list", "--year", "2019-2020", "--keys")
    assert code == 0 and out.split() == [e.key for e in select(tax, year_from=2019, year_to=2020)]
    assert all(2019 <= tax.evaluations[k].year <= 2020 for k in out.split())
    code, out, _ = run(capsys, "list", "--year", "2025-", "--task", "duplex", "--keys")
    assert set(out.split()) == {"full_duplex_bench", "full_duplex_bench_v15"}
    code, out, _ = run(capsys, "list", "--language", "fr", "--keys")
    assert "lebenchmark" in out.split() and "pesq" in out.split()  # French, and 'any' language
    assert "esb" not in out.split()
    code, out, err = run(capsys, "list", "--year", "2031")
    assert code == 1 and err.strip() == "no evaluation matches these filters"


def test_which_and_gaps_restricted_by_year_language_task(capsys):
    from speech_taxonomy.catalogue import load
    from speech_taxonomy.match import gaps, select, which

    tax = load()
    code, out, _ = run(capsys, "which", "-m", "whisper", "--task", "translation", "--json")
    res = json.loads(out)
    keep = {e.key for e in select(tax, task="translation")}
    full = which(tax, tax.model("whisper").capabilities)
    assert code == 0 and [m["key"] for m in res["fits"]] == [k for k in full.keys("fit") if k in keep]
    assert {"covost2", "must_c"} <= {m["key"] for m in res["fits"]} and "open_asr" not in out
    code, out, _ = run(capsys, "gaps", "--year", "2024-", "--json")
    rep = json.loads(out)
    recent = [e.key for e in select(tax, year_from=2024)]
    assert rep["total"] == len(recent) == gaps(tax, keys=recent).total < len(tax.evaluations)
    code, out, _ = run(capsys, "gaps", "--year", "2024-")
    assert out.startswith("Coverage by aspect: all evaluations (catalogue restricted to years 2024-)")


def test_year_argument_is_checked(capsys):
    with pytest.raises(SystemExit) as e:
        main(["list", "--year", "2024-2020"])
    assert e.value.code == 2
    assert "a year or a range such as 2020-2024" in capsys.readouterr().err


def test_export_bibtex_of_a_selection(capsys, tmp_path):
    code, out, _ = run(capsys, "export", "--format", "bib", "--aspect", "prosody", "--no", "human_judges")
    from speech_taxonomy.catalogue import load
    from speech_taxonomy.match import select

    expected = [e.key for e in select(load(), aspect="prosody", forbid=["human_judges"])]
    assert code == 0 and [line[6:-1] for line in out.splitlines() if line.startswith("@misc{")] == expected
    code, out, _ = run(capsys, "export", "-f", "bib", "--model", "tts", "-o", str(tmp_path / "tts.bib"))
    assert code == 0 and (tmp_path / "tts.bib").read_text().count("@misc{") >= 8


def test_validate(capsys, mini):
    code, out, _ = run(capsys, "--data", str(mini), "validate")
    assert code == 0 and out.startswith("ok: 7 evaluations in 2 files, 2 model profiles")
    text = (mini / "evaluations" / "a.toml").read_text().replace('protocol = ["zs"]', 'protocol = ["lik"]', 1)
    (mini / "evaluations" / "a.toml").write_text(text)
    code, out, err = run(capsys, "--data", str(mini), "validate")
    assert code == 1 and "1 problem(s)" in err
    assert (
        "evaluations/a.toml: evaluation 'e_abx' (#1), field 'protocol[0]': 'lik' is a model capability" in err
    )
    code, out, err = run(capsys, "--data", str(mini), "which", "-m", "enc")
    assert code == 1 and "protocol[0]" in err


def test_export_to_stdout_and_files(capsys, mini, tmp_path):
    code, out, _ = run(capsys, "--data", str(mini), "export", "-f", "json")
    assert code == 0 and len(json.loads(out)["evaluations"]) == 7
    code, out, _ = run(capsys, "--data", str(mini), "export", "-f", "all", "-o", str(tmp_path / "x"))
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [
        "coverage.png",
        "speech-taxonomy.bib",
        "speech-taxonomy.csv",
        "speech-taxonomy.html",
        "speech-taxonomy.json",
        "speech-taxonomy.md",
    ]


# -- add ----------------------------------------------------------------------------------------------------------

NEW = {
    "key": "e_new",
    "name": "A new benchmark",
    "kind": "benchmark",
    "year": 2025,
    "aspects": ["pros"],
    "input": ["speech"],
    "output": ["text"],
    "capabilities_required": ["sp_in", "tx_out"],
    "protocol": ["zs"],
    "metrics": ["accuracy"],
    "languages": ["en"],
    "confidence": "medium",
    "citation": {
        "title": "A new benchmark paper",
        "year": 2025,
        "arxiv": "2501.00001",
        "id_source": "checked",
    },
    "provenance": {"classification": "recon", "source": "test"},
    "notes": 'quotes " and backslashes \\ survive',
}


def write_entry(path: Path, entry: dict) -> Path:
    path.write_text(entry_toml(entry))
    return path


def test_add_from_file_appends_and_validates(capsys, mini, tmp_path):
    src = write_entry(tmp_path / "new.toml", NEW)
    code, out, err = run(capsys, "--data", str(mini), "add", "--from", str(src), "--yes")
    assert code == 0, err
    assert f"added 'e_new' to {mini / 'evaluations' / 'contributed.toml'}" in out
    tax = load(mini)
    defaults = {"capabilities_any_of": [], "tasks": [], "provenance": {**NEW["provenance"], "detail": ""}}
    assert tax.evaluations["e_new"].to_dict() == {**NEW, **defaults}
    assert tax.files["e_new"] == "evaluations/contributed.toml"
    # a second add of the same key is refused, nothing written
    before = (mini / "evaluations" / "contributed.toml").read_text()
    code, out, err = run(capsys, "--data", str(mini), "add", "--from", str(src), "--yes")
    assert code == 1 and "duplicate key 'e_new'" in err
    assert (mini / "evaluations" / "contributed.toml").read_text() == before


def test_add_rejects_a_bad_entry_without_writing(capsys, mini, tmp_path):
    bad = {**NEW, "capabilities_required": ["sp_in", "humans"]}
    bad.pop("citation")
    src = write_entry(tmp_path / "bad.toml", bad)
    code, out, err = run(capsys, "--data", str(mini), "add", "--from", str(src), "--yes", "--file", "a.toml")
    assert code == 1
    assert "field 'citation': required field is missing" in err
    assert "evaluations/a.toml" in err
    assert not (mini / "evaluations" / "contributed.toml").exists()
    assert check(mini) == []


def test_add_without_a_data_folder_refuses_to_write_into_the_package(capsys, mini, tmp_path, monkeypatch):
    monkeypatch.delenv("SPEECH_TAXONOMY_DATA", raising=False)
    from speech_taxonomy.catalogue import default_data_dir

    before = sorted(p.name for p in (default_data_dir() / "evaluations").iterdir())
    src = write_entry(tmp_path / "new.toml", NEW)
    code, out, err = run(capsys, "add", "--from", str(src), "--yes")
    assert code == 2 and "--data DIR" in err and "copy-data" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (default_data_dir() / "evaluations").iterdir()) == before


def test_copy_data_then_add(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SPEECH_TAXONOMY_DATA", raising=False)
    code, out, _ = run(capsys, "copy-data", str(tmp_path / "mine"))
    assert code == 0 and (tmp_path / "mine" / "vocabulary.toml").exists()
    assert check(tmp_path / "mine") == []
    code, _, err = run(capsys, "copy-data", str(tmp_path / "mine"))
    assert code == 2 and "exists already" in err


def test_add_names_the_file_of_invalid_toml(capsys, mini, tmp_path):
    src = tmp_path / "broken.toml"
    src.write_text("[[evaluation]]\nkey = 'x\n")
    code, _, err = run(capsys, "--data", str(mini), "add", "--from", str(src), "--yes")
    assert code == 1 and err.startswith(f"speech-taxonomy add: {src}: not valid TOML")
    code, _, err = run(capsys, "--data", str(mini), "add", "--from", str(tmp_path / "absent.toml"))
    assert code == 1 and str(tmp_path / "absent.toml") in err and "Traceback" not in err


def test_add_with_a_float_year_is_a_problem_not_a_traceback(capsys, mini, tmp_path):
    src = tmp_path / "float.toml"
    src.write_text(entry_toml(NEW).replace("\nyear = 2025", "\nyear = 2025.0", 1))
    assert "\nyear = 2025.0" in src.read_text()
    code, _, err = run(capsys, "--data", str(mini), "add", "--from", str(src), "--yes")
    assert code == 1 and "field 'year': Input should be a valid integer (got 2025.0)" in err
    assert not (mini / "evaluations" / "contributed.toml").exists()


def test_show_is_case_insensitive_and_suggests(capsys):
    code, out, _ = run(capsys, "show", "SUPERB")
    assert code == 0 and out.startswith("SUPERB  (superb, benchmark, 2021)")
    code, _, err = run(capsys, "show", "superbb")
    assert code == 2 and err.startswith(
        "speech-taxonomy: error: no evaluation 'superbb'; did you mean superb"
    )


def test_add_dry_run_writes_nothing(capsys, mini, tmp_path):
    src = write_entry(tmp_path / "new.toml", NEW)
    code, out, _ = run(capsys, "--data", str(mini), "add", "--from", str(src), "--dry-run")
    assert code == 0 and out.startswith('[[evaluation]]\nkey = "e_new"') and "dry run" in out
    assert not (mini / "evaluations" / "contributed.toml").exists()


def test_guided_questions_reask_until_valid(mini):
    answers = iter(
        [
            "e_guided",
            "Guided",
            "",
            "2024",
            "ling, pros",  # a parent: refused
            "pros, sem",
            "",
            "text",
            "sp_in, tx_out",
            "",
            "zs, reps",  # reps is a capability: refused
            "zs",
            "accuracy; F1",
            "",
            "",
            "",
            "A title",
            "2024",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
    )
    out = io.StringIO()
    entry = ask(load(mini), input_fn=lambda prompt: next(answers), out=out)
    shown = out.getvalue()
    assert "'ling' is a parent aspect" in shown and "'reps' is a model capability required" in shown
    assert entry["aspects"] == ["pros", "sem"] and entry["protocol"] == ["zs"]
    assert entry["metrics"] == ["accuracy", "F1"] and entry["kind"] == "benchmark"
    assert entry["provenance"] == {"classification": "recon", "source": "contributed", "detail": ""}
    assert "arxiv" not in entry["citation"]
    assert tomllib.loads(entry_toml(entry))["evaluation"][0]["key"] == "e_guided"


def test_guided_add_through_the_console_script(mini):
    exe = shutil.which("speech-taxonomy", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("console script not installed next to this Python")
    answers = (
        "\n".join(
            [
                "e_typed",
                "Typed in",
                "metric",
                "2023",
                "sem",
                "speech",
                "text",
                "sp_in, tx_out",
                "",
                "zs",
                "WER",
                "en",
                "",
                "high",
                "Typed paper",
                "2023",
                "",
                "",
                "",
                "",
                "recon",
                "me",
                "my reading",
                "",
                "",
                "y",
            ]
        )
        + "\n"
    )
    r = subprocess.run([exe, "--data", str(mini), "add"], input=answers, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert load(mini).evaluations["e_typed"].kind == "metric"
    r = subprocess.run(
        [exe, "--data", str(mini), "add"], input="e_half\nHalf\n", capture_output=True, text=True
    )
    assert r.returncode == 1 and "input ended before the entry was complete" in r.stderr


# -- train --------------------------------------------------------------------------------------------------------


def test_no_trainer_says_so_in_one_line(capsys):
    assert no_trainer([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no trainer" in err and "uv run --package speech-taxonomy speech-taxonomy --help" in err
    assert no_trainer(["--help"]) == 0


def test_dispatcher_selects_this_package_and_stops(capsys):
    from paperkit import dispatch

    assert "speech-taxonomy" in dispatch.trainers()
    assert dispatch.main(["--trainer", "speech-taxonomy"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("speech-taxonomy has no trainer") and err.count("\n") == 1
    assert dispatch.main(["--trainer", "speech-taxonomy", "--help"]) == 0
    out, err = capsys.readouterr()
    assert "train: trainer 'speech-taxonomy', chosen by --trainer." in out


def test_train_console_script(tmp_path):
    exe = shutil.which("train", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("the core's train script is not installed next to this Python")
    r = subprocess.run([exe, "--trainer", "speech-taxonomy"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "speech-taxonomy has no trainer: it is a data set and a query tool; "
        "run `uv run --package speech-taxonomy speech-taxonomy --help`"
    ]


def test_add_to_a_copy_of_the_shipped_data(capsys, shipped_copy, tmp_path):
    entry = {
        **NEW,
        "key": "test_only_latency_probe",
        "aspects": ["latency"],
        "capabilities_required": ["speech_input", "speech_output", "full_duplex", "response_generation"],
        "protocol": ["zero_shot", "real_time_harness"],
    }
    src = write_entry(tmp_path / "e.toml", entry)
    code, _, err = run(capsys, "--data", str(shipped_copy), "add", "--from", str(src), "--yes")
    assert code == 0, err
    code, out, _ = run(capsys, "--data", str(shipped_copy), "which", "-m", "moshi", "--json")
    assert "test_only_latency_probe" in [m["key"] for m in json.loads(out)["fits"]]
    code, out, _ = run(capsys, "--data", str(shipped_copy), "gaps", "--json")
    latency = {c["aspect"]: c for c in json.loads(out)["leaves"]}["latency"]
    assert "test_only_latency_probe" in latency["keys"]
    assert check(shipped_copy) == [] and check() == []  # the packaged data is untouched
