"""The model-profile table: for each kind of speech model, what `which` must offer and what it must not.

Each row is how a speech researcher would read the catalogue for that model. "fit" are evaluations the model takes
as it is; "cascade" are those it reaches only through an external component that converts modalities around a task
the model performs itself; "never" are evaluations it must not be offered at all (neither fit nor cascade), chiefly
those a cascade used to reach although the model cannot do the task (issue 16: a TTS system "fitting" spoken
question answering, a generative spoken LM "fitting" speech translation).
"""

from __future__ import annotations

import pytest
from speech_taxonomy.catalogue import load
from speech_taxonomy.match import which

PROFILES = {
    "hubert_like": {
        "fit": {"superb", "zr_abx", "ml_superb", "emobox", "hear", "esb", "fleurs", "slue", "slurp"},
        "cascade": set(),
        "never": {"open_asr", "wer_asr", "covost2", "voicebench", "zr_swuggy", "mos"},
    },
    "whisper_like": {
        "fit": {"open_asr", "wer_asr", "esb", "fleurs", "covost2", "superb"},
        # a cascaded S2ST system (Whisper translates, a TTS speaks): what ASR-BLEU scores
        "cascade": {"asr_bleu"},
        "never": {"voicebench", "dynamic_superb", "cvss", "mos", "speech_ifeval", "full_duplex_bench"},
    },
    "gslm_like": {
        "fit": {
            "zr_swuggy",
            "zr_sblimp",
            "storycloze",
            "salmon",
            "prosaudit",
            "gslm_continuation",
            "expresso",
        },
        "cascade": set(),
        "never": {"asr_bleu", "cvss", "covost2", "voicebench", "open_asr", "spoken_squad", "esb", "fleurs"},
    },
    "moshi_like": {
        "fit": {
            "full_duplex_bench",
            "full_duplex_bench_v15",
            "talking_turns",
            "uro_bench",
            "voxeval",
            "salmon",
        },
        # the spoken answer is transcribed and scored as text: the model still answers
        "cascade": {"voicebench", "sd_eval", "adu_bench"},
        # consistent requirements: FLEURS and ESB share a fine-tuning protocol, so neither fits (issue 16)
        "never": {"asr_bleu", "cvss", "covost2", "fleurs", "esb", "codec_superb", "open_asr", "superb"},
    },
    "tts_like": {
        "fit": {
            "seedtts_eval",
            "ttsds",
            "emergenttts_eval",
            "speaker_similarity",
            "utmos",
            "mos",
            "wer_generated",
        },
        "cascade": set(),
        "never": {
            # the seven "fits via a cascade" of issue 16
            "spoken_squad",
            "fluent_speech_commands",
            "covost2",
            "slurp",
            "asr_bleu",
            "slue2",
            "speech_ifeval",
            "voicebench",
            "codec_superb",
            "expresso",
        },
    },
    "codec_like": {
        "fit": {"codec_superb", "dasb", "expresso", "emphassess", "utmos", "zerospeech2019"},
        "cascade": set(),
        "never": {"asr_bleu", "cvss", "voxeval", "s2s_arena", "covost2", "seedtts_eval", "voicebench"},
    },
    "s2st_like": {
        "fit": {"cvss", "asr_bleu", "emphassess", "utmos"},
        # a speech translation transcribed is a text translation: CoVoST 2 scored by ASR-BLEU
        "cascade": {"covost2"},
        "never": {"codec_superb", "voxeval", "open_asr", "voicebench", "seedtts_eval", "expresso"},
    },
    "speech_assistant": {
        "fit": {"dynamic_superb", "air_bench", "mmau", "voicebench", "speech_ifeval", "covost2", "open_asr"},
        "cascade": {"voxeval"},
        "never": {"full_duplex_bench", "talking_turns", "cvss", "superb", "esb", "seedtts_eval", "mos"},
    },
}


@pytest.fixture(scope="module")
def shipped():
    return load()


