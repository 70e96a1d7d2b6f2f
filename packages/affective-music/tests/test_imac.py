"""The loader for the real IMAC layout, on a tiny folder of WAVs and PNGs that the test writes."""

import csv
import wave

import numpy as np
import pytest
from affective_music.imac import load_clip, load_imac, read_wav
from paperkit import ConfigError
from PIL import Image


def write_wav(path, x: np.ndarray, sr: int, width: int = 2) -> None:
    """``x``: float [samples, channels] in [-1, 1]."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(width)
        w.setframerate(sr)
        if width == 2:
            w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
        else:
            w.writeframes((np.clip(x, -1, 1) * (2**31 - 1)).astype("<i4").tobytes())


def write_imac(root, n_images=9, n_clips=6, sr=11025):
    (root / "images" / "flickr").mkdir(parents=True)
    (root / "music").mkdir()
    labels = ["positive", "neutral", "negative"]
    with open(root / "images.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subdir_name", "file_name", "label"])
        for i in range(n_images):
            arr = np.full((20, 30, 3), 60 * (i % 3), np.uint8)
            Image.fromarray(arr).save(root / "images" / "flickr" / f"{i}.png")
            w.writerow(["flickr", f"{i}.png", labels[i % 3]])
    with open(root / "music.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "label", "start_s", "dur_s"])
        for i in range(n_clips):
            t = np.arange(int(1.5 * sr)) / sr
            tone = 0.5 * np.sin(2 * np.pi * 440 * t)
            write_wav(root / "music" / f"{i}.wav", np.stack([tone, tone], 1), sr)  # stereo
            w.writerow([f"{i}.wav", str(i % 3), "0.25", ""])
    return root


def test_loads_the_layout(tmp_path):
    root = write_imac(tmp_path / "imac")
    d = load_imac(root, sample_rate=8000, seconds=1.0, image_size=16)
    assert d["waves"].shape == (6, 8000) and d["waves"].dtype == np.float32
    assert d["images"].shape == (9, 3, 16, 16) and d["images"].dtype == np.uint8
    assert d["image_labels"].tolist() == [0, 1, 2] * 3 and d["clip_labels"].tolist() == [0, 1, 2] * 2
    assert d["images"][1].mean() == pytest.approx(60, abs=1)


def test_resampling_keeps_the_pitch(tmp_path):
    root = write_imac(tmp_path / "imac")
    clip = load_clip(root / "music" / "0.wav", 8000, 1.0, 0.25)
    spec = np.abs(np.fft.rfft(clip))
    assert np.argmax(spec) * 8000 / len(clip) == pytest.approx(440, abs=2)
    assert np.sqrt((clip**2).mean()) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_short_clips_are_zero_padded(tmp_path):
    root = write_imac(tmp_path / "imac")
    clip = load_clip(root / "music" / "0.wav", 8000, 3.0)
    assert len(clip) == 24000 and np.all(clip[int(1.5 * 8000) + 10 :] == 0)


def test_32_bit_wav(tmp_path):
    x = np.linspace(-0.5, 0.5, 100)[:, None]
    write_wav(tmp_path / "a.wav", x, 8000, width=4)
    y, sr = read_wav(tmp_path / "a.wav")
    assert sr == 8000 and np.allclose(y, x, atol=1e-6)


@pytest.mark.parametrize(
    "damage, words",
    [
        ("label", "is not one of"),
        ("missing_audio", "no audio file"),
        ("missing_csv", "music.csv is missing"),
        ("bad_image", "cannot read image"),
        ("columns", "missing column"),
    ],
)
def test_bad_folders_are_config_errors(tmp_path, damage, words):
    root = write_imac(tmp_path / "imac")
    if damage == "label":
        text = (root / "images.csv").read_text().replace("neutral", "joyful", 1)
        (root / "images.csv").write_text(text)
    elif damage == "missing_audio":
        (root / "music" / "3.wav").unlink()
    elif damage == "missing_csv":
        (root / "music.csv").unlink()
    elif damage == "bad_image":
        (root / "images" / "flickr" / "2.png").write_bytes(b"not a png")
    elif damage == "columns":
        (root / "music.csv").write_text("name,emotion\na.wav,positive\n")
    with pytest.raises(ConfigError, match=words):
        load_imac(root, sample_rate=8000, seconds=1.0, image_size=16)
