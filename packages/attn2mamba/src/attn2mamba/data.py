"""Text, tokenizers and batches.

- The default corpus is the English text of the Python documentation in the standard library
  (``pydoc_data.topics``, about 465 KB in 79 topics): no download.
- ``--data`` takes a text file, a folder of text files, or a ``.npy`` array of token ids (memory-mapped; the way
  to bring a large pre-tokenised corpus).
- Tokenizers: bytes (vocabulary 256), or a teacher's ``tokenizer.json`` (through the ``tokenizers`` library).
- Three disjoint splits: train, validation (hyperparameters, curves) and test (claims). Text corpora are
  deduplicated at paragraph level first (pydoc topics nest: ``specialnames`` repeats other topics' paragraphs),
  whole documents are then dealt to test and validation (a seeded choice) until ``test_fraction`` and
  ``val_fraction`` of the bytes, and a validation or test paragraph that shares any 64-byte string with an
  earlier split is dropped (:func:`split_documents`). A single document is cut in three contiguous parts; a
  ``.npy`` of token ids likewise (validation, then test, at its end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text", ".py", ".html", ".tex", ".json", ".csv"}


class DataError(ValueError):
    """Unusable data or tokenizer input (one-line message)."""


class ByteTokenizer:
    """UTF-8 bytes as tokens (ids 0..255)."""

    name = "bytes"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")


class FileTokenizer:
    """A Hugging Face ``tokenizer.json`` (e.g. Pythia's), read with the ``tokenizers`` library."""

    name = "teacher"

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise DataError(f"no tokenizer file at {path}")
        try:
            self.tok = Tokenizer.from_file(str(path))
        except Exception as e:
            raise DataError(f"cannot read tokenizer {path}: {str(e).splitlines()[0]}") from None
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.tok.encode(text).ids, dtype=np.int64)

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])


def make_tokenizer(kind: str, teacher_dir: str | None) -> ByteTokenizer | FileTokenizer:
    """``bytes``, or ``teacher`` (the teacher folder's ``tokenizer.json``). A teacher folder that ships its own
    tokenizer refuses byte tokens: byte ids would index its vocabulary meaninglessly."""
    if kind == "bytes":
        if teacher_dir and (Path(teacher_dir) / "tokenizer.json").is_file():
            raise DataError(
                f"the teacher in {teacher_dir} has its own tokenizer.json: byte tokens would not match its "
                "vocabulary; use --tokenizer teacher"
            )
        return ByteTokenizer()
    if kind == "teacher":
        if not teacher_dir:
            raise DataError("--tokenizer teacher needs --teacher DIR (a folder with tokenizer.json)")
        path = Path(teacher_dir) / "tokenizer.json"
        if not path.is_file():
            raise DataError(f"--tokenizer teacher: {teacher_dir} has no tokenizer.json")
        return FileTokenizer(path)
    raise DataError(f"unknown tokenizer {kind!r} (bytes or teacher)")


def check_vocab(tokenizer, vocab_size: int) -> None:
    """The tokenizer's ids must all be rows of the model's embedding."""
    if tokenizer.vocab_size > vocab_size:
        raise DataError(
            f"tokenizer/vocabulary mismatch: the {tokenizer.name} tokenizer has {tokenizer.vocab_size} tokens "
            f"but the model's vocabulary has {vocab_size}"
        )