def test_every_profile_of_the_issue_is_in_the_table(shipped):
    assert set(PROFILES) == set(shipped.models)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profile_table(shipped, profile):
    row = PROFILES[profile]
    res = which(shipped, shipped.models[profile].capabilities)
    fits, via = set(res.keys("fit")), set(res.keys("cascade"))
    assert row["fit"] <= fits, f"{profile}: should fit {sorted(row['fit'] - fits)}"
    assert row["cascade"] <= via, f"{profile}: should reach via a cascade {sorted(row['cascade'] - via)}"
    offered = fits | via
    assert not row["never"] & offered, f"{profile}: must not be offered {sorted(row['never'] & offered)}"
    for k in row["never"] | row["fit"] | row["cascade"]:
        assert k in shipped.evaluations, k  # the table names real entries


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_no_cascade_without_the_task(shipped, profile):
    """Every evaluation reached through a cascade names a task, and the model itself has every task it names."""
    tasks = shipped.task_capabilities()
    caps = set(shipped.models[profile].capabilities)
    for m in which(shipped, caps).via_cascade:
        ev = shipped.evaluations[m.key]
        named = [c for c in ev.capabilities_required if c in tasks]
        groups = [g for g in ev.capabilities_any_of if set(g) <= tasks]
        assert named or groups, m.key
        assert set(named) <= caps and all(caps & set(g) for g in groups), m.key
        granted = {g for c in shipped.vocabulary.cascade if c.id in m.cascades for g in c.grants}
        assert not granted & tasks and set(m.missing) <= granted


def test_no_cascade_without_the_task_for_many_capability_sets(shipped):
    """The same rule over a spread of capability sets, not only the profiles."""
    import itertools

    tasks = shipped.task_capabilities()
    ids = [c.id for c in shipped.vocabulary.capability]
    sets = [list(c) for c in itertools.combinations(ids, 3)][::5] + [
        list(c) for c in itertools.combinations(ids, 5)
    ][::97]
    seen = 0
    for caps in sets:
        for m in which(shipped, caps).via_cascade:
            ev = shipped.evaluations[m.key]
            named = [c for c in ev.capabilities_required if c in tasks]
            groups = [g for g in ev.capabilities_any_of if set(g) <= tasks]
            assert (named or groups) and set(named) <= set(caps), (caps, m.key)
            assert all(set(caps) & set(g) for g in groups), (caps, m.key)
            seen += 1
    assert seen > 10  # the rule is exercised, not vacuous


def test_tts_is_offered_no_cascade_at_all(shipped):
    """The issue's first example: `-c text_input,speech_output,voice_conditioning`."""
    caps = ["text_input", "speech_output", "voice_conditioning"]
    res = which(shipped, caps)
    assert res.keys("cascade") == []
    assert {"speaker_similarity", "utmos", "mos"} <= set(res.keys("fit"))
    # with speech_synthesis, the TTS-specific benchmarks fit too
    assert {"seedtts_eval", "ttsds"} <= set(which(shipped, [*caps, "speech_synthesis"]).keys("fit"))


def test_same_protocol_same_requirements(shipped):
    """Entries that share a protocol needing something of the model all require it (FLEURS, SLUE, SLURP, FSC,
    Speech Commands and ESB: fine-tuning; SUPERB-style suites: frozen features for the probe)."""
    for p in shipped.vocabulary.protocol:
        for ev in shipped.evaluations.values():
            if p.id in ev.protocol:
                assert set(p.requires_capability) <= set(ev.capabilities_required), (p.id, ev.key)
    fine_tuned = {"fleurs", "slue", "slue2", "slurp", "fluent_speech_commands", "speech_commands", "esb"}
    reqs = {
        k: (shipped.evaluations[k].capabilities_required, shipped.evaluations[k].capabilities_any_of)
        for k in fine_tuned
    }
    assert len({repr(v) for v in reqs.values()}) == 1, reqs
    for m in shipped.models.values():  # so every model fits all of them or none
        got = {k for k in fine_tuned if k in which(shipped, m.capabilities).keys("fit")}
        assert got in (set(), fine_tuned), (m.key, got)


def test_evaluations_with_speech_input_name_their_task(shipped):
    """What a model does with the speech it hears is part of the requirement: without a task, any model with the
    right plugs would 'fit' (Moshi fitting a codec benchmark)."""
    tasks = shipped.task_capabilities()
    for ev in shipped.evaluations.values():
        if "speech_input" in ev.all_capabilities():
            named = tasks & set(ev.capabilities_required) or any(
                set(g) <= tasks for g in ev.capabilities_any_of
            )
            assert named, ev.key
