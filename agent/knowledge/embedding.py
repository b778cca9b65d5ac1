"""A local, deterministic embedding for the knowledge store: hashed character n-grams.

Nothing is downloaded: chromadb's default embedding function fetches a model on first use and fails
offline, so the store uses this one (registered with chromadb in :mod:`.chroma_embedding`, so a collection
created with it reopens in a new process). Names such as
``props_sfr`` and ``log_SFR`` share most character n-grams, which is what matching column names and
short descriptions needs.

The vectors are those of scikit-learn's ``HashingVectorizer(analyzer="char_wb", alternate_sign=False,
norm="l2")``: word-bounded character n-grams hashed with MurmurHash3 (x86, 32-bit, seed 0), counted and
L2-normalised. They are computed here rather than by scikit-learn because importing scikit-learn costs
every run's light parent process about 2 s, for a few dozen short strings; a test checks that both give
the same vectors, so stores written with either read alike.
"""

from __future__ import annotations

import re

import numpy as np

NAME = "serendip-hashed-char-ngrams"
DEFAULTS = {"n_features": 1024, "ngram_min": 2, "ngram_max": 4}
_SPACES = re.compile(r"\s\s+")
_MASK = 0xFFFFFFFF


def prepare_text(text: str) -> str:
    """Lower-case words: punctuation and camelCase boundaries become spaces (``log_SFR`` -> ``log sfr``)."""
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(text))
    return " ".join(re.split(r"[^A-Za-z0-9]+", s)).lower().strip()


def murmurhash3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit of ``data``, as a signed integer (what scikit-learn's hashing uses)."""
    h = seed & _MASK
    n_blocks = len(data) // 4
    for i in range(n_blocks):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * 0xCC9E2D51) & _MASK
        k = ((k << 15) | (k >> 17)) & _MASK
        k = (k * 0x1B873593) & _MASK
        h ^= k
        h = ((h << 13) | (h >> 19)) & _MASK
        h = (h * 5 + 0xE6546B64) & _MASK
    tail = data[4 * n_blocks:]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if tail:
        k ^= tail[0]
        k = (k * 0xCC9E2D51) & _MASK
        k = ((k << 15) | (k >> 17)) & _MASK
        k = (k * 0x1B873593) & _MASK
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def char_wb_ngrams(text: str, ngram_min: int, ngram_max: int) -> list[str]:
    """Character n-grams inside space-padded words (scikit-learn's ``char_wb`` analyzer)."""
    grams: list[str] = []
    for word in _SPACES.sub(" ", text).split():
        w = f" {word} "
        for n in range(ngram_min, ngram_max + 1):
            offset = 0
            grams.append(w[:n])
            while offset + n < len(w):
                offset += 1
                grams.append(w[offset:offset + n])
            if offset == 0:  # a word shorter than n counts once
                break
    return grams


class HashedNgrams:
    """Hashed character n-gram vectors (word-bounded n-grams, L2-normalised); no chromadb needed.

    Args:
        n_features: Dimension of the vectors.
        ngram_min: Shortest character n-gram.
        ngram_max: Longest character n-gram.
    """

    def __init__(self, n_features: int = DEFAULTS["n_features"], ngram_min: int = DEFAULTS["ngram_min"],
                 ngram_max: int = DEFAULTS["ngram_max"]) -> None:
        self.config = {"n_features": int(n_features), "ngram_min": int(ngram_min), "ngram_max": int(ngram_max)}

    def vector(self, text: str) -> np.ndarray:
        """The float32 vector of one text."""
        n_features = self.config["n_features"]
        out = np.zeros(n_features, dtype=np.float64)
        for gram in char_wb_ngrams(text.lower(), self.config["ngram_min"], self.config["ngram_max"]):
            h = murmurhash3_32(gram.encode("utf-8"))
            # abs(-2**31) overflows in scikit-learn's int32; it defines the bucket as below.
            out[(2147483647 - (n_features - 1)) % n_features if h == -2147483648 else abs(h) % n_features] += 1.0
        norm = float(np.sqrt(np.dot(out, out)))
        if norm > 0:
            out /= norm
        return out.astype(np.float32)

    def vectors(self, texts: list[str]) -> np.ndarray:
        """One float32 row per text."""
        return np.stack([self.vector(prepare_text(t) or "empty") for t in texts]) if texts else \
            np.zeros((0, self.config["n_features"]), dtype=np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embedding vectors."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na and nb else 0.0
