"""A procedural, offline substitute for IMAC: music clips and images whose emotion is set by psychology's cues.

Music (Gabrielsson & Lindstroem 2010: fast tempo, major mode and a high level go with happiness; slow, minor and
soft with sadness): each clip is a melody on a scale with a triad on every beat, harmonic tones under an
exponential envelope, and background noise. The emotion class sets four cues:

=========  ============  ========  ==================  ===============
class      mode          BPM       level (RMS dBFS)    tonic (MIDI)
=========  ============  ========  ==================  ===============
positive   major         120-150   -12 ... -6          62-74
neutral    either        80-100    -18 ... -12         55-67
negative   minor         55-75     -24 ... -16         45-57
=========  ============  ========  ==================  ===============

Images (Valdez & Mehrabian 1994: pleasure = .69 brightness + .22 saturation; warm hues pleasant): the class sets the
background's value, saturation and hue (positive: V 0.7-1, S 0.6-1, warm; neutral: V 0.45-0.65, S 0.2-0.5, any hue;
negative: V 0.1-0.4, S 0-0.3, cool); class-independent content (shapes of random colour, stripes, pixel noise)
covers part of every picture, so that the mean pixel alone does not solve it.

Difficulty: every cue is drawn from a *random* class's range with probability ``cue_noise`` (so no single cue is
reliable), and the observed label differs from the generating class with probability ``label_flip`` (annotation
noise; the Bayes ceiling of per-item accuracy is then ``1 - label_flip``). Labels are 0 positive, 1 neutral,
2 negative (:data:`EMOTIONS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMOTIONS = ("positive", "neutral", "negative")
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11, 12])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10, 12])
# per class (positive, neutral, negative): ranges of the music cues
BPM = ((120.0, 150.0), (80.0, 100.0), (55.0, 75.0))
LEVEL_DB = ((-12.0, -6.0), (-18.0, -12.0), (-24.0, -16.0))
TONIC = ((62, 74), (55, 67), (45, 57))
# per class: value, saturation, hue (degrees; None = any)
VALUE = ((0.7, 1.0), (0.45, 0.65), (0.1, 0.4))
SATURATION = ((0.6, 1.0), (0.2, 0.5), (0.0, 0.3))
HUE = ((-40.0, 60.0), None, (180.0, 260.0))


@dataclass(frozen=True)
class SynthSpec:
    """Knobs of the substitute. ``cue_noise``: chance that a cue comes from a random class; ``label_flip``: chance
    that the observed label is another class than the one that generated the item."""

    sample_rate: int = 8000
    seconds: float = 3.0
    image_size: int = 32
    cue_noise: float = 0.3
    label_flip: float = 0.1
    noise_db: tuple[float, float] = (-40.0, -15.0)  # background noise relative to the music
    shapes: tuple[int, int] = (2, 6)


def _cue_class(labels: np.ndarray, rng: np.random.Generator, cue_noise: float) -> np.ndarray:
    swap = rng.random(len(labels)) < cue_noise
    return np.where(swap, rng.integers(0, 3, len(labels)), labels)


def _uniform(ranges, cls: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo = np.array([r[0] for r in ranges])[cls]
    hi = np.array([r[1] for r in ranges])[cls]
    return lo + (hi - lo) * rng.random(len(cls))


def observed_labels(true: np.ndarray, rng: np.random.Generator, flip: float) -> np.ndarray:
    """Annotation noise: with probability ``flip`` a label becomes one of the two other classes."""
    other = (true + rng.integers(1, 3, len(true))) % 3
    return np.where(rng.random(len(true)) < flip, other, true)


def music_cues(labels: np.ndarray, rng: np.random.Generator, spec: SynthSpec) -> dict[str, np.ndarray]:
    """The cue values of each clip (mode 1 = major), drawn from its class's ranges (or, with probability
    ``cue_noise`` per cue, from a random class's)."""
    n = len(labels)
    mode_cls = _cue_class(labels, rng, spec.cue_noise)
    major = np.where(mode_cls == 0, 1, np.where(mode_cls == 2, 0, rng.integers(0, 2, n)))
    bpm = _uniform(BPM, _cue_class(labels, rng, spec.cue_noise), rng)
    level = _uniform(LEVEL_DB, _cue_class(labels, rng, spec.cue_noise), rng)
    t_cls = _cue_class(labels, rng, spec.cue_noise)
    lo, hi = np.array([t[0] for t in TONIC])[t_cls], np.array([t[1] for t in TONIC])[t_cls]
    tonic = rng.integers(lo, hi + 1)
    return {"major": major, "bpm": bpm, "level_db": level, "tonic": tonic}