def pydoc_documents() -> list[str]:
    """The Python documentation topics shipped with the standard library, sorted by name."""
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def read_documents(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.exists():
        raise DataError(f"--data {p} does not exist")
    files = (
        [p]
        if p.is_file()
        else sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
    )
    if not files:
        raise DataError(f"--data {p} holds no text files ({', '.join(sorted(TEXT_SUFFIXES))})")
    docs = []
    for f in files:
        try:
            docs.append(f.read_text(encoding="utf-8", errors="replace"))
        except OSError as e:
            raise DataError(f"cannot read {f}: {e}") from None
    docs = [d for d in docs if d]
    if not docs:
        raise DataError(f"--data {p}: every file is empty")
    return docs


SHARED_WINDOW = 64  # bytes: a validation/test paragraph may share no string this long with an earlier split


def _windows(data: bytes, n: int) -> set[int]:
    return {hash(data[i : i + n]) for i in range(len(data) - n + 1)}


def shared_fraction(held: bytes, train: bytes, n: int = SHARED_WINDOW) -> float:
    """Fraction of the ``n``-byte substrings of ``held`` that also occur in ``train`` (the leak measure)."""
    if len(held) < n:
        return 0.0
    seen = _windows(train, n)
    hits = sum(hash(held[i : i + n]) in seen for i in range(len(held) - n + 1))
    return hits / (len(held) - n + 1)


def split_documents(
    docs: list[str], *, val_fraction: float, test_fraction: float, seed: int, window: int = SHARED_WINDOW
) -> tuple[list[str], list[str], list[str], dict]:
    """Deduplicate ``docs`` at paragraph level and deal them into ``(train, val, test, stats)``.

    1. Paragraphs (blank-line separated) seen before, in any document, are dropped (first occurrence kept).
    2. A seeded permutation of the documents fills test up to ``test_fraction`` of the bytes, then validation up
       to ``val_fraction``; the rest is training.
    3. A validation paragraph sharing a ``window``-byte string with training, or a test paragraph sharing one with
       training or validation, is dropped: hyperparameters chosen on validation and claims measured on test are
       not measured on text the models trained on.
    """
    seen: set[str] = set()
    units: list[list[str]] = []
    dup = 0
    for d in docs:
        keep = []
        for p in d.split("\n\n"):
            key = p.strip()
            if not key:
                continue
            if key in seen:
                dup += len(p.encode())
                continue
            seen.add(key)
            keep.append(p)
        if keep:
            units.append(keep)
    total = sum(len(p.encode()) for u in units for p in u)
    order = torch.randperm(len(units), generator=torch.Generator().manual_seed(seed)).tolist()
    test_i, val_i, n = [], [], 0
    for i in order:
        if n < test_fraction * total:
            test_i.append(i)
        elif n < (test_fraction + val_fraction) * total:
            val_i.append(i)
        else:
            break
        n += sum(len(p.encode()) for p in units[i])
    held = set(test_i) | set(val_i)
    train = [u for i, u in enumerate(units) if i not in held]
    earlier: set[int] = set()
    for u in train:
        for p in u:
            earlier |= _windows(p.encode(), window)
    dropped = 0

    def clean(idx: list[int]) -> list[list[str]]:
        nonlocal dropped
        out = []
        for i in sorted(idx):
            keep = []
            for p in units[i]:
                b = p.encode()
                w = _windows(b, window)
                if w & earlier:
                    dropped += len(b)
                else:
                    keep.append(p)
            if keep:
                out.append(keep)
        for u in out:  # later splits must also avoid this one
            for p in u:
                earlier.update(_windows(p.encode(), window))
        return out

    val = clean(val_i)
    test = clean(test_i)
    join = lambda us: ["\n\n".join(u) for u in us]  # noqa: E731
    stats = {
        "duplicate_paragraph_bytes": dup,
        "overlapping_paragraph_bytes_dropped": dropped,
        "documents": {"train": len(train), "val": len(val), "test": len(test)},
    }
    return join(train), join(val), join(test), stats


@dataclass
class Corpus:
    train: torch.Tensor | np.ndarray  # 1-D int64 token ids, or a memory-mapped .npy
    val: torch.Tensor  # validation: hyperparameters, curves
    test: torch.Tensor  # test: the claims
    source: str
    documents: int
    split: dict | None = None

    def summary(self) -> dict:
        return {
            "source": self.source,
            "documents": self.documents,
            "train_tokens": len(self.train),
            "val_tokens": int(self.val.numel()),
            "test_tokens": int(self.test.numel()),
            **({"split": self.split} if self.split else {}),
        }


def load_corpus(
    data: str,
    tokenizer,
    *,
    val_fraction: float,
    seed: int,
    min_tokens: int,
    test_fraction: float | None = None,
) -> Corpus:
    """Tokenise the corpus into disjoint train, validation and test splits (``test_fraction`` defaults to
    ``val_fraction``)."""
    test_fraction = val_fraction if test_fraction is None else test_fraction
    split = None
    if data and data.endswith(".npy"):
        p = Path(data)
        if not p.is_file():
            raise DataError(f"--data {p} does not exist")
        arr = np.load(p, mmap_mode="r")
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"--data {p} must be a 1-D integer array of token ids")
        if int(arr.max()) >= tokenizer.vocab_size or int(arr.min()) < 0:
            raise DataError(f"--data {p} holds token ids outside the {tokenizer.name} tokenizer's vocabulary")
        n_val = max(min_tokens, int(len(arr) * val_fraction))
        n_test = max(min_tokens, int(len(arr) * test_fraction))
        train = arr[: -(n_val + n_test)]  # stays memory-mapped: batches read only their windows
        val = torch.from_numpy(np.array(arr[-(n_val + n_test) : -n_test], dtype=np.int64))
        test = torch.from_numpy(np.array(arr[-n_test:], dtype=np.int64))
        source, ndocs = str(p), 1
    else:
        docs = read_documents(data) if data else pydoc_documents()
        source = data or "pydoc_data.topics"
        ndocs = len(docs)
        if len(docs) == 1:
            enc = tokenizer.encode(docs[0] + "\n\n")
            a = int(len(enc) * (1 - val_fraction - test_fraction))
            b = int(len(enc) * (1 - test_fraction))
            train, val, test = (torch.from_numpy(t) for t in (enc[:a], enc[a:b], enc[b:]))
        else:
            parts = split_documents(docs, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
            split = parts[3]

            def tok(ds: list[str]) -> torch.Tensor:
                ids = [tokenizer.encode(d + "\n\n") for d in ds]
                return torch.from_numpy(np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64))

            train, val, test = (tok(ds) for ds in parts[:3])
    for name, t in (("training", train), ("validation", val), ("test", test)):
        if len(t) < min_tokens:
            raise DataError(
                f"the {name} split of {source} has {len(t)} tokens, fewer than one sequence of {min_tokens}"
            )
    if isinstance(train, torch.Tensor):
        train = train.long()
    return Corpus(train, val.long(), test.long(), source, ndocs, split)


