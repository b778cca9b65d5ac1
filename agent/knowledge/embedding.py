"""A local, deterministic embedding for the knowledge store: hashed character n-grams.

Nothing is downloaded: chromadb's default embedding function fetches a model on first use and fails
offline, so the store uses this one (registered with chromadb in :mod:`.chroma_embedding`, so a collection
created with it reopens in a new process). Names such as
``props_sfr`` and ``log_SFR`` share most character n-grams, which is what matching column names and
short descriptions needs. Vectors come from scikit-learn's ``HashingVectorizer`` (MurmurHash3, stable
across processes and platforms), L2-normalised.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

NAME = "serendip-hashed-char-ngrams"
DEFAULTS = {"n_features": 1024, "ngram_min": 2, "ngram_max": 4}


def prepare_text(text: str) -> str:
    """Lower-case words: punctuation and camelCase boundaries become spaces (``log_SFR`` -> ``log sfr``)."""
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(text))
    return " ".join(re.split(r"[^A-Za-z0-9]+", s)).lower().strip()


class HashedNgrams:
    """Hashed character n-gram vectors (word-bounded n-grams, L2-normalised); no chromadb needed.

    Args:
        n_features: Dimension of the vectors.
        ngram_min: Shortest character n-gram.
        ngram_max: Longest character n-gram.
    """

    def __init__(self, n_features: int = DEFAULTS["n_features"], ngram_min: int = DEFAULTS["ngram_min"],
                 ngram_max: int = DEFAULTS["ngram_max"]) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.config = {"n_features": int(n_features), "ngram_min": int(ngram_min), "ngram_max": int(ngram_max)}
        self._vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=(int(ngram_min), int(ngram_max)),
                                             n_features=int(n_features), alternate_sign=False, norm="l2",
                                             lowercase=True)

    def vectors(self, texts: list[str]) -> np.ndarray:
        """One float32 row per text."""
        return self._vectorizer.transform([prepare_text(t) or "empty" for t in texts]).toarray().astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embedding vectors."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na and nb else 0.0