def _midi_hz(m: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def render_clip(
    major: int, bpm: float, level_db: float, tonic: int, rng: np.random.Generator, spec: SynthSpec
) -> np.ndarray:
    """One clip: eighth-note melody on the scale above ``tonic``, a triad an octave below on every beat, tones of
    1-6 harmonics (random roll-off) with exponential decay, background noise; RMS scaled to ``level_db`` dBFS."""
    sr, n = spec.sample_rate, int(round(spec.seconds * spec.sample_rate))
    out = np.zeros(n)
    scale = MAJOR if major else MINOR
    beat = 60.0 / bpm
    harmonics = rng.integers(1, 7)
    rolloff = rng.uniform(0.5, 1.5)
    amps = np.arange(1, harmonics + 1, dtype=np.float64) ** -rolloff
    decay = rng.uniform(0.1, 0.4)
    offset = rng.uniform(0, beat)  # clips start anywhere in the bar

    def add(onset: float, midi: np.ndarray, gain: float, length: float) -> None:
        i0 = int(onset * sr)
        if i0 >= n:
            return
        m = min(n - i0, int(length * sr))
        t = np.arange(m) / sr
        f = _midi_hz(midi)[:, None, None] * np.arange(1, harmonics + 1)[None, :, None]  # [notes, H, 1]
        tone = (amps[None, :, None] * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, f.shape))).sum(
            (0, 1)
        )
        out[i0 : i0 + m] += gain * tone * np.exp(-t / decay)

    onset = offset - beat
    degree = rng.integers(0, 5)
    while onset < spec.seconds:
        if onset + beat > 0:
            root = rng.choice([0, 3, 4, 5])  # I, IV, V, vi (or the minor scale's i, iv, v, VI)
            chord = (
                tonic
                - 12
                + np.array(
                    [
                        scale[root % 7],
                        scale[(root + 2) % 7] + 12 * ((root + 2) // 7),
                        scale[(root + 4) % 7] + 12 * ((root + 4) // 7),
                    ]
                )
            )
            add(max(onset, 0.0), chord, 0.35, beat * 1.5)
            for half in (0, 1):
                degree = int(np.clip(degree + rng.integers(-2, 3), 0, 7))
                start = onset + half * beat / 2
                if start >= 0:
                    add(start, np.array([tonic + scale[degree]]), 0.6, beat)
        onset += beat
    out += (
        rng.standard_normal(n) * np.sqrt(np.mean(out**2) + 1e-12) * 10 ** (rng.uniform(*spec.noise_db) / 20)
    )
    rms = np.sqrt(np.mean(out**2)) + 1e-12
    return (out * (10 ** (level_db / 20) / rms)).astype(np.float32)


def synth_music(labels: np.ndarray, seed: int, spec: SynthSpec = SynthSpec()) -> dict[str, np.ndarray]:
    """Clips ``[N, samples]`` (float32, RMS at the cue's level) generated from the classes ``labels`` (the *true*
    classes; apply :func:`observed_labels` for annotation noise), with their cues."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    cues = music_cues(labels, rng, spec)
    waves = (
        np.stack(
            [
                render_clip(
                    int(cues["major"][i]),
                    float(cues["bpm"][i]),
                    float(cues["level_db"][i]),
                    int(cues["tonic"][i]),
                    rng,
                    spec,
                )
                for i in range(len(labels))
            ]
        )
        if len(labels)
        else np.zeros((0, int(round(spec.seconds * spec.sample_rate))), np.float32)
    )
    return {"waves": waves, **cues}


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (h in degrees, s and v in [0, 1]) to RGB in [0, 1]; the last axis of the result is RGB."""
    h = np.mod(h, 360.0) / 60.0
    c = v * s
    x = c * (1 - np.abs(np.mod(h, 2) - 1))
    zero = np.zeros_like(c)
    sector = np.floor(h).astype(int) % 6
    r = np.choose(sector, [c, x, zero, zero, x, c])
    g = np.choose(sector, [x, c, c, x, zero, zero])
    b = np.choose(sector, [zero, zero, x, c, c, x])
    m = v - c
    return np.stack([r + m, g + m, b + m], axis=-1)


def image_cues(labels: np.ndarray, rng: np.random.Generator, spec: SynthSpec) -> dict[str, np.ndarray]:
    n = len(labels)
    value = _uniform(VALUE, _cue_class(labels, rng, spec.cue_noise), rng)
    sat = _uniform(SATURATION, _cue_class(labels, rng, spec.cue_noise), rng)
    h_cls = _cue_class(labels, rng, spec.cue_noise)
    hue = rng.uniform(0, 360, n)
    for c, r in enumerate(HUE):
        if r is not None:
            sel = h_cls == c
            hue[sel] = rng.uniform(r[0], r[1], int(sel.sum()))
    return {"value": value, "saturation": sat, "hue": np.mod(hue, 360.0)}


def synth_images(labels: np.ndarray, seed: int, spec: SynthSpec = SynthSpec()) -> dict[str, np.ndarray]:
    """Images ``[N, 3, S, S]`` (uint8) whose background carries the class's HSV cues, under class-independent
    content: random-colour discs and boxes, stripes in half the pictures, a brightness gradient, pixel noise."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    n, s = len(labels), spec.image_size
    cues = image_cues(labels, rng, spec)
    yy, xx = np.meshgrid(np.linspace(0, 1, s), np.linspace(0, 1, s), indexing="ij")
    bg = hsv_to_rgb(cues["hue"], cues["saturation"], cues["value"])  # [N, 3]
    img = np.broadcast_to(bg[:, None, None, :], (n, s, s, 3)).copy()
    grad = rng.uniform(-0.15, 0.15, (n, 1, 1, 1)) * (yy[None, :, :, None] - 0.5)
    img += grad
    stripes = rng.random(n) < 0.5
    freq, phase = rng.uniform(3, 8, n), rng.uniform(0, 2 * np.pi, n)
    angle = rng.uniform(0, np.pi, n)
    proj = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    wave = 0.12 * np.sin(2 * np.pi * freq[:, None, None] * proj + phase[:, None, None])
    img += (stripes[:, None, None] * wave)[..., None]
    count = rng.integers(spec.shapes[0], spec.shapes[1] + 1, n)
    for j in range(spec.shapes[1]):
        cx, cy, r = rng.random(n), rng.random(n), rng.uniform(0.08, 0.25, n)
        disc = rng.random(n) < 0.5
        d_disc = (xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2 < r[:, None, None] ** 2
        d_box = (np.abs(xx - cx[:, None, None]) < r[:, None, None]) & (
            np.abs(yy - cy[:, None, None]) < r[:, None, None]
        )
        mask = np.where(disc[:, None, None], d_disc, d_box) & (j < count)[:, None, None]
        color = hsv_to_rgb(rng.uniform(0, 360, n), rng.uniform(0, 1, n), rng.uniform(0, 1, n))
        img = np.where(mask[..., None], color[:, None, None, :], img)
    img += rng.normal(0, 0.04, img.shape)
    img = np.clip(img, 0, 1)
    return {"images": (img * 255 + 0.5).astype(np.uint8).transpose(0, 3, 1, 2).copy(), **cues}


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] (last axis) to HSV with h in degrees."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    d = mx - mn
    safe = np.where(d == 0, 1, d)
    h = np.where(
        mx == r, np.mod((g - b) / safe, 6), np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    h = np.where(d == 0, 0.0, 60.0 * h)
    s = np.where(mx == 0, 0.0, d / np.where(mx == 0, 1, mx))
    return np.stack([h, s, mx], -1)


def hsv_histogram(images: np.ndarray, bins: int = 8) -> np.ndarray:
    """The raw-feature floor for images: per-image normalised histograms of H, S and V (``[N, 3 * bins]``)."""
    hsv = rgb_to_hsv(images.transpose(0, 2, 3, 1).astype(np.float64) / 255.0).reshape(len(images), -1, 3)
    out = []
    for c, top in enumerate((360.0, 1.0, 1.0)):
        idx = np.clip((hsv[..., c] / top * bins).astype(int), 0, bins - 1)
        hist = np.zeros((len(images), bins))
        np.add.at(hist, (np.arange(len(images))[:, None], idx), 1.0)
        out.append(hist / idx.shape[1])
    return np.concatenate(out, 1)


def mel_statistics(log_mel: np.ndarray) -> np.ndarray:
    """The raw-feature floor for music: per-band mean and standard deviation of a log-mel spectrogram over time,
    plus the spectral-flux mean and std (an onset-rate proxy): ``[N, 2 * n_mels + 2]``."""
    flux = np.diff(log_mel, axis=-1).clip(min=0).mean(1)
    return np.concatenate(
        [log_mel.mean(-1), log_mel.std(-1), flux.mean(-1, keepdims=True), flux.std(-1, keepdims=True)], 1
    )
