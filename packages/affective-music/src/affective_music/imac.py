"""A loader for the real IMAC layout (Verma et al. 2019; the data set is distributed as URLs, fetched by the user).

Layout (the image schema is Emo-CLIM's IMAC loader's)::

    ROOT/images.csv       subdir_name,file_name,label        (label: positive|neutral|negative, or 0|1|2)
    ROOT/images/SUBDIR/FILE
    ROOT/music.csv        file_name,label[,start_s,dur_s]
    ROOT/music/FILE       .wav (read with the standard library), or .flac/.ogg when soundfile is installed

Audio is mixed to mono, resampled with ``scipy.signal.resample_poly`` to the front end's rate, and cropped at
``start_s`` (default 0) to ``seconds`` (zero-padded when shorter). Images are converted to RGB and resized to
``size x size``. Every problem (missing file, bad label, unreadable audio) is a :class:`paperkit.ConfigError`
naming the file.
"""

from __future__ import annotations

import csv
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
from paperkit import ConfigError

from .synth import EMOTIONS


def parse_label(raw: str, where: str) -> int:
    s = str(raw).strip().lower()
    if s in EMOTIONS:
        return EMOTIONS.index(s)
    if s in ("0", "1", "2"):
        return int(s)
    raise ConfigError(f"{where}: label {raw!r} is not one of {', '.join(EMOTIONS)} (or 0, 1, 2)")


def _rows(path: Path, required: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"IMAC folder: {path} is missing")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in required if c not in fields]
        if missing:
            raise ConfigError(
                f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(fields) or 'none'})"
            )
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A PCM WAV (8, 16, 24 or 32 bit) as float32 ``[samples, channels]`` in [-1, 1], and its sample rate."""
    try:
        with wave.open(str(path), "rb") as w:
            sr, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError, OSError) as e:
        raise ConfigError(f"cannot read audio {path}: {e}") from None
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / (1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2**31
    else:
        raise ConfigError(f"cannot read audio {path}: {8 * width}-bit samples")
    return x.reshape(-1, ch), sr


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    if path.suffix.lower() == ".wav":
        return read_wav(path)
    try:
        import soundfile
    except ImportError:
        raise ConfigError(
            f"{path}: reading {path.suffix} needs the soundfile package (WAV needs nothing)"
        ) from None
    try:
        x, sr = soundfile.read(str(path), always_2d=True, dtype="float32")
    except Exception as e:  # soundfile raises its own types
        raise ConfigError(f"cannot read audio {path}: {e}") from None
    return x, sr


def load_clip(path: Path, sample_rate: int, seconds: float, start_s: float = 0.0) -> np.ndarray:
    """Mono, resampled to ``sample_rate``, cropped at ``start_s`` to ``seconds`` (zero-padded): float32."""
    from scipy.signal import resample_poly

    x, sr = read_audio(path)
    mono = x.mean(1)
    if sr != sample_rate:
        r = Fraction(sample_rate, sr).limit_denominator(1000)
        mono = resample_poly(mono, r.numerator, r.denominator).astype(np.float32)
    n = int(round(seconds * sample_rate))
    i0 = int(round(start_s * sample_rate))
    clip = mono[i0 : i0 + n]
    return np.pad(clip, (0, n - len(clip))).astype(np.float32)


def load_imac(
    root: str | Path,
    *,
    sample_rate: int = 8000,
    seconds: float = 3.0,
    image_size: int = 32,
    max_images: int | None = None,
    max_clips: int | None = None,
) -> dict[str, np.ndarray]:
    """``{"waves": float32 [N, samples], "clip_labels": [N], "images": uint8 [M, 3, S, S], "image_labels": [M]}``."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"IMAC folder {root} does not exist")
    images, image_labels = [], []
    for i, row in enumerate(_rows(root / "images.csv", ("subdir_name", "file_name", "label"))[:max_images]):
        where = f"images.csv row {i + 2}"
        image_labels.append(parse_label(row["label"], where))
        p = root / "images" / row["subdir_name"] / row["file_name"]
        try:
            with Image.open(p) as im:
                im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                images.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy())
        except (OSError, UnidentifiedImageError) as e:
            raise ConfigError(f"{where}: cannot read image {p}: {e}") from None
    waves, clip_labels = [], []
    for i, row in enumerate(_rows(root / "music.csv", ("file_name", "label"))[:max_clips]):
        where = f"music.csv row {i + 2}"
        clip_labels.append(parse_label(row["label"], where))
        p = root / "music" / row["file_name"]
        if not p.is_file():
            raise ConfigError(f"{where}: no audio file {p}")
        try:
            start = float(row.get("start_s") or 0.0)
            dur = float(row.get("dur_s") or seconds)
        except ValueError:
            raise ConfigError(f"{where}: start_s/dur_s must be numbers") from None
        clip = load_clip(p, sample_rate, min(dur, seconds), start)
        waves.append(np.pad(clip, (0, int(round(seconds * sample_rate)) - len(clip))))
    if not images or not waves:
        raise ConfigError(f"IMAC folder {root}: needs at least one image and one clip")
    return {
        "waves": np.stack(waves).astype(np.float32),
        "clip_labels": np.asarray(clip_labels),
        "images": np.stack(images),
        "image_labels": np.asarray(image_labels),
    }
