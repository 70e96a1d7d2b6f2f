"""Speech data: a seeded sentence grammar spoken by espeak-ng (several voices, rates and pitches) with
frame-level phoneme labels, split into train / validation / test by sentence, and a loader for real audio folders.

    corpus = synth_corpus(n_sentences=900, seed=0)          # log-mels + frame labels, disjoint splits
    corpus.split("train").frames[0]                          # (T, 80) normalised log-mel of one utterance
    corpus.split("train").labels[0]                          # (T,) phoneme ids, 0 = silence
    folder = load_audio_folder("my_wavs/")                   # wav/flac via soundfile, optional .txt transcripts

Every frame's label is the espeak phoneme whose span holds the frame's centre, or silence when the frame lies
outside every span or its energy is more than ``silence_db`` below the utterance's loudest frame (espeak reports
no event for the pauses at commas).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .mel import LogMel

SILENCE = "_"

# A small English grammar: its phoneme n-grams are the "language" a model should learn to continue.
GRAMMAR = {
    "S": [["NP", "VP"], ["NP", "VP", "and", "S"], ["NP", "VP", "PP"]],
    "NP": [["DET", "N"], ["DET", "ADJ", "N"], ["DET", "ADJ", "ADJ", "N"], ["NAME"]],
    "VP": [["V", "NP"], ["VI"], ["V", "NP", "ADV"], ["VI", "ADV"]],
    "PP": [["P", "NP"]],
    "DET": [["the"], ["a"], ["every"], ["some"], ["my"], ["that"]],
    "ADJ": [["big"], ["small"], ["green"], ["happy"], ["quiet"], ["old"], ["bright"], ["lazy"], ["clever"]],
    "N": [
        ["dog"],
        ["cat"],
        ["teacher"],
        ["river"],
        ["garden"],
        ["robot"],
        ["window"],
        ["baker"],
        ["horse"],
        ["student"],
        ["mountain"],
        ["apple"],
    ],
    "NAME": [["Anna"], ["Peter"], ["Maria"], ["John"], ["Lucy"]],
    "V": [["sees"], ["follows"], ["likes"], ["paints"], ["finds"], ["carries"], ["watches"], ["helps"]],
    "VI": [["sleeps"], ["runs"], ["sings"], ["waits"], ["laughs"], ["swims"]],
    "ADV": [["slowly"], ["today"], ["again"], ["quietly"], ["often"]],
    "P": [["near"], ["behind"], ["under"], ["with"]],
}

VOICES = ("en-us", "en-us+m3", "en-us+f2", "en-us+m7", "en-us+f4", "en-us+Annie")


def sentence(rng: random.Random, symbol: str = "S", depth: int = 0) -> str:
    options = GRAMMAR.get(symbol)
    if options is None:
        return symbol
    if depth > 2:  # keep recursion short
        options = [o for o in options if "S" not in o] or options
    return " ".join(sentence(rng, s, depth + 1) for s in rng.choice(options))


def split_of(text: str, fractions: tuple[float, float, float]) -> str:
    """Deterministic split of a sentence by the hash of its text: the same sentence always lands in one split."""
    h = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12
    if h < fractions[0]:
        return "train"
    return "val" if h < fractions[0] + fractions[1] else "test"


@dataclass
class Split:
    frames: list[torch.Tensor] = field(default_factory=list)  # (T, M) normalised log-mels
    labels: list[torch.Tensor] = field(default_factory=list)  # (T,) long phoneme ids
    texts: list[str] = field(default_factory=list)
    voices: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    def total_frames(self) -> int:
        return sum(len(f) for f in self.frames)


@dataclass
class Corpus:
    splits: dict[str, Split]
    phonemes: list[str]  # id -> symbol; 0 is silence
    mean: torch.Tensor
    std: torch.Tensor
    frontend: LogMel

    def split(self, name: str) -> Split:
        return self.splits[name]

    def denormalise(self, frames: torch.Tensor) -> torch.Tensor:
        return frames * self.std + self.mean

    def save(self, path: str | Path) -> None:
        """Write the corpus (log-mels before normalisation in float16, labels, texts) atomically: espeak-ng's
        audio is not bit-reproducible, so a resumed run reloads the corpus instead of speaking it again."""
        path = Path(path)
        state = {
            "phonemes": self.phonemes,
            "mean": self.mean,
            "std": self.std,
            "sample_rate": self.frontend.sample_rate,
            "n_mels": self.frontend.n_mels,
        }
        for name, sp in self.splits.items():
            state[name] = {
                "frames": [(f * self.std + self.mean).half() for f in sp.frames],
                "labels": [y.to(torch.uint8) for y in sp.labels],
                "texts": sp.texts,
                "voices": sp.voices,
            }
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Corpus:
        state = torch.load(path, weights_only=True)
        mean, std = state["mean"], state["std"]
        splits = {}
        for name in ("train", "val", "test"):
            s = state[name]
            splits[name] = Split(
                [(f.float() - mean) / std for f in s["frames"]],
                [y.long() for y in s["labels"]],
                list(s["texts"]),
                list(s["voices"]),
            )
        fe = LogMel(sample_rate=int(state["sample_rate"]), n_mels=int(state["n_mels"]))
        return cls(splits, list(state["phonemes"]), mean, std, fe)


def frame_labels(
    spans: Sequence[tuple[str, float, float]],
    n_frames: int,
    frame_rate: float,
    logmel: torch.Tensor,
    vocab: dict[str, int],
    silence_db: float = 40.0,
) -> torch.Tensor:
    """Phoneme id per frame (0: silence) from espeak spans ``(ipa, start_s, end_s)``."""
    centres = np.arange(n_frames) / frame_rate
    labels = np.zeros(n_frames, dtype=np.int64)
    for p, s, e in spans:
        idx = vocab.setdefault(p, len(vocab))
        labels[(centres >= s) & (centres < e)] = idx
    energy = torch.logsumexp(logmel, dim=-1).numpy()
    quiet = energy < energy.max() - silence_db / 10 * np.log(10)
    labels[quiet] = 0
    return torch.from_numpy(labels)


def synth_corpus(
    n_sentences: int = 900,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    voices: Sequence[str] = VOICES,
    rates: tuple[int, int] = (150, 200),
    pitches: tuple[int, int] = (35, 65),
    n_mels: int = 80,
) -> Corpus:
    """Speak ``n_sentences`` distinct grammar sentences (each once, with a random voice, rate and pitch),
    compute log-mels and frame labels, split by sentence, and normalise every bin with the train split's
    mean and std."""
    from .espeak import Espeak

    tts = Espeak()
    fe = LogMel(sample_rate=tts.sample_rate, n_mels=n_mels)
    rng = random.Random(seed)
    seen: set[str] = set()
    texts = []
    tries = 0
    while len(texts) < n_sentences and tries < 50 * n_sentences:
        tries += 1
        s = sentence(rng)
        if s not in seen:
            seen.add(s)
            texts.append(s)
    vocab = {SILENCE: 0}
    raw: dict[str, Split] = {k: Split() for k in ("train", "val", "test")}
    for text in texts:
        voice = rng.choice(list(voices))
        utt = tts.synth(text + ".", voice=voice, rate=rng.randint(*rates), pitch=rng.randint(*pitches))
        mel = fe(torch.from_numpy(utt.audio)).half().float()  # as stored by Corpus.save, so a reload is exact
        lab = frame_labels(utt.phonemes, mel.shape[0], fe.frame_rate, mel, vocab)
        sp = raw[split_of(text, fractions)]
        sp.frames.append(mel)
        sp.labels.append(lab)
        sp.texts.append(text)
        sp.voices.append(voice)
    if not raw["train"].frames:
        raise ValueError("the corpus has no training utterances; raise n_sentences")
    allf = torch.cat(raw["train"].frames)
    mean, std = allf.mean(0), allf.std(0).clamp(min=1e-3)
    for sp in raw.values():
        sp.frames = [(f - mean) / std for f in sp.frames]
    phonemes = sorted(vocab, key=vocab.get)
    return Corpus(raw, phonemes, mean, std, fe)


def crops(
    split: Split,
    n: int,
    ctx_frames: int,
    cont_frames: int,
    generator: torch.Generator,
    *,
    labels: bool = False,
):
    """``n`` random (context, continuation) windows from utterances of ``split``: (n, ctx, M), (n, cont, M)
    (and their frame labels with ``labels=True``). Utterances shorter than the window are padded with silence."""
    total = ctx_frames + cont_frames
    idx = torch.randint(len(split.frames), (n,), generator=generator)
    out, lab = [], []
    for i in idx.tolist():
        f, y = _padded(split.frames[i], split.labels[i], total)
        s = int(torch.randint(len(f) - total + 1, (1,), generator=generator))
        out.append(f[s : s + total])
        lab.append(y[s : s + total])
    x = torch.stack(out)
    if labels:
        y = torch.stack(lab)
        return x[:, :ctx_frames], x[:, ctx_frames:], y[:, :ctx_frames], y[:, ctx_frames:]
    return x[:, :ctx_frames], x[:, ctx_frames:]


def prompts(split: Split, ctx_frames: int, cont_frames: int, offset: int = 10):
    """One fixed (context, continuation, labels) window per utterance, starting ``offset`` frames in."""
    total = ctx_frames + cont_frames
    xs, ys = [], []
    for f, y in zip(split.frames, split.labels):
        f, y = _padded(f, y, offset + total)
        xs.append(f[offset : offset + total])
        ys.append(y[offset : offset + total])
    x, y = torch.stack(xs), torch.stack(ys)
    return x[:, :ctx_frames], x[:, ctx_frames:], y[:, :ctx_frames], y[:, ctx_frames:]


def _padded(f: torch.Tensor, y: torch.Tensor, total: int):
    if len(f) >= total:
        return f, y
    pad = total - len(f)
    return torch.cat([f, f[-1:].expand(pad, -1)]), torch.cat([y, y.new_zeros(pad)])


# -- real audio ------------------------------------------------------------------------------------------------

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def load_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 audio through soundfile (channels averaged), resampled by linear interpolation to
    ``sample_rate`` when given (for a front end; listening quality is not the point)."""
    import soundfile as sf

    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises its own LibsndfileError
        raise ValueError(f"cannot read audio file {path}: {str(e).splitlines()[0]}") from None
    audio = audio.mean(axis=1)
    if sample_rate is not None and sr != sample_rate and len(audio) > 1:
        n = int(round(len(audio) * sample_rate / sr))
        audio = np.interp(np.linspace(0, len(audio) - 1, n), np.arange(len(audio)), audio).astype(np.float32)
        sr = sample_rate
    return audio, sr


def load_audio_folder(root: str | Path, *, frontend: LogMel | None = None) -> dict:
    """Every wav/flac/ogg file under ``root`` (sorted), with the transcript from ``NAME.txt`` beside it when
    present: ``{"paths", "audio", "sample_rates", "transcripts", "logmels"}`` (log-mels when ``frontend``)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"audio folder {root} does not exist or is not a folder")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not paths:
        raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
    out: dict = {"paths": [], "audio": [], "sample_rates": [], "transcripts": [], "logmels": []}
    for p in paths:
        audio, sr = load_audio(p, frontend.sample_rate if frontend is not None else None)
        txt = p.with_suffix(".txt")
        out["paths"].append(str(p))
        out["audio"].append(audio)
        out["sample_rates"].append(sr)
        out["transcripts"].append(txt.read_text().strip() if txt.is_file() else None)
        if frontend is not None:
            out["logmels"].append(frontend(torch.from_numpy(audio)))
    return out
