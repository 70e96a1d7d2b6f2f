"""Streaming images for the ``paper`` presets: decode on DataLoader workers, sample resumably across ranks.

The in-memory :func:`paperkit.data.image_folder` suits the small embedded data; ImageNet does not fit in memory.
Here only the *list* of files lives in memory (a compact numpy array of paths and int labels: about 60 bytes an
image), and every image is decoded by a DataLoader worker when it is needed, so peak memory does not grow with
the number of images.

- :class:`ImageList`: the files and labels, from a ``DATA/CLASS/IMAGE`` folder or a file list
  (``path label`` per line); :meth:`ImageList.check` opens a spread sample of images up front so that a broken
  folder fails before training (one line, :class:`~paperkit.config.ConfigError`); :meth:`ImageList.split` gives
  disjoint parts.
- :class:`StreamingImages`: the dataset. ``views=0`` returns one uint8 image resized to ``size`` (for
  augmentations on the GPU, where a batched implementation such as polyview's ``image_views`` is cheaper);
  ``views=M`` returns M augmented float views (random resized crop, flip, colour jitter), each with its own
  random parameters drawn from a generator seeded by ``(seed, epoch, index)``: the same sample gets the same
  views on any worker, rank or resume. A corrupt image found mid-epoch is skipped and counted, not a crash.
- :class:`ResumableSampler`: a per-epoch permutation seeded by ``(seed, epoch)``; global batch ``k`` is
  ``perm[k*G:(k+1)*G]`` and rank ``r`` takes its contiguous slice, so ranks are disjoint and their union is the
  epoch. Its position (samples consumed, counted globally) goes into the checkpoint, and a resumed run continues
  on the very next batch. Resuming at another world size works when the global batch is the same (each rank's
  batch then changes); a different global batch is refused, because the position would fall inside a batch.
- :func:`streaming_loader`: the DataLoader over both, with :class:`StreamingLoader` counting what the training
  loop has consumed (prefetching does not move the checkpointed position).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError
from .data import IMAGE_SUFFIXES


def _seed(*keys: int) -> int:
    """A 63-bit seed that depends only on ``keys`` (stable across processes and Python versions)."""
    digest = hashlib.blake2b(np.asarray(keys, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class ImageList:
    """Image paths and integer labels, held compactly (paths as one fixed-width bytes array)."""

    def __init__(self, paths: list[str] | np.ndarray, labels: list[int] | np.ndarray, classes: list[str]):
        self.paths = np.asarray([str(p).encode() for p in paths] if isinstance(paths, list) else paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        if len(self.paths) != len(self.labels):
            raise ValueError("paths and labels differ in length")

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> str:
        return self.paths[i].decode()

    @classmethod
    def from_folder(cls, root: str | Path) -> ImageList:
        """``root/CLASS/IMAGE`` (classes sorted by name). Errors are one line: a missing or empty folder, no
        class folders, a single class, a class without images."""
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"--data {root}: no such folder")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise ConfigError(f"--data {root}: no class folders (expected {root}/CLASS/IMAGE)")
        if len(classes) < 2:
            raise ConfigError(
                f"--data {root}: only one class ({classes[0]}); a labelled image folder needs two"
            )
        paths: list[str] = []
        labels: list[int] = []
        for ci, name in enumerate(classes):
            files = sorted(
                str(p) for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not files:
                raise ConfigError(f"--data {root}: class folder {name} holds no images")
            paths += files
            labels += [ci] * len(files)
        return cls(paths, labels, classes)

    @classmethod
    def from_file(cls, list_file: str | Path, root: str | Path | None = None) -> ImageList:
        """A file list: one ``path label`` per line (label an integer or a class name; paths relative to
        ``root``, default the list's folder). Blank lines and lines starting with ``#`` are ignored."""
        list_file = Path(list_file)
        if not list_file.is_file():
            raise ConfigError(f"--data {list_file}: no such file list")
        base = Path(root) if root is not None else list_file.parent
        paths, raw = [], []
        for n, line in enumerate(list_file.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2:
                raise ConfigError(f"{list_file}:{n}: expected 'path label', got {line!r}")
            paths.append(str(base / parts[0]))
            raw.append(parts[1])
        if not paths:
            raise ConfigError(f"--data {list_file}: the file list is empty")
        if all(r.lstrip("-").isdigit() for r in raw):
            labels = [int(r) for r in raw]
            classes = [str(c) for c in range(max(labels) + 1)]
        else:
            classes = sorted(set(raw))
            labels = [classes.index(r) for r in raw]
        if len(set(labels)) < 2:
            raise ConfigError(f"--data {list_file}: only one class; a labelled list needs two")
        return cls(paths, labels, classes)

    @classmethod
    def open(cls, data: str | Path) -> ImageList:
        """A folder or a file list, whichever ``data`` is."""
        p = Path(data)
        return cls.from_file(p) if p.is_file() else cls.from_folder(p)

    def check(self, sample: int = 64) -> ImageList:
        """Open up to ``sample`` images spread evenly over the list (all of them for small lists) and fail with
        one line naming the first unreadable one. Returns self."""
        from PIL import Image

        idx = np.unique(np.linspace(0, len(self) - 1, num=min(sample, len(self))).round().astype(int))
        for i in idx:
            try:
                with Image.open(self.path(i)) as im:
                    im.verify()
            except Exception as e:  # PIL raises many types for broken files
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise ConfigError(f"--data: cannot read image {self.path(i)}: {msg}") from None
        return self

    def split(self, fraction: float, seed: int) -> tuple[ImageList, ImageList]:
        """Disjoint ``(rest, part)`` with ``part`` about ``fraction`` of the images, chosen by ``seed``."""
        perm = np.random.default_rng(seed).permutation(len(self))
        k = max(1, int(round(len(self) * fraction)))
        part, rest = np.sort(perm[:k]), np.sort(perm[k:])
        return self.subset(rest), self.subset(part)

    def subset(self, idx: np.ndarray) -> ImageList:
        return ImageList(self.paths[idx], self.labels[idx], self.classes)


class StreamingImages(torch.utils.data.Dataset):
    """Decode-on-demand dataset over an :class:`ImageList`. Items are ``(image, label, ok)``: ``image`` is uint8
    ``[3, size, size]`` (``views=0``) or float ``[views, 3, size, size]`` in [0, 1]; ``ok`` is False for an image
    that could not be decoded (its image is zeros; :func:`collate_skip` drops it and counts it)."""

    def __init__(
        self,
        images: ImageList,
        *,
        size: int = 224,
        views: int = 0,
        seed: int = 0,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
        jitter: float = 0.4,
        jitter_p: float = 0.8,
    ):
        if size < 1 or views < 0:
            raise ValueError(f"size must be >= 1 and views >= 0, got size={size}, views={views}")
        self.images, self.size, self.views, self.seed = images, int(size), int(views), int(seed)
        self.scale, self.ratio, self.flip, self.jitter, self.jitter_p = scale, ratio, flip, jitter, jitter_p
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def _decode(self, i: int, target: int) -> np.ndarray:
        """RGB uint8 HxWx3 with its shorter side about ``target`` (JPEG draft mode decodes at reduced size)."""
        from PIL import Image

        with Image.open(self.images.path(i)) as im:
            if im.format == "JPEG":
                im.draft("RGB", (target, target))
            im = im.convert("RGB")
            w, h = im.size
            s = target / min(w, h)
            if s < 1:
                im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)

    def __getitem__(self, i: int):
        label = int(self.images.labels[i])
        try:
            arr = self._decode(i, self.size if self.views == 0 else max(self.size, 2 * self.size))
        except Exception:
            shape = (3, self.size, self.size) if self.views == 0 else (self.views, 3, self.size, self.size)
            return torch.zeros(shape, dtype=torch.uint8 if self.views == 0 else torch.float32), label, False
        img = torch.from_numpy(arr.copy()).permute(2, 0, 1)  # [3, H, W] uint8
        if self.views == 0:
            return _center_square(img, self.size), label, True
        g = torch.Generator().manual_seed(_seed(self.seed, self.epoch, i))
        return torch.stack([self._view(img, g) for _ in range(self.views)]), label, True

    def _view(self, img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """One random-resized-crop + flip + colour-jitter view, parameters drawn from ``g``."""
        import torch.nn.functional as F

        _, h, w = img.shape
        area = h * w
        for _ in range(10):
            target = area * _uniform(g, *self.scale)
            aspect = math.exp(_uniform(g, math.log(self.ratio[0]), math.log(self.ratio[1])))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
                left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
                break
        else:  # fall back to the central crop
            ch = cw = min(h, w)
            top, left = (h - ch) // 2, (w - cw) // 2
        crop = img[:, top : top + ch, left : left + cw].unsqueeze(0)  # uint8: torch's fast antialiased resize
        out = (
            F.interpolate(crop, size=(self.size, self.size), mode="bilinear", antialias=True)[0].float()
            / 255.0
        )
        if _uniform(g, 0, 1) < self.flip:
            out = out.flip(-1)
        if self.jitter > 0 and _uniform(g, 0, 1) < self.jitter_p:
            b, c, s = (_uniform(g, 1 - self.jitter, 1 + self.jitter) for _ in range(3))
            out = out * b
            mean = out.mean()
            out = (out - mean) * c + mean
            gray = (0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2]).unsqueeze(0)
            out = (out - gray) * s + gray
        return out.clamp_(0.0, 1.0)


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _center_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` and take the central square (uint8 stays uint8)."""
    import torch.nn.functional as F

    _, h, w = img.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    sq = img[:, top : top + s, left : left + s]
    if s != size:
        sq = F.interpolate(sq.unsqueeze(0).float(), size=(size, size), mode="bilinear", antialias=True)[0]
        sq = sq.round_().clamp_(0, 255).to(torch.uint8)
    return sq


def collate_skip(batch: list) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack the readable items; return ``(images, labels, skipped)``."""
    good = [(x, y) for x, y, ok in batch if ok]
    skipped = len(batch) - len(good)
    if not good:
        x0 = batch[0][0]
        return x0.new_zeros((0, *x0.shape)), torch.zeros(0, dtype=torch.long), skipped
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good]), skipped


class ResumableSampler(torch.utils.data.Sampler[int]):
    """Indices for one rank: the epoch's permutation cut into global batches of ``batch_size * world_size``,
    this rank's contiguous slice of each, starting at the checkpointed position (see the module docstring)."""

    def __init__(
        self,
        n: int,
        *,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ):
        if n < 1 or batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad sampler sizes: n={n}, batch_size={batch_size}, rank={rank}/{world_size}")
        self.n, self.batch_size, self.rank, self.world_size = n, batch_size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.global_batch = batch_size * world_size
        if self.global_batch > n:
            raise ConfigError(f"global batch {self.global_batch} is larger than the data set ({n} images)")
        self.epoch = 0
        self.position = 0  # samples of this epoch consumed, counted over all ranks

    @property
    def batches_per_epoch(self) -> int:
        # the last partial global batch is dropped (every rank steps together)
        return self.n // self.global_batch

    def permutation(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(_seed(self.seed, epoch)))

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.position // self.global_batch) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        perm = self.permutation(self.epoch)
        start = self.position // self.global_batch
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        for k in range(start, self.batches_per_epoch):
            yield from perm[k * self.global_batch + lo : k * self.global_batch + hi].tolist()

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "global_batch": self.global_batch,
            "n": self.n,
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state["n"]) != self.n:
            raise ConfigError(
                f"resume: the data set has {self.n} images, the checkpoint was made with {state['n']}"
            )
        if int(state["global_batch"]) != self.global_batch:
            raise ConfigError(
                f"resume: global batch {self.global_batch} differs from the checkpoint's {state['global_batch']}; "
                "keep batch_size * world_size the same to resume at another world size"
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class StreamingLoader:
    """A DataLoader over :class:`StreamingImages` with a :class:`ResumableSampler` that knows how far the
    training loop got. Iterate it for one epoch's (remaining) batches ``(images, labels)``; ``state_dict()`` after
    any batch is the position to resume from; ``skipped`` counts unreadable images."""

    def __init__(self, dataset: StreamingImages, sampler: ResumableSampler, **loader_kwargs):
        self.dataset, self.sampler = dataset, sampler
        self.loader_kwargs = loader_kwargs
        self.skipped = 0

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def __len__(self) -> int:
        return self.sampler.batches_per_epoch - self.sampler.position // self.sampler.global_batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.dataset.set_epoch(self.sampler.epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.sampler.batch_size,
            sampler=self.sampler,
            collate_fn=collate_skip,
            drop_last=True,
            **self.loader_kwargs,
        )
        for x, y, skipped in loader:
            self.skipped += skipped
            self.sampler.position += self.sampler.global_batch
            yield x, y
        self.sampler.epoch += 1
        self.sampler.position = 0

    def state_dict(self) -> dict:
        return {**self.sampler.state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self.skipped = int(state.get("skipped", 0))


def streaming_loader(
    images: ImageList,
    *,
    batch_size: int,
    size: int,
    views: int = 0,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    shuffle: bool = True,
    pin_memory: bool = False,
) -> StreamingLoader:
    """The streaming pipeline in one call (``batch_size`` per rank). ``workers`` decode in parallel
    (persistent, with prefetching); 0 decodes in the training process."""
    dataset = StreamingImages(images, size=size, views=views, seed=seed)
    sampler = ResumableSampler(
        len(images), batch_size=batch_size, rank=rank, world_size=world_size, seed=seed, shuffle=shuffle
    )
    kwargs: dict = {"num_workers": workers, "pin_memory": pin_memory}
    if workers > 0:
        kwargs.update(prefetch_factor=4)
    return StreamingLoader(dataset, sampler, **kwargs)


def eval_loader(
    images: ImageList, *, batch_size: int, size: int, workers: int = 0, pin_memory: bool = False
) -> torch.utils.data.DataLoader:
    """Every readable image of ``images`` once, in order, centre-cropped to uint8 ``[B, 3, size, size]``: the
    loader for features and evaluation. Unlike training batches, the last partial batch is kept. Items are
    ``(images, labels, skipped)`` as from :func:`collate_skip`."""
    kwargs: dict = {"num_workers": workers, "pin_memory": pin_memory}
    if workers > 0:
        kwargs.update(prefetch_factor=4)
    return torch.utils.data.DataLoader(
        StreamingImages(images, size=size),
        batch_size=batch_size,
        shuffle=False,
        drop_last=False,
        collate_fn=collate_skip,
        **kwargs,
    )
