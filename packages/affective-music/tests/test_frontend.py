"""The torch log-mel front end against librosa (stored reference numbers, and librosa itself when installed)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from affective_music.frontend import (
    LogMel,
    log_mel_batched,
    mel_filterbank,
    power_spectrogram,
    spectrogram_image,
)
from make_librosa_reference import CASES, signal

REF = np.load(Path(__file__).parent / "data" / "librosa_reference.npz")


@pytest.mark.parametrize("case", range(len(CASES)))
def test_filterbank_matches_librosa(case):
    sr, n_fft, _, n_mels, fmin, fmax = CASES[case]
    fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax).numpy()
    assert fb.shape == REF[f"fb{case}"].shape
    np.testing.assert_allclose(fb, REF[f"fb{case}"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_mel_spectrogram_matches_librosa(case):
    sr, n_fft, hop, n_mels, fmin, fmax = CASES[case]
    front = LogMel(sr, n_fft, hop, n_mels, fmin, fmax)
    mel = front.mel(torch.from_numpy(signal(sr))[None])[0].numpy()
    ref = REF[f"mel{case}"]
    assert mel.shape == ref.shape
    np.testing.assert_allclose(mel, ref, rtol=2e-4, atol=1e-4 * ref.max())
    log_mel = front(torch.from_numpy(signal(sr))[None])[0].numpy()
    loud = ref > 1e-6 * ref.max()  # float32 resolves the quiet bins' powers only to a few digits
    np.testing.assert_allclose(log_mel[loud], np.log(ref[loud]), atol=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("librosa") is None, reason="librosa is a test-only reference")
def test_against_live_librosa():
    import librosa

    y = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    ref = librosa.feature.melspectrogram(
        y=y, sr=8000, n_fft=256, hop_length=100, pad_mode="constant", n_mels=20, htk=True, norm=None
    )
    mel = LogMel(8000, 256, 100, 20).mel(torch.from_numpy(y)[None])[0].numpy()
    np.testing.assert_allclose(mel, ref, rtol=2e-4, atol=1e-4 * ref.max())


def test_filters_are_triangles_peaking_at_one_on_the_mel_grid():
    fb = mel_filterbank(16000, 4096, 8)
    assert torch.all(fb >= 0) and torch.all(fb <= 1)
    assert torch.allclose(
        fb.max(1).values, torch.ones(8), atol=0.02
    )  # fine FFT grid: each peak nearly sampled
    peaks = fb.argmax(1)
    assert torch.all(peaks[1:] > peaks[:-1])  # centres increase


def test_parseval_power_spectrogram_of_a_tone():
    sr, n_fft = 8000, 256
    f = 31 * sr / n_fft  # on a bin: all power lands in bin 31
    x = torch.sin(2 * torch.pi * f * torch.arange(2048) / sr)
    p = power_spectrogram(x[None], n_fft, 64)[0]
    middle = p[:, 8:-8]
    assert middle.argmax(0).eq(31).all()
    # a periodic Hann window of length N has sum N/2: |X[k]| = A N / 4 for a unit sine on bin k
    assert torch.allclose(middle[31], torch.full_like(middle[31], (n_fft / 4) ** 2), rtol=1e-4)


def test_batched_equals_per_clip_and_chunks():
    front = LogMel(8000, 512, 256, 32)
    x = torch.randn(7, 8000)
    batched = log_mel_batched(x, front, chunk=3)
    for i in range(7):
        assert torch.allclose(batched[i], front(x[i][None])[0], atol=1e-5)
    assert batched.shape == (7, 32, front.frames(8000))


def test_loudness_shifts_log_mel_by_a_constant():
    front = LogMel(8000, 256, 128, 16)
    x = torch.randn(1, 4000)
    assert torch.allclose(front(2 * x) - front(x), torch.full((1, 16, 32), float(np.log(4))), atol=1e-4)


def test_spectrogram_image_is_a_normalised_picture():
    x = torch.randn(3, 8000)
    pic = spectrogram_image(x, 512, 256, 16)
    assert pic.shape == (3, 3, 16, 16)
    assert pic.min() >= 0 and pic.max() <= 1
    assert torch.equal(pic[:, 0], pic[:, 2])
    # the picture ignores loudness (min-max per picture), unlike the log-mel input
    assert torch.allclose(spectrogram_image(10 * x, 512, 256, 16), pic, atol=1e-5)


def test_bad_frequency_range_is_rejected():
    with pytest.raises(ValueError, match="f_min"):
        mel_filterbank(8000, 256, 10, 5000.0, 6000.0)
