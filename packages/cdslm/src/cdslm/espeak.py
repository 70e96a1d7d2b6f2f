"""Offline speech with phoneme alignments: espeak-ng through ctypes, shipped by the PyPI wheel espeakng-loader.

    from cdslm.espeak import Espeak
    tts = Espeak()
    utt = tts.synth("the quick brown fox", voice="en-us", rate=175, pitch=50)
    utt.audio        # float32 mono PCM at utt.sample_rate (22050 Hz)
    utt.phonemes     # [(ipa, start_s, end_s), ...]: espeak's phoneme events, each span inside the audio

espeak-ng's phoneme events (``espeakEVENT_PHONEME``) carry the phoneme (IPA, up to 8 bytes) and its audio position;
a phoneme ends where the next event starts (the last ends at the end of the audio). Stress marks are stripped so
that a phoneme's identity does not depend on stress. The library is a process-wide singleton (espeak-ng keeps
global state), so :class:`Espeak` is too; it is not thread-safe. The audio is not bit-reproducible: the same call
twice in one process gives waveforms that differ slightly (measured here, also after re-initialising the library
and seeding ``espeak_ng_SetRandSeed``), so a trainer keeps the corpus it synthesised (see ``Corpus.save``).
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
INIT_PHONEME_EVENTS = 0x0001
INIT_PHONEME_IPA = 0x0002
INIT_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
EVENT_END = 5  # end of sentence
POS_CHARACTER = 1
CHARS_UTF8 = 1
RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4
STRESS = "ˈˌ"


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class EspeakUnavailable(RuntimeError):
    """espeak-ng could not be loaded (espeakng-loader missing or its library unusable)."""


@dataclass
class Utterance:
    text: str
    audio: np.ndarray
    sample_rate: int
    phonemes: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


class Espeak:
    """The espeak-ng library, loaded once per process."""

    _lib = None
    _rate = 0
    _lock = threading.Lock()

    def __init__(self) -> None:
        with Espeak._lock:
            if Espeak._lib is None:
                Espeak._lib, Espeak._rate = _load()
        self.lib = Espeak._lib
        self.sample_rate = Espeak._rate
        self._samples: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []
        self._cb = _CALLBACK(self._callback)

    def _callback(self, wav, n, events) -> int:
        if n > 0 and wav:
            self._samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while True:
            ev = events[i]
            if ev.type == EVENT_LIST_TERMINATED:
                break
            if ev.type == EVENT_PHONEME:
                ipa = bytes(ev.id.string).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((ipa, int(ev.sample)))
            i += 1
        return 0

    def synth(
        self, text: str, *, voice: str = "en-us", rate: int = 175, pitch: int = 50, pitch_range: int = 50
    ) -> Utterance:
        """Speak ``text``: float32 audio in [-1, 1] and the phoneme spans ``(ipa, start_s, end_s)``."""
        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(RATE, int(rate), 0)
        lib.espeak_SetParameter(PITCH, int(pitch), 0)
        lib.espeak_SetParameter(RANGE, int(pitch_range), 0)
        self._samples, self._events = [], []
        lib.espeak_SetSynthCallback(self._cb)
        buf = text.encode("utf-8")
        err = lib.espeak_Synth(buf, len(buf) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err}")
        lib.espeak_Synchronize()
        pcm = np.concatenate(self._samples) if self._samples else np.zeros(0, np.int16)
        audio = (pcm.astype(np.float32) / 32768.0).clip(-1, 1)
        sr = self.sample_rate
        n = len(audio)
        spans = []
        evs = [(p.strip(STRESS) or p, s) for p, s in self._events if p.strip()]
        for k, (p, s) in enumerate(evs):
            end = evs[k + 1][1] if k + 1 < len(evs) else n
            s, end = min(s, n), min(end, n)
            if end > s and p:
                spans.append((p, s / sr, end / sr))
        return Utterance(text, audio, sr, spans)


def _load():
    try:
        import espeakng_loader
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise EspeakUnavailable(f"espeakng-loader is not installed: {e}") from None
    try:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
    except OSError as e:
        raise EspeakUnavailable(f"cannot load libespeak-ng: {e}") from None
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    data = espeakng_loader.get_data_path().encode()
    rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INIT_PHONEME_EVENTS | INIT_PHONEME_IPA | INIT_DONT_EXIT
    )
    if rate <= 0:
        raise EspeakUnavailable(f"espeak_Initialize failed ({rate}) with data path {data.decode()}")
    return lib, rate
