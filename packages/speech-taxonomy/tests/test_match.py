"""`which` returns exactly the evaluations whose requirements are covered; `gaps` equals hand counts."""

from __future__ import annotations

import itertools

import pytest
from speech_taxonomy.catalogue import load
from speech_taxonomy.match import assess, coverage_matrix, gaps, missing_capabilities, which


@pytest.fixture
def tax(mini):
    return load(mini)


def keys(res):
    return {"fit": res.keys("fit"), "cascade": res.keys("cascade"), "near": res.keys("near")}


def test_which_encoder(tax):
    res = which(tax, tax.model("encoder").capabilities)
    assert keys(res) == {"fit": ["e_abx", "e_probe"], "cascade": [], "near": ["e_lik", "e_mos"]}
    near = {m.key: m.reason for m in res.near_misses}
    assert near == {"e_lik": "missing lik", "e_mos": "missing sp_out"}


def test_which_s2s_with_any_of_and_cascade(tax):
    res = which(tax, tax.model("s2s").capabilities)
    # e_any needs sp_in and one of tx_out|sp_out: sp_out suffices
    assert res.keys("fit") == [
        "e_lik",
        "e_mos",
        "e_any",
    ]  # in the order of their primary aspects: sem, pros, inter
    (c,) = res.via_cascade
    assert (c.key, c.cascades, c.added_protocol) == ("e_asr", ("asr_out",), ("refmodel",))
    # e_pros_asr measures prosody, which an ASR on the output cannot stand in for: a near miss, not a cascade fit
    assert {m.key: m.reason for m in res.near_misses} == {
        "e_abx": "missing reps",
        "e_probe": "missing reps",
        "e_pros_asr": "missing tx_out",
    }


def test_no_cascade_when_the_model_lacks_the_task(tax):
    """e_asr names the task 'ans': a speech-out model without it is not offered e_asr through an ASR."""
    caps = ["sp_in", "sp_out", "lik"]
    res = which(tax, caps)
    assert res.keys("cascade") == []
    assert assess(tax, tax.evaluations["e_asr"], caps).status == "none"  # two missing: tx_out and ans


def test_no_cascade_for_an_evaluation_that_names_no_task(tmp_path, fresh):
    """An evaluation naming no task scores whatever is produced: a cascade's output is not the model's."""
    from taxonomy_fixture import write_data

    vocab, evals, models = fresh
    vocab["cascade"].append(
        {
            "id": "tts",
            "definition": "speaks a text answer",
            "requires": ["tx_out"],
            "grants": ["sp_out"],
            "valid_for": ["pros"],
        }
    )
    tax = load(write_data(tmp_path / "d", vocab, evals, models))
    m = assess(tax, tax.evaluations["e_mos"], ["tx_out"])  # e_mos: sp_out only, no task
    assert m.status == "near" and m.reason == "missing sp_out"


def test_results_are_ordered_by_primary_aspect(tax):
    res = which(tax, ["reps", "lik", "sp_in", "sp_out", "tx_out"])
    prim = [tax.evaluations[k].primary_aspect for k in res.keys("fit")]
    order = tax.leaves
    assert prim == sorted(prim, key=order.index)


def test_budget_moves_fits_to_near_misses(tax):
    res = which(tax, tax.model("s2s").capabilities, forbid=["humans", "ft"])
    assert res.keys("fit") == ["e_lik"]
    near = {m.key: m.reason for m in res.near_misses}
    assert near["e_mos"] == "needs humans (excluded by the budget)"
    assert near["e_any"] == "needs ft (excluded by the budget)"


def test_budget_can_block_a_cascade(tax):
    res = which(tax, tax.model("s2s").capabilities, forbid=["refmodel"])
    assert res.keys("cascade") == []
    assert "e_asr" in res.keys("near")
    assert which(tax, tax.model("s2s").capabilities, cascades=False).keys("cascade") == []


def test_aspect_filter_accepts_parents(tax):
    assert which(tax, ["reps"], aspects=["para"]).keys("fit") == ["e_probe"]
    assert which(tax, ["reps"], aspects=["phon"]).keys("fit") == ["e_abx", "e_probe"]
    with pytest.raises(LookupError, match="unknown aspect 'nope'"):
        which(tax, ["reps"], aspects=["nope"])


def test_bad_capability_or_protocol_is_refused(tax):
    with pytest.raises(LookupError, match="'humans' is a task or protocol requirement"):
        which(tax, ["humans"])
    with pytest.raises(LookupError, match="unknown protocol 'people'"):
        which(tax, ["reps"], forbid=["people"])


def test_model_lookup(tax):
    assert (
        tax.model("enc").key == "enc" and tax.model("Encoder").key == "enc" and tax.model("s2").key == "s2s"
    )
    with pytest.raises(LookupError, match="unknown model 'x'"):
        tax.model("x")


