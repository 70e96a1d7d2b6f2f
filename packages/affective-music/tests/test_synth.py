"""The synthetic IMAC substitute honours its labels; the raw-feature floors; HSV conversions."""

import numpy as np
import pytest
from affective_music.frontend import LogMel
from affective_music.synth import (
    LEVEL_DB,
    SATURATION,
    VALUE,
    SynthSpec,
    hsv_histogram,
    hsv_to_rgb,
    mel_statistics,
    music_cues,
    observed_labels,
    rgb_to_hsv,
    synth_images,
    synth_music,
)

CLEAN = SynthSpec(seconds=1.5, image_size=16, cue_noise=0.0, label_flip=0.0)
LABELS = np.repeat([0, 1, 2], 6)


def test_music_level_is_the_class_level():
    m = synth_music(LABELS, 0, CLEAN)
    assert m["waves"].shape == (18, int(1.5 * 8000)) and m["waves"].dtype == np.float32
    rms_db = 20 * np.log10(np.sqrt((m["waves"].astype(np.float64) ** 2).mean(1)))
    np.testing.assert_allclose(rms_db, m["level_db"], atol=1e-3)
    for c in range(3):
        lo, hi = LEVEL_DB[c]
        assert np.all((rms_db[LABELS == c] >= lo - 1e-3) & (rms_db[LABELS == c] <= hi + 1e-3))


def test_music_cues_follow_the_class_table():
    cues = music_cues(np.repeat([0, 1, 2], 200), np.random.default_rng(0), CLEAN)
    pos, neu, neg = (slice(0, 200), slice(200, 400), slice(400, 600))
    assert cues["major"][pos].all() and not cues["major"][neg].any() and 0.3 < cues["major"][neu].mean() < 0.7
    assert cues["bpm"][pos].min() >= 120 and cues["bpm"][neu].max() <= 100 and cues["bpm"][neg].max() <= 75
    assert cues["tonic"][pos].min() >= 62 and cues["tonic"][neg].max() <= 57


def test_cue_noise_takes_cues_from_other_classes():
    cues = music_cues(np.zeros(2000, int), np.random.default_rng(0), SynthSpec(cue_noise=0.3))
    slow = (cues["bpm"] < 120).mean()  # a random class's range: 2/3 of those leave the positive range
    assert 0.15 < slow < 0.25


def test_register_shows_in_the_spectrum():
    """Positive clips (higher tonic) put more energy in high mel bands than negative ones (clean cues)."""
    m = synth_music(np.repeat([0, 2], 8), 1, CLEAN)
    import torch

    lm = LogMel(8000, 512, 256, 32)(torch.from_numpy(m["waves"])).numpy()
    lm = lm - lm.mean((1, 2), keepdims=True)  # remove loudness
    centroid = (np.exp(lm).mean(2) * np.arange(32)).sum(1) / np.exp(lm).mean(2).sum(1)
    assert centroid[:8].min() > np.median(centroid[8:])


def test_images_background_carries_the_class_hsv():
    spec = SynthSpec(image_size=16, cue_noise=0.0, shapes=(0, 0))
    out = synth_images(LABELS, 0, spec)
    assert out["images"].shape == (18, 3, 16, 16) and out["images"].dtype == np.uint8
    for c in range(3):
        assert np.all((out["value"][LABELS == c] >= VALUE[c][0]) & (out["value"][LABELS == c] <= VALUE[c][1]))
        sel = LABELS == c
        assert np.all(
            (out["saturation"][sel] >= SATURATION[c][0]) & (out["saturation"][sel] <= SATURATION[c][1])
        )
    hues = out["hue"]
    assert np.all((hues[LABELS == 2] >= 180) & (hues[LABELS == 2] <= 260))
    v = out["images"].max(1).mean((1, 2)) / 255  # HSV value = max(R, G, B)
    assert v[LABELS == 0].min() > v[LABELS == 1].max() > v[LABELS == 1].min() > v[LABELS == 2].max()


def test_content_hides_part_of_the_background():
    spec = SynthSpec(image_size=16, cue_noise=0.0)
    clean = synth_images(LABELS, 0, SynthSpec(image_size=16, cue_noise=0.0, shapes=(0, 0)))["images"]
    busy = synth_images(LABELS, 0, spec)["images"]
    changed = (np.abs(busy.astype(int) - clean.astype(int)).max(1) > 40).mean()
    assert 0.1 < changed < 0.9


def test_observed_labels_flip_at_the_stated_rate_to_other_classes():
    true = np.random.default_rng(0).integers(0, 3, 20000)
    obs = observed_labels(true, np.random.default_rng(1), 0.1)
    assert abs((obs != true).mean() - 0.1) < 0.01
    flipped = obs[obs != true] - true[obs != true]
    assert set(np.unique(flipped % 3)) == {1, 2}


def test_generators_are_deterministic():
    a, b = synth_music(LABELS[:4], 3, CLEAN), synth_music(LABELS[:4], 3, CLEAN)
    assert np.array_equal(a["waves"], b["waves"])
    assert np.array_equal(synth_images(LABELS, 3)["images"], synth_images(LABELS, 3)["images"])


def test_hsv_round_trip():
    rng = np.random.default_rng(0)
    h, s, v = rng.uniform(0, 360, 500), rng.uniform(0.05, 1, 500), rng.uniform(0.05, 1, 500)
    back = rgb_to_hsv(hsv_to_rgb(h, s, v))
    np.testing.assert_allclose(back[:, 1], s, atol=1e-9)
    np.testing.assert_allclose(back[:, 2], v, atol=1e-9)
    np.testing.assert_allclose(np.cos(np.radians(back[:, 0] - h)), 1, atol=1e-9)
    np.testing.assert_allclose(
        hsv_to_rgb(np.array([0.0, 120, 240]), np.ones(3), np.ones(3)), np.eye(3), atol=1e-12
    )


def test_raw_features():
    imgs = synth_images(LABELS, 0, CLEAN)["images"]
    hist = hsv_histogram(imgs, bins=8)
    assert hist.shape == (18, 24)
    np.testing.assert_allclose(hist.reshape(18, 3, 8).sum(2), 1.0)
    stats = mel_statistics(np.random.default_rng(0).standard_normal((5, 32, 40)))
    assert stats.shape == (5, 66)


@pytest.mark.parametrize("flip", [0.0, 0.1])
def test_raw_floor_is_learnable_but_not_trivial(flip):
    """A linear classifier on raw features beats chance clearly on the default substitute and stays below the
    label-noise ceiling (1 - flip): the substitute is neither unlearnable nor trivially separable."""
    from paperkit.evaluation import linear_probe

    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 900)
    obs = observed_labels(true, rng, flip)
    imgs = synth_images(true, 1, SynthSpec(image_size=16, label_flip=flip))["images"]
    acc = linear_probe(hsv_histogram(imgs[:600]), obs[:600], hsv_histogram(imgs[600:]), obs[600:])
    assert 0.55 < acc < 1 - flip + 0.02
