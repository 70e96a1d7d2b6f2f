"""The audio front end in plain torch (no torchaudio): STFT power spectrogram, HTK mel filterbank, log.

``LogMel`` is batched: a ``[B, samples]`` waveform tensor gives ``[B, n_mels, frames]`` log-mel spectrograms in one
``torch.stft`` call. It matches ``librosa.feature.melspectrogram(y, sr=sr, n_fft=n_fft, hop_length=hop,
window="hann", center=True, pad_mode="constant", power=2.0, htk=True, norm=None)`` (the tests check it against
librosa's numbers), followed by ``log(clamp(., floor))``::

    mel = LogMel(sample_rate=8000, n_fft=512, hop_length=256, n_mels=40)
    x = mel(waveforms)          # [B, 40, 1 + samples // 256]

:func:`spectrogram_image` is the "spectrogram as an image" input of the Spectrogram-ACP baseline: a linear-frequency
dB spectrogram resized to a square RGB-like picture, as one would feed a picture of a spectrogram to an image CNN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def hz_to_mel(f: torch.Tensor | float) -> torch.Tensor:
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular HTK mel filters without area normalisation, ``[n_mels, 1 + n_fft // 2]``.

    Filter ``m`` rises linearly from mel point ``m`` to ``m + 1`` and falls to ``m + 2`` (``n_mels + 2`` points
    equally spaced on the mel scale between ``f_min`` and ``f_max``), evaluated at the FFT bin frequencies
    ``k * sample_rate / n_fft``: the formula of ``librosa.filters.mel(htk=True, norm=None)`` and of torchaudio's
    ``melscale_fbanks(norm=None, mel_scale="htk")``.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"mel_filterbank: need 0 <= f_min < f_max <= sample_rate/2, got {f_min}, {f_max}")
    freqs = torch.linspace(0, sample_rate / 2, 1 + n_fft // 2, dtype=torch.float64)
    points = mel_to_hz(
        torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64)
    )
    diff = points[1:] - points[:-1]
    ramps = points[:, None] - freqs[None, :]  # [n_mels + 2, n_freqs]
    lower = -ramps[:-2] / diff[:-1, None]
    upper = ramps[2:] / diff[1:, None]
    return torch.clamp(torch.minimum(lower, upper), min=0.0).float()


def power_spectrogram(wave: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """``|STFT|^2`` with a periodic Hann window, centred frames, zero padding: ``[B, 1 + n_fft // 2, frames]``."""
    window = torch.hann_window(n_fft, periodic=True, dtype=wave.dtype, device=wave.device)
    spec = torch.stft(
        wave, n_fft, hop_length, window=window, center=True, pad_mode="constant", return_complex=True
    )
    return spec.real.square() + spec.imag.square()


class LogMel(nn.Module):
    """Waveforms ``[B, samples]`` (or ``[samples]``) to log-mel spectrograms ``[B, n_mels, frames]``."""

    def __init__(
        self,
        sample_rate: int = 8000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 40,
        f_min: float = 0.0,
        f_max: float | None = None,
        floor: float = 1e-10,
    ):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length, self.floor = sample_rate, n_fft, hop_length, floor
        self.register_buffer("fb", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max), persistent=False)

    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """The (linear) mel power spectrogram."""
        return torch.matmul(self.fb, power_spectrogram(wave, self.n_fft, self.hop_length))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.clamp(self.mel(wave), min=self.floor))

    def frames(self, samples: int) -> int:
        return 1 + samples // self.hop_length


@torch.no_grad()
def log_mel_batched(wave: torch.Tensor, front: LogMel, chunk: int = 256) -> torch.Tensor:
    """:class:`LogMel` over a large ``[N, samples]`` tensor in chunks (bounded memory)."""
    return torch.cat([front(wave[i : i + chunk]) for i in range(0, len(wave), chunk)]) if len(wave) else wave


@torch.no_grad()
def spectrogram_image(
    wave: torch.Tensor, n_fft: int = 512, hop_length: int = 256, size: int = 32
) -> torch.Tensor:
    """The Spectrogram-ACP input: a linear-frequency dB spectrogram, each picture scaled to [0, 1] (min-max, as an
    image file of a spectrogram would be), resized to ``size x size`` and repeated over 3 channels:
    ``[B, 3, size, size]``."""
    db = 10.0 * torch.log10(torch.clamp(power_spectrogram(wave, n_fft, hop_length), min=1e-10))
    db = torch.clamp(db, min=db.amax(dim=(-2, -1), keepdim=True) - 80.0)  # an 80 dB display range
    lo, hi = db.amin(dim=(-2, -1), keepdim=True), db.amax(dim=(-2, -1), keepdim=True)
    pic = (db - lo) / (hi - lo).clamp(min=1e-6)
    pic = pic.flip(-2)[:, None]  # low frequencies at the bottom, as drawn
    pic = F.interpolate(pic, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return pic.expand(-1, 3, -1, -1).contiguous()


def clip_frames(seconds: float, sample_rate: int, hop_length: int) -> int:
    return 1 + int(math.floor(seconds * sample_rate)) // hop_length
