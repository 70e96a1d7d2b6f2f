import math

import numpy as np
import pytest
import soundfile as sf
import torch
from cdslm.data import SILENCE, frame_labels, load_audio, load_audio_folder, split_of, synth_corpus
from cdslm.espeak import Espeak
from cdslm.mel import LogMel, griffin_lim, hz_to_mel, mel_filterbank


@pytest.mark.parametrize("norm", [None, "slaney"])
def test_mel_filterbank_equals_librosa(norm):
    librosa = pytest.importorskip("librosa")
    for sr, n_fft, n_mels, fmax in ((22050, 1024, 80, 8000.0), (16000, 512, 40, None)):
        ours = mel_filterbank(sr, n_fft, n_mels, 0.0, fmax, norm=norm).numpy()
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=fmax, htk=True, norm=norm)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)


def test_a_sine_lights_the_mel_bin_that_holds_its_frequency():
    fe = LogMel(sample_rate=16000, n_mels=40)
    t = torch.arange(16000) / 16000
    m = fe(torch.sin(2 * math.pi * 1000 * t))
    assert m.shape == (16000 // fe.hop_length + 1, 40)
    centres = torch.linspace(0, float(hz_to_mel(8000)), 42)[1:-1]
    want = int(torch.argmin((centres - hz_to_mel(1000)).abs()))
    assert abs(int(m[50].argmax()) - want) <= 1


def test_griffin_lim_rebuilds_a_tone():
    fe = LogMel(sample_rate=16000, n_mels=80)
    t = torch.arange(8000) / 16000
    x = 0.5 * torch.sin(2 * math.pi * 440 * t)
    power = fe.power(x)
    y = griffin_lim(power, fe, iters=32)
    rebuilt = fe.power(y)
    conv = float((rebuilt.sqrt() - power.sqrt()).norm() / power.sqrt().norm())
    assert conv < 0.2  # spectral convergence
    spec = torch.fft.rfft(y).abs()
    assert abs(float(spec.argmax()) * 16000 / len(y) - 440) < 5


def test_wav_and_flac_folder_with_transcripts(tmp_path):
    sr = 16000
    tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(sr // 2) / sr)).astype(np.float32)
    sf.write(tmp_path / "a.wav", tone, sr, subtype="PCM_16")
    (tmp_path / "a.txt").write_text("hello there\n")
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "b.flac", np.stack([tone, tone], 1), 8000)
    fe = LogMel(sample_rate=sr, n_mels=32)
    folder = load_audio_folder(tmp_path, frontend=fe)
    assert [p.rsplit("/", 1)[1] for p in folder["paths"]] == ["a.wav", "b.flac"]
    assert folder["transcripts"] == ["hello there", None]
    assert folder["sample_rates"] == [sr, sr]  # the flac was resampled from 8 kHz
    assert len(folder["audio"][1]) == 2 * len(tone)
    np.testing.assert_allclose(folder["audio"][0], tone, atol=1 / 32768)
    assert folder["logmels"][0].shape[1] == 32


def test_bad_audio_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_audio_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no audio files"):
        load_audio_folder(tmp_path)
    (tmp_path / "x.wav").write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="cannot read"):
        load_audio(tmp_path / "x.wav")


def test_espeak_gives_phoneme_spans_inside_the_audio():
    tts = Espeak()
    u = tts.synth("the quick brown fox jumps over the lazy dog")
    assert u.sample_rate == 22050 and 1.0 < u.duration < 5.0
    assert np.abs(u.audio).max() > 0.05
    assert len(u.phonemes) >= 25
    prev = 0.0
    for p, s, e in u.phonemes:
        assert p and 0 <= prev <= s < e <= u.duration + 1e-9
        prev = e
    # a faster rate is shorter; a different voice is a different waveform
    fast = tts.synth("the quick brown fox jumps over the lazy dog", rate=300)
    assert fast.duration < 0.8 * u.duration
    other = tts.synth("the quick brown fox jumps over the lazy dog", voice="en-us+f2")
    assert [p for p, _, _ in other.phonemes] == [p for p, _, _ in u.phonemes]
    assert len(other.audio) != len(u.audio) or not np.allclose(other.audio, u.audio)
    with pytest.raises(ValueError):
        tts.synth("hello", voice="xx-nonexistent")


def test_frame_labels_follow_the_spans_and_mark_silence():
    mel = torch.zeros(10, 4)
    mel[8:] = -20.0  # quiet frames
    vocab = {SILENCE: 0}
    lab = frame_labels([("a", 0.02, 0.05), ("b", 0.05, 0.1)], 10, 100.0, mel, vocab)
    assert lab.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 0, 0]
    assert vocab == {SILENCE: 0, "a": 1, "b": 2}


def test_corpus_splits_are_disjoint_and_normalised_on_train():
    c = synth_corpus(40, seed=3, n_mels=24)
    texts = {k: set(c.split(k).texts) for k in ("train", "val", "test")}
    assert (
        not (texts["train"] & texts["val"])
        and not (texts["train"] & texts["test"])
        and not (texts["val"] & texts["test"])
    )
    assert sum(len(c.split(k)) for k in texts) == 40
    for k in texts:
        for text in texts[k]:
            assert split_of(text, (0.7, 0.15, 0.15)) == k
    train = torch.cat(c.split("train").frames)
    assert torch.allclose(train.mean(0), torch.zeros(24), atol=1e-4)
    assert c.phonemes[0] == SILENCE and len(c.phonemes) > 15
    f, y = c.split("train").frames[0], c.split("train").labels[0]
    assert f.shape == (len(y), 24) and 0 < float((y > 0).float().mean()) < 1


def test_corpus_save_and_load_round_trip_exactly(tmp_path):
    from cdslm.data import Corpus

    c = synth_corpus(20, seed=1, n_mels=16)
    c.save(tmp_path / "corpus.pt")
    d = Corpus.load(tmp_path / "corpus.pt")
    assert d.phonemes == c.phonemes and d.frontend.n_mels == 16
    for k in ("train", "val", "test"):
        a, b = c.split(k), d.split(k)
        assert a.texts == b.texts and a.voices == b.voices
        for x, y in zip(a.frames, b.frames):
            assert torch.allclose(x, y, atol=1e-5)
        assert all(torch.equal(x, y) for x, y in zip(a.labels, b.labels))
