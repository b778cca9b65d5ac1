"""The knowledge store's embedding function, registered with chromadb (see :mod:`.embedding`).

Importing this module registers :class:`HashedNgramEmbedding` under its name, which is what lets a
persisted collection reopen in a new process: chromadb stores ``name()`` and ``get_config()`` with the
collection and rebuilds the function with ``build_from_config()``.
"""

from __future__ import annotations

from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from serendip.agent.knowledge.embedding import DEFAULTS, NAME, HashedNgrams


@register_embedding_function
class HashedNgramEmbedding(EmbeddingFunction[Documents]):
    """chromadb embedding function over :class:`~serendip.agent.knowledge.embedding.HashedNgrams`.

    Args:
        n_features: Dimension of the vectors.
        ngram_min: Shortest character n-gram.
        ngram_max: Longest character n-gram.
    """

    def __init__(self, n_features: int = DEFAULTS["n_features"], ngram_min: int = DEFAULTS["ngram_min"],
                 ngram_max: int = DEFAULTS["ngram_max"]) -> None:
        self._ngrams = HashedNgrams(n_features, ngram_min, ngram_max)

    def __call__(self, input: Documents) -> Embeddings:
        return list(self._ngrams.vectors(list(input)))

    @staticmethod
    def name() -> str:
        return NAME

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine", "l2", "ip"]

    def get_config(self) -> dict[str, Any]:
        return dict(self._ngrams.config)

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "HashedNgramEmbedding":
        return HashedNgramEmbedding(**{k: int(config.get(k, v)) for k, v in DEFAULTS.items()})

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        for key in DEFAULTS:
            if key in config and (not isinstance(config[key], int) or config[key] < 1):
                raise ValueError(f"{NAME}: {key} must be a positive integer; got {config[key]!r}")