def sample_batch(tokens: torch.Tensor, batch: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    """``batch`` random windows of ``seq_len + 1`` tokens (inputs and next-token targets) ``[batch, seq+1]``."""
    starts = torch.randint(0, len(tokens) - seq_len, (batch,), generator=gen)
    idx = starts[:, None] + torch.arange(seq_len + 1)
    if isinstance(tokens, np.ndarray):  # a memory-mapped .npy
        return torch.from_numpy(np.asarray(tokens[idx.numpy()], dtype=np.int64))
    return tokens[idx]


def eval_windows(tokens: torch.Tensor, seq_len: int, max_windows: int) -> torch.Tensor:
    """Non-overlapping windows of ``seq_len + 1`` tokens spread evenly over a held-out split."""
    n = (tokens.numel() - 1) // seq_len
    if n < 1:
        raise DataError(f"a held-out split has fewer than {seq_len + 1} tokens")
    pick = torch.linspace(0, n - 1, min(n, max_windows)).round().long()
    starts = pick * seq_len
    return tokens[starts[:, None] + torch.arange(seq_len + 1)]


@torch.no_grad()
def perplexity(model, windows: torch.Tensor, *, batch: int = 32, device=None, autocast=None) -> float:
    """exp(mean next-token cross-entropy) of ``model`` over ``windows [n, seq+1]``."""
    import contextlib

    import torch.nn.functional as F

    was = model.training
    model.eval()
    total, count = 0.0, 0
    ctx = autocast or contextlib.nullcontext
    for i in range(0, windows.shape[0], batch):
        w = windows[i : i + batch].to(device)
        with ctx():
            logits = model(w[:, :-1])
        nll = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum"
        )
        total += nll.item()
        count += w[:, 1:].numel()
    model.train(was)
    return math.exp(total / count)
