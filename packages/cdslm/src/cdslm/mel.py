"""The log-mel front end in torch (no torchaudio), and Griffin-Lim for listening.

    fe = LogMel(sample_rate=22050)             # 80 HTK mel bins, 25 ms window, 10 ms hop
    m = fe(audio)                              # (..., frames, 80) natural-log mel energies
    wav = griffin_lim(fe.inverse_power(m), fe) # back to audio (for listening only)

The filterbank is HTK's mel scale ``mel(f) = 2595 log10(1 + f / 700)`` with triangles between ``n_mels + 2``
equally spaced mel points, optionally area-normalised (``norm="slaney"``), equal to
``librosa.filters.mel(..., htk=True, norm=None|"slaney")`` (a test checks it).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def hz_to_mel(f: torch.Tensor | float) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: torch.Tensor | float) -> torch.Tensor:
    return 700.0 * (10.0 ** (torch.as_tensor(m, dtype=torch.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int = 80,
    f_min: float = 0.0,
    f_max: float | None = None,
    norm: str | None = None,
) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters; ``norm="slaney"`` divides each by its width in Hz / 2."""
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64)
    hz = mel_to_hz(mels)
    fdiff = hz[1:] - hz[:-1]
    ramps = hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    fb = torch.clamp(torch.minimum(lower, upper), min=0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return fb.float()


class LogMel(nn.Module):
    """Waveform (..., samples) -> log-mel (..., frames, n_mels): ``log(max(mel @ |STFT|^2, floor))``."""

    def __init__(
        self,
        sample_rate: int = 22050,
        n_mels: int = 80,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: int | None = None,
        f_min: float = 0.0,
        f_max: float | None = 8000.0,
        floor: float = 1e-5,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.win_length = int(round(sample_rate * win_ms / 1000))
        self.hop_length = int(round(sample_rate * hop_ms / 1000))
        self.n_fft = n_fft or 2 ** math.ceil(math.log2(self.win_length))
        self.n_mels = n_mels
        self.floor = floor
        f_max = min(f_max or sample_rate / 2, sample_rate / 2)
        self.register_buffer(
            "fb", mel_filterbank(sample_rate, self.n_fft, n_mels, f_min, f_max), persistent=False
        )
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def power(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            audio,
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.window,
            center=True,
            return_complex=True,
        )
        return spec.abs().pow(2).transpose(-1, -2)  # (..., frames, freqs)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        audio = torch.as_tensor(audio, dtype=torch.float32)
        return torch.log(torch.clamp(self.power(audio) @ self.fb.T, min=self.floor))

    def inverse_power(self, logmel: torch.Tensor) -> torch.Tensor:
        """Least-squares linear power spectrogram (..., frames, freqs) from log-mel (non-negative)."""
        mel = torch.exp(logmel)
        pinv = torch.linalg.pinv(self.fb)  # (freqs, n_mels)
        return torch.clamp(mel @ pinv.T, min=0.0)


def griffin_lim(
    power: torch.Tensor, fe: LogMel, iters: int = 32, momentum: float = 0.99, seed: int = 0
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013) from a power spectrogram (frames, freqs) to audio (samples)."""
    mag = power.clamp(min=0).sqrt().T  # (freqs, frames)
    g = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * math.pi * torch.rand(mag.shape, generator=g))
    prev = torch.zeros_like(angles)
    length = (mag.shape[-1] - 1) * fe.hop_length

    def istft(spec):
        return torch.istft(
            spec, fe.n_fft, fe.hop_length, fe.win_length, fe.window, center=True, length=length
        )

    def stft(x):
        return torch.stft(
            x, fe.n_fft, fe.hop_length, fe.win_length, fe.window, center=True, return_complex=True
        )

    for _ in range(iters):
        rebuilt = stft(istft(mag * angles))
        new = rebuilt - (momentum / (1 + momentum)) * prev
        angles = new / new.abs().clamp(min=1e-12)
        prev = rebuilt
    return istft(mag * angles)
