"""Writes tests/data/librosa_reference.npz: librosa's HTK mel filterbank and mel spectrogram for fixed inputs.

Run once with librosa installed (it is not a dependency of this package):
    python packages/affective-music/tests/make_librosa_reference.py
The tests compare the torch front end with these numbers, and with librosa itself when it is importable.
"""

from pathlib import Path

import numpy as np

CASES = [  # sample_rate, n_fft, hop, n_mels, f_min, f_max
    (8000, 64, 32, 10, 0.0, None),
    (16000, 128, 48, 24, 50.0, 7000.0),
]


def signal(sample_rate: int) -> np.ndarray:
    """A deterministic test signal: a chirp plus two tones, 0.1 s."""
    t = np.arange(int(0.1 * sample_rate)) / sample_rate
    return (
        0.5 * np.sin(2 * np.pi * (200 + 3000 * t) * t)
        + 0.3 * np.sin(2 * np.pi * 440 * t)
        + 0.1 * np.sin(2 * np.pi * 1234.5 * t)
    ).astype(np.float32)


def main() -> None:
    import librosa

    out = {}
    for i, (sr, n_fft, hop, n_mels, fmin, fmax) in enumerate(CASES):
        out[f"fb{i}"] = librosa.filters.mel(
            sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=True, norm=None
        )
        out[f"mel{i}"] = librosa.feature.melspectrogram(
            y=signal(sr),
            sr=sr,
            n_fft=n_fft,
            hop_length=hop,
            window="hann",
            center=True,
            pad_mode="constant",
            power=2.0,
            n_mels=n_mels,
            fmin=fmin,
            fmax=fmax,
            htk=True,
            norm=None,
        )
    out["librosa_version"] = np.array(librosa.__version__)
    path = Path(__file__).parent / "data" / "librosa_reference.npz"
    np.savez_compressed(path, **out)
    print("wrote", path, "librosa", librosa.__version__)


if __name__ == "__main__":
    main()
