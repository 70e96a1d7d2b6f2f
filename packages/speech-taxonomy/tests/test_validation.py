"""The schema rejects bad entries with a message naming file, entry and field; the shipped data validates."""

from __future__ import annotations

import pytest
from speech_taxonomy.catalogue import CatalogueError, check, default_data_dir, load
from taxonomy_fixture import write_data


def problems_of(tmp_path, vocab, evals, models=None) -> list[str]:
    return [str(p) for p in check(write_data(tmp_path / "bad", vocab, evals, models))]


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


def test_fixture_is_valid(mini):
    tax = load(mini)
    assert list(tax.evaluations) == ["e_abx", "e_probe", "e_lik", "e_mos", "e_asr", "e_any", "e_pros_asr"]
    assert tax.leaves == ["phon", "sem", "pros", "inter"]
    assert tax.parents == ["ling", "para"]
    assert tax.files["e_asr"] == "evaluations/b.toml"


def test_unknown_capability_names_file_entry_field(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["a.toml"][2]["capabilities_required"] = ["telepathy"]
    msg = only(problems_of(tmp_path, vocab, evals))
    assert msg.startswith("evaluations/a.toml: evaluation 'e_lik' (#3), field 'capabilities_required[0]': ")
    assert "unknown capability 'telepathy'" in msg and "known: reps, lik" in msg


def test_typo_gets_a_suggestion(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["b.toml"][0]["capabilities_required"] = ["sp_in", "tx_ot"]
    assert "did you mean 'tx_out'?" in only(problems_of(tmp_path, vocab, evals))


def test_missing_citation(tmp_path, fresh):
    vocab, evals, _ = fresh
    del evals["b.toml"][1]["citation"]
    msg = only(problems_of(tmp_path, vocab, evals))
    assert msg == "evaluations/b.toml: evaluation 'e_any' (#2), field 'citation': required field is missing"


def test_missing_citation_title(tmp_path, fresh):
    vocab, evals, _ = fresh
    del evals["a.toml"][0]["citation"]["title"]
    assert "evaluation 'e_abx' (#1), field 'citation.title': required field is missing" in only(
        problems_of(tmp_path, vocab, evals)
    )


def test_duplicate_key_across_files(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["b.toml"][2]["key"] = "e_abx"
    msg = only(problems_of(tmp_path, vocab, evals))
    assert msg.startswith("evaluations/b.toml: evaluation 'e_abx' (#3), field 'key': duplicate key 'e_abx'")
    assert "also defined in evaluations/a.toml (evaluation 'e_abx' (#1))" in msg


def test_value_from_the_wrong_axis(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["a.toml"][0]["protocol"] = ["zs", "reps"]
    msg = only(problems_of(tmp_path, vocab, evals))
    assert msg == (
        "evaluations/a.toml: evaluation 'e_abx' (#1), field 'protocol[1]': 'reps' is a model capability "
        "required (axis 2), not a task or protocol requirement (axis 3)"
    )


def test_aspect_in_the_capability_list(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["a.toml"][1]["capabilities_required"] = ["pros"]
    assert "'pros' is an evaluation aspect (axis 1), not a model capability required (axis 2)" in only(
        problems_of(tmp_path, vocab, evals)
    )


def test_parent_aspect_is_rejected(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["a.toml"][0]["aspects"] = ["ling"]
    assert "field 'aspects[0]': 'ling' is a parent aspect; name one of its leaves: phon, sem" in only(
        problems_of(tmp_path, vocab, evals)
    )


def test_unknown_field_and_bad_kind(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["a.toml"][0]["colour"] = "red"
    evals["a.toml"][0]["kind"] = "survey"
    got = problems_of(tmp_path, vocab, evals)
    assert any("evaluation 'e_abx' (#1), field 'colour': unknown field" in p for p in got)
    assert any("field 'kind': Input should be 'benchmark', 'metric' or 'protocol'" in p for p in got)


def test_arxiv_id_needs_its_source_and_a_valid_form(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["a.toml"][0]["citation"]["arxiv"] = "2409.07437"
    evals["a.toml"][1]["citation"].update(arxiv="arXiv:2409", id_source="checked")
    got = problems_of(tmp_path, vocab, evals)
    assert any("'e_abx' (#1), field 'citation': id_source is required" in p for p in got)
    assert any("'e_probe' (#2), field 'citation.arxiv': String should match pattern" in p for p in got)


def test_orthogonality_no_value_in_two_axes(tmp_path, fresh):
    vocab, evals, _ = fresh
    vocab["protocol"].append(
        {"id": "reps", "definition": "a protocol named like a capability", "provenance": "recon"}
    )
    msg = only(problems_of(tmp_path, vocab, evals))
    assert msg.startswith("vocabulary.toml: protocol 'reps' (#6), field 'id': 'reps' is also a value of axis")
    assert "orthogonal" in msg


def test_paper_provenance_needs_the_paper_term(tmp_path, fresh):
    vocab, evals, _ = fresh
    del vocab["aspect"][4]["paper_term"]
    msg = only(problems_of(tmp_path, vocab, evals))
    assert msg.startswith("vocabulary.toml: aspect 'pros' (#5): a value with provenance 'paper'")


def test_unknown_model_capability(tmp_path, fresh):
    vocab, evals, models = fresh
    models[1]["capabilities"] = ["sp_in", "humans"]
    assert only(problems_of(tmp_path, vocab, evals, models)) == (
        "models.toml: model 's2s' (#2), field 'capabilities[1]': 'humans' is a task or protocol requirement "
        "(axis 3), not a model capability required (axis 2)"
    )


def test_all_problems_reported_at_once(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["a.toml"][0]["aspects"] = ["nope"]
    evals["b.toml"][0]["protocol"] = ["lik"]
    del evals["b.toml"][1]["metrics"]
    assert len(problems_of(tmp_path, vocab, evals)) == 3
    with pytest.raises(CatalogueError) as e:
        load(tmp_path / "bad")
    assert str(e.value).startswith("3 problem(s) in the taxonomy data:")


def test_one_entry_with_every_kind_of_problem_is_reported_in_one_pass(tmp_path, fresh):
    """Schema errors no longer hide the vocabulary, consistency and duplicate checks of the same entry."""
    vocab, evals, _ = fresh
    bad = dict(evals["a.toml"][0])  # a second 'e_abx'
    bad["year"] = "twenty"  # schema
    bad["protocol"] = ["zs", "reps"]  # wrong axis
    evals["b.toml"].append(bad)
    got = problems_of(tmp_path, vocab, evals)
    assert len(got) == 3, got
    assert any("field 'year'" in p for p in got)
    assert any("field 'protocol[1]': 'reps' is a model capability" in p for p in got)
    assert any("duplicate key 'e_abx': also defined in evaluations/a.toml" in p for p in got)


def test_a_float_year_is_refused(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["a.toml"][0]["year"] = 2024.0
    evals["a.toml"][1]["citation"]["year"] = 2024.0
    got = problems_of(tmp_path, vocab, evals)
    assert len(got) == 2 and all("Input should be a valid integer (got 2024.0)" in p for p in got), got


def test_protocol_implies_capability_in_every_entry(tmp_path, fresh):
    vocab, evals, _ = fresh
    next(p for p in vocab["protocol"] if p["id"] == "probe")["requires_capability"] = [
        "reps"
    ]  # e_probe has it
    next(p for p in vocab["protocol"] if p["id"] == "ft")["requires_capability"] = ["reps"]  # e_any lacks it
    assert only(problems_of(tmp_path, vocab, evals)) == (
        "evaluations/b.toml: evaluation 'e_any' (#2), field 'capabilities_required': protocol 'ft' needs 'reps' "
        "among the required capabilities (every entry using 'ft' requires it, so that entries of the same "
        "protocol match the same models)"
    )


def test_a_cascade_may_not_grant_a_task(tmp_path, fresh):
    vocab, evals, _ = fresh
    vocab["cascade"][0]["grants"] = ["tx_out", "ans"]
    msg = only(problems_of(tmp_path, vocab, evals))
    assert "cascade 'asr_out' (#1), field 'grants[1]': 'ans' is a task capability" in msg


def test_every_capability_has_a_kind(tmp_path, fresh):
    vocab, evals, _ = fresh
    del vocab["capability"][0]["kind"]
    vocab["protocol"][0]["kind"] = "task"
    got = problems_of(tmp_path, vocab, evals)
    assert got == [
        "vocabulary.toml: capability 'reps' (#1), field 'kind': a capability is of kind 'task' or 'interface'",
        "vocabulary.toml: protocol 'zs' (#1), field 'kind': only capabilities have a kind",
    ]


def test_speech_input_needs_a_named_task(shipped):
    from speech_taxonomy.catalogue import check_entry

    raw = shipped.evaluations["open_asr"].to_dict() | {"key": "new_asr"}
    assert check_entry(shipped, raw, "evaluations/x.toml") == []
    raw["capabilities_required"] = ["speech_input", "text_output"]  # which model does what?
    (p,) = check_entry(shipped, raw, "evaluations/x.toml")
    assert p.field == "capabilities_required" and "names the task the model performs" in p.message


@pytest.mark.parametrize(
    "links, field",
    [
        ({"code": "github.com/x/y"}, "links.code"),
        ({"data": "ftp://example.org/d"}, "links.data"),
        ({"leaderboard": "https://no spaces.org"}, "links.leaderboard"),
        ({"paper": "https://arxiv.org/abs/1", "homepage": "https://x.org"}, "links.homepage"),
    ],
)
def test_links_are_urls(tmp_path, fresh, links, field):
    vocab, evals, _ = fresh
    evals["a.toml"][0]["links"] = links
    assert f"field '{field}'" in only(problems_of(tmp_path, vocab, evals))


def test_good_links_validate(tmp_path, fresh):
    vocab, evals, _ = fresh
    evals["a.toml"][0]["links"] = {
        "code": "https://github.com/x/y",
        "data": "https://huggingface.co/datasets/x/y",
        "leaderboard": "http://example.org:8080/board?sort=1",
    }
    assert problems_of(tmp_path, vocab, evals) == []


def test_toml_syntax_error_names_the_file(tmp_path, mini):
    (mini / "evaluations" / "b.toml").write_text("[[evaluation]]\nkey = 'x\n")
    got = [str(p) for p in check(mini)]
    assert len(got) == 1 and got[0].startswith("evaluations/b.toml: not valid TOML")


def test_a_broken_file_does_not_hide_the_others_problems(tmp_path, fresh):
    """One pass: an unreadable evaluation file, and the other files' problems are still reported."""
    vocab, evals, _ = fresh
    evals["a.toml"][0]["aspects"] = ["nope"]  # vocabulary problem in a readable file
    root = write_data(tmp_path / "d", vocab, evals)
    (root / "evaluations" / "b.toml").write_text("[[evaluation]]\nkey = 'x\n")
    got = [str(p) for p in check(root)]
    assert len(got) == 2, got
    assert got[0].startswith("evaluations/b.toml: not valid TOML")
    assert "evaluations/a.toml: evaluation 'e_abx' (#1), field 'aspects[0]': unknown aspect 'nope'" in got[1]


def test_a_broken_vocabulary_still_reports_entry_schema_problems(tmp_path, fresh):
    vocab, evals, _ = fresh
    del evals["a.toml"][1]["metrics"]
    root = write_data(tmp_path / "d", vocab, evals)
    (root / "vocabulary.toml").write_text("[meta\n")
    got = [str(p) for p in check(root)]
    assert len(got) == 2, got
    assert got[0].startswith("vocabulary.toml: not valid TOML")
    assert (
        got[1] == "evaluations/a.toml: evaluation 'e_probe' (#2), field 'metrics': required field is missing"
    )
    vocab["aspect"][1]["parent"] = (
        "nowhere"  # a readable vocabulary with a problem: entry schema still checked
    )
    root = write_data(tmp_path / "e", vocab, evals)
    got = [str(p) for p in check(root)]
    assert any("unknown parent aspect 'nowhere'" in p for p in got) and any("'metrics'" in p for p in got)


# -- the shipped data ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return load()


def test_shipped_data_validates(shipped):
    assert check() == []
    assert len(shipped.evaluations) >= 60
    assert default_data_dir().name == "data"


def test_every_axis_value_has_provenance_and_paper_terms(shipped):
    v = shipped.vocabulary
    for axis in ("aspect", "capability", "protocol"):
        for x in getattr(v, axis):
            assert x.provenance in ("paper", "recon")
            assert (x.provenance == "paper") == bool(x.paper_term)
    paper = {
        x.id: x.paper_term
        for axis in ("aspect", "capability", "protocol")
        for x in getattr(v, axis)
        if x.provenance == "paper"
    }
    # the values the abstract names
    assert paper == {
        "prosody": "prosody",
        "interaction": "interaction",
        "reasoning": "reasoning",
        "speech_output": "speech generation",
        "streaming": "real-time processing",
        "fine_tuning": "fine-tuning data",
        "human_judges": "human judgment",
    }


def test_shipped_model_profiles_cover_the_eight_kinds(shipped):
    assert list(shipped.models) == [
        "hubert_like",
        "whisper_like",
        "gslm_like",
        "speech_assistant",
        "moshi_like",
        "tts_like",
        "codec_like",
        "s2st_like",
    ]
    caps = {k: set(m.capabilities) for k, m in shipped.models.items()}
    assert caps["hubert_like"] == {"frozen_representations", "fine_tunable"}
    assert {"speech_output", "sequence_likelihood", "speech_continuation"} <= caps["gslm_like"]
    assert {"full_duplex", "streaming"} <= caps["moshi_like"]
    assert {"speech_input", "text_output", "transcription"} <= caps[
        "whisper_like"
    ] and "speech_output" not in caps["whisper_like"]
    assert {"speech_input", "text_input", "text_output", "response_generation"} <= caps["speech_assistant"]
    assert caps["tts_like"] == {"text_input", "speech_output", "speech_synthesis", "voice_conditioning"}
    assert "resynthesis" in caps["codec_like"] and "translation" in caps["s2st_like"]
    assert all(m.citation.arxiv for m in shipped.models.values())


def test_shipped_citations_identifiers_are_sourced(shipped):
    for ev in shipped.evaluations.values():
        c = ev.citation
        if c.arxiv or c.doi:
            assert c.id_source in ("checked", "notes", "memory"), ev.key
        assert ev.provenance.classification == "recon"  # the paper's table was not available
    with_id = sum(bool(e.citation.arxiv) for e in shipped.evaluations.values())
    assert with_id >= 55