def test_ambiguous_model_prefix_says_so(shipped):
    # 's' starts speech_assistant, s2st_like (and the aliases salmonn, slm, ...)
    with pytest.raises(LookupError, match=r"ambiguous model 's': it starts .*s2st_like.*speech_assistant"):
        shipped.model("s")


def test_evaluation_lookup_ignores_case_and_suggests(shipped):
    assert shipped.evaluation("SUPERB").key == "superb"
    assert shipped.evaluation("Full-Duplex-Bench v1.5").key == "full_duplex_bench_v15"
    with pytest.raises(LookupError, match=r"no evaluation 'superbb'; did you mean superb"):
        shipped.evaluation("superbb")


def test_gaps_equal_hand_counts(tax):
    rep = gaps(tax)
    got = {c.aspect: (c.count, c.weight, c.primary) for c in rep.leaves}
    assert got == {
        "phon": (2, round(1 + 1 / 3, 3), 2),  # e_abx, e_probe
        "sem": (5, round(1 / 3 + 1 + 1 + 1 / 2 + 1 / 2, 3), 2),  # e_probe e_lik e_asr e_any e_pros_asr
        "pros": (3, round(1 / 3 + 1 + 1 / 2, 3), 2),  # e_probe e_mos e_pros_asr
        "inter": (1, 0.5, 1),  # e_any
    }
    assert {c.aspect: (c.count, c.primary) for c in rep.parents} == {"ling": (6, 4), "para": (3, 2)}
    assert rep.total == 7
    assert [c.aspect for c in rep.thin] == ["phon", "inter"]  # count <= 2
    assert rep.rank("inter") == (1, 4) and rep.rank("sem") == (4, 4)
    assert rep.rank("para") == (1, 2)  # parents rank among parents


def test_gaps_under_capabilities_and_budget(tax):
    rep = gaps(tax, tax.model("s2s").capabilities, forbid=["humans"])
    assert rep.total == 2  # e_lik, e_any
    assert {c.aspect: c.count for c in rep.leaves} == {"phon": 0, "sem": 2, "pros": 0, "inter": 1}
    with_cascade = gaps(tax, tax.model("s2s").capabilities, forbid=["humans"], cascades=True)
    assert {c.aspect: c.count for c in with_cascade.leaves}["sem"] == 3  # + e_asr via asr_out
    assert gaps(tax, forbid=["zs"]).total == 3  # e_probe, e_mos, e_any


def test_coverage_matrix(tax):
    rows, cols, m = coverage_matrix(tax)
    assert rows == ["phon", "sem", "pros", "inter"] and cols == ["all", "enc", "s2s"]
    assert m == [[2, 2, 0], [5, 1, 2], [3, 1, 1], [1, 0, 1]]


# -- the rule, checked exhaustively on the shipped catalogue -------------------------------------------------------


def brute_force_fits(tax, caps, forbid):
    caps, forbid = set(caps), set(forbid)
    return {
        e.key
        for e in tax.evaluations.values()
        if set(e.capabilities_required) <= caps
        and all(caps & set(g) for g in e.capabilities_any_of)
        and not forbid & set(e.protocol)
    }


@pytest.fixture(scope="module")
def shipped():
    return load()


def test_which_is_exactly_the_covered_evaluations_on_shipped_data(shipped):
    budgets = [
        (),
        ("human_judges",),
        ("human_judges", "fine_tuning"),
        ("human_judges", "fine_tuning", "trained_probe"),
    ]
    cap_sets = [m.capabilities for m in shipped.models.values()]
    all_caps = [c.id for c in shipped.vocabulary.capability]
    cap_sets += [list(c) for c in itertools.combinations(all_caps, 3)][::7]  # a spread of other sets
    for caps, forbid in itertools.product(cap_sets, budgets):
        res = which(shipped, caps, forbid)
        assert set(res.keys("fit")) == brute_force_fits(shipped, caps, forbid), (caps, forbid)
        assert len(res.keys("fit")) == len(set(res.keys("fit")))
        for m in res.via_cascade:
            ev = shipped.evaluations[m.key]
            assert missing_capabilities(ev, set(caps)) and not set(ev.protocol) & set(forbid)
        for m in res.near_misses:
            assert m.distance == 1


def test_paper_examples_on_shipped_data(shipped):
    hubert = which(shipped, shipped.model("hubert").capabilities, ["human_judges", "fine_tuning"])
    assert {"zr_abx", "superb", "ml_superb", "emobox", "hear"} <= set(hubert.keys("fit"))
    assert {"zr_swuggy", "zr_sblimp", "prosaudit"} <= set(
        hubert.keys("near")
    )  # they need sequence likelihood
    moshi = which(shipped, shipped.model("moshi").capabilities)
    assert {"full_duplex_bench", "full_duplex_bench_v15", "talking_turns"} <= set(moshi.keys("fit"))
    assert "voicebench" in moshi.keys("cascade")  # spoken answers transcribed, as VoiceBench does
    assert (
        assess(
            shipped, shipped.evaluations["full_duplex_bench"], shipped.model("speech_assistant").capabilities
        ).status
        == "none"
    )
