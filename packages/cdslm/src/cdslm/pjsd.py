"""pJSD, the phoneme Jensen-Shannon divergence: how far the phoneme statistics of generated speech are from those
of real speech (lower is better; 0 for identical, 1 for disjoint distributions, in bits).

    rec = train_recogniser(corpus.split("train"), n_classes=len(corpus.phonemes))   # frame classifier on log-mels
    gen_seqs = rec.decode(generated_frames)                                           # phoneme id sequences
    real_seqs = rec.decode(real_frames)
    pjsd(gen_seqs, real_seqs, n=1)

P and Q are pooled phoneme n-gram counts of the two sets, smoothed by add-``eps`` over the union vocabulary;
``pJSD = KL(P||M)/2 + KL(Q||M)/2`` with ``M = (P + Q)/2`` and log base 2. The real-vs-real floor is the pJSD of
two disjoint halves of the real data. The recogniser is fixed once trained (on synthetic aligned speech), so it
scores every arm the same way, and it never sees the test split.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def ngram_counts(seqs: Sequence[Sequence[int]], n: int = 1) -> Counter:
    c: Counter = Counter()
    for s in seqs:
        s = list(s)
        for i in range(len(s) - n + 1):
            c[tuple(s[i : i + n])] += 1
    return c


def jsd_bits(p: Counter | dict, q: Counter | dict, eps: float = 0.0) -> float:
    """Jensen-Shannon divergence (bits) between two count tables, add-``eps`` smoothed over their union."""
    keys = sorted(set(p) | set(q))
    if not keys:
        return float("nan")
    pv = torch.tensor([p.get(k, 0) + eps for k in keys], dtype=torch.float64)
    qv = torch.tensor([q.get(k, 0) + eps for k in keys], dtype=torch.float64)
    if pv.sum() <= 0 or qv.sum() <= 0:
        return float("nan")
    pv, qv = pv / pv.sum(), qv / qv.sum()
    m = 0.5 * (pv + qv)

    def kl(a: torch.Tensor) -> float:
        nz = a > 0
        return float((a[nz] * torch.log2(a[nz] / m[nz])).sum())

    return max(0.0, 0.5 * kl(pv) + 0.5 * kl(qv))


def pjsd(gen: Sequence[Sequence[int]], real: Sequence[Sequence[int]], n: int = 1, eps: float = 0.5) -> float:
    """pJSD of two sets of phoneme sequences (pooled n-gram counts)."""
    return jsd_bits(ngram_counts(gen, n), ngram_counts(real, n), eps)


def collapse(frame_ids: Sequence[int], min_run: int = 2, silence: int = 0) -> list[int]:
    """Frame labels -> phoneme sequence: merge runs, drop runs shorter than ``min_run`` frames and silence."""
    out: list[int] = []
    prev, run = None, 0
    ids = list(frame_ids) + [None]
    for x in ids:
        if x == prev:
            run += 1
            continue
        if prev is not None and prev != silence and run >= min_run and (not out or out[-1] != prev):
            out.append(prev)
        prev, run = x, 1
    return out


class Recogniser(nn.Module):
    """Frame-level phoneme classifier on normalised log-mels: three 1-D convolutions (receptive field 13 frames)."""

    def __init__(self, n_mels: int, n_classes: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(n_mels, hidden, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(hidden, n_classes, 1),
        )
        self.min_run = 2

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, M) -> logits (B, T, classes)."""
        return self.net(frames.transpose(1, 2)).transpose(1, 2)

    @torch.no_grad()
    def decode(self, frames: torch.Tensor) -> list[list[int]]:
        """Greedy frame labels, collapsed into one phoneme sequence per example."""
        ids = self(frames).argmax(-1)
        return [collapse(row.tolist(), self.min_run) for row in ids]


def train_recogniser(
    split,
    n_classes: int,
    *,
    steps: int = 600,
    batch: int = 32,
    window: int = 96,
    lr: float = 3e-3,
    hidden: int = 128,
    seed: int = 0,
) -> Recogniser:
    """Train the recogniser on random windows of a split's frames and labels (cross-entropy per frame)."""
    from .data import crops

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n_mels = split.frames[0].shape[1]
    rec = Recogniser(n_mels, n_classes, hidden)
    opt = torch.optim.AdamW(rec.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    for _ in range(steps):
        x, _, y, _ = crops(split, batch, window, 0, g, labels=True)
        loss = F.cross_entropy(rec(x).reshape(-1, n_classes), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return rec.eval()


@torch.no_grad()
def frame_accuracy(rec: Recogniser, frames: torch.Tensor, labels: torch.Tensor) -> float:
    return float((rec(frames).argmax(-1) == labels).float().mean())


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def phoneme_error_rate(hyp: Sequence[Sequence[int]], ref: Sequence[Sequence[int]]) -> float:
    errs = sum(edit_distance(h, r) for h, r in zip(hyp, ref))
    return errs / max(1, sum(len(r) for r in ref))


class BigramBaseline:
    """A phoneme-bigram continuation baseline trained on the same aligned training data: it samples a phoneme
    sequence from bigram transitions (starting from the prompt's last recognised phoneme), a duration per phoneme
    from that phoneme's training durations, and fills the frames with the phoneme's mean training log-mel
    (a concatenative "vocoder"), so the same recogniser scores it like any model."""

    def __init__(self, split, n_classes: int, min_run: int = 2):
        trans = torch.ones(n_classes, n_classes)  # add-one
        sums = torch.zeros(n_classes, split.frames[0].shape[1])
        counts = torch.zeros(n_classes)
        durations: dict[int, list[int]] = {}
        for f, y in zip(split.frames, split.labels):
            sums.index_add_(0, y, f)
            counts += torch.bincount(y, minlength=n_classes).float()
            seq, runs = _runs(y.tolist())
            for a, b in zip(seq, seq[1:]):
                trans[a, b] += 1
            for p, r in zip(seq, runs):
                durations.setdefault(p, []).append(r)
        self.trans = trans / trans.sum(1, keepdim=True)
        self.templates = sums / counts.clamp(min=1)[:, None]
        self.durations = {p: torch.tensor(d) for p, d in durations.items()}
        self.n_classes = n_classes

    def generate(self, last: Sequence[int], frames: int, generator: torch.Generator) -> torch.Tensor:
        """(B, frames, M) continuations; ``last[i]`` is the phoneme the i-th prompt ends with."""
        out = []
        for p in last:
            seq: list[torch.Tensor] = []
            n = 0
            while n < frames:
                p = int(torch.multinomial(self.trans[p], 1, generator=generator))
                d = self.durations.get(p)
                r = int(d[torch.randint(len(d), (1,), generator=generator)]) if d is not None else 5
                seq.append(self.templates[p].expand(r, -1))
                n += r
            out.append(torch.cat(seq)[:frames])
        return torch.stack(out)


def _runs(ids: list[int]) -> tuple[list[int], list[int]]:
    seq, runs = [], []
    for x in ids:
        if seq and seq[-1] == x:
            runs[-1] += 1
        else:
            seq.append(x)
            runs.append(1)
    return seq, runs


def last_phoneme(seqs: Sequence[Sequence[int]]) -> list[int]:
    return [s[-1] if s else 0 for s in seqs]


def entropy_bits(counts: Counter) -> float:
    tot = sum(counts.values())
    return -sum(c / tot * math.log2(c / tot) for c in counts.values() if c) if tot else float("nan")
