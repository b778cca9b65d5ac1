"""The knowledge store: an embedded chromadb ``PersistentClient`` with two collections.

- ``serendip_known_results``: the shipped pack (re-synced when it changes) and the results users add
  with ``serendip known add``; each entry's full definition is kept as JSON in its metadata.
- ``serendip_past_findings``: every finding of every run that used the store (dataset path and
  sha256, columns, kind, stats, summary, run folder and time), looked up by an exact signature.

The store lives under the user's data directory (``$SERENDIP_MEMORY``, else
``$XDG_DATA_HOME/serendip/memory``, else ``~/.local/share/serendip/memory``) unless a folder is given.
Telemetry is off and the embedding function is local (:mod:`.chroma_embedding`): nothing goes over the
network. chromadb is imported only when a store is opened (its import takes seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from serendip.agent.knowledge.pack import KnownResult, Pack, check_quantities, load_pack

KNOWN_COLLECTION = "serendip_known_results"
FINDINGS_COLLECTION = "serendip_past_findings"


class StoreError(RuntimeError):
    """The store cannot be opened or changed; the message is one line."""


def default_memory_dir(env: dict | None = None) -> Path:
    """Where the store lives by default (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("SERENDIP_MEMORY"):
        return Path(env["SERENDIP_MEMORY"]).expanduser()
    base = Path(env["XDG_DATA_HOME"]).expanduser() if env.get("XDG_DATA_HOME") else \
        Path.home() / ".local" / "share"
    return base / "serendip" / "memory"


def pack_digest(pack: Pack) -> str:
    """A short hash of the pack's content (re-sync when it changes)."""
    return hashlib.sha256(pack.model_dump_json().encode()).hexdigest()[:16]


class KnowledgeStore:
    """Known results and past findings in a chromadb folder.

    Args:
        path: The store's folder (created when absent).
        pack: The known-results pack to keep in sync (the shipped one by default).
    """

    def __init__(self, path: str | Path, pack: Pack | None = None) -> None:
        self.path = Path(path).expanduser()
        self.pack = pack or load_pack()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            import chromadb
            from chromadb.config import Settings

            from serendip.agent.knowledge.chroma_embedding import HashedNgramEmbedding

            self.client = chromadb.PersistentClient(path=str(self.path),
                                                    settings=Settings(anonymized_telemetry=False))
            ef = HashedNgramEmbedding()
            self.known = self.client.get_or_create_collection(KNOWN_COLLECTION, embedding_function=ef,
                                                              configuration={"hnsw": {"space": "cosine"}})
            self.findings = self.client.get_or_create_collection(FINDINGS_COLLECTION, embedding_function=ef,
                                                                 configuration={"hnsw": {"space": "cosine"}})
        except OSError as exc:
            raise StoreError(f"cannot open the knowledge store in {self.path}: {exc.strerror or exc}") from None
        except Exception as exc:  # noqa: BLE001 - chromadb raises its own types for a corrupt or locked folder
            raise StoreError(f"cannot open the knowledge store in {self.path}: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]) from None
        self.sync_pack()

    # ------------------------------------------------------------------ known results
    def sync_pack(self) -> None:
        """Make the stored pack entries those of the shipped pack (added, changed, removed)."""
        digest = pack_digest(self.pack)
        stored = self.known.get(where={"source": "pack"}, include=["metadatas"])
        current = {i for i, m in zip(stored["ids"], stored["metadatas"]) if (m or {}).get("digest") == digest}
        wanted = {r.id for r in self.pack.results}
        if current == wanted and len(stored["ids"]) == len(wanted):
            return
        stale = [i for i in stored["ids"] if i not in wanted]
        if stale:
            self.known.delete(ids=stale)
        self._upsert(list(self.pack.results), digest)

    def _upsert(self, results: list[KnownResult], digest: str = "") -> None:
        if not results:
            return
        self.known.upsert(ids=[r.id for r in results],
                          documents=[r.document(self.pack.quantities) for r in results],
                          metadatas=[{"source": r.source, "digest": digest, "name": r.name,
                                      "entry": r.model_dump_json()} for r in results])

    def list_known(self, source: str | None = None) -> list[KnownResult]:
        """Every known result (or those of one source: 'pack' or 'user'), pack order then by id."""
        got = self.known.get(where={"source": source} if source else None, include=["metadatas"])
        out = []
        for meta in got["metadatas"]:
            try:
                out.append(KnownResult.model_validate_json((meta or {}).get("entry", "")))
            except ValueError:
                continue  # an entry written by an incompatible version: ignore it rather than fail the run
        order = {r.id: i for i, r in enumerate(self.pack.results)}
        return sorted(out, key=lambda r: (order.get(r.id, len(order)), r.id))

    def add_known(self, result: KnownResult) -> KnownResult:
        """Add (or replace) a user's known result.

        Raises:
            StoreError: The id is one of the shipped pack, or the result names unknown quantities.
        """
        if any(r.id == result.id for r in self.pack.results):
            raise StoreError(f"{result.id!r} is a result of the shipped pack; choose another id")
        try:
            check_quantities(result, self.pack.quantities)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        result = result.model_copy(update={"source": "user"})
        self._upsert([result])
        return result

    def remove_known(self, result_id: str) -> None:
        """Remove a user's known result.

        Raises:
            StoreError: No such user result (shipped results cannot be removed).
        """
        got = self.known.get(ids=[result_id], include=["metadatas"])
        if not got["ids"]:
            raise StoreError(f"there is no known result {result_id!r} (see `serendip known list`)")
        if (got["metadatas"][0] or {}).get("source") != "user":
            raise StoreError(f"{result_id!r} is a result of the shipped pack and cannot be removed")
        self.known.delete(ids=[result_id])

    def rank_known(self, text: str, ids: list[str]) -> dict[str, float]:
        """Cosine similarity of ``text`` to each of the known results ``ids`` (a chromadb query)."""
        if not ids:
            return {}
        nearest = self.known.query  # chromadb's vector search (named like DataFrame.query, evaluates nothing)
        got = nearest(query_texts=[text], n_results=len(ids), ids=list(ids), include=["distances"])
        return {i: 1.0 - float(d) for i, d in zip(got["ids"][0], got["distances"][0])}

    # ------------------------------------------------------------------ past findings
    def remember(self, records: list[dict]) -> None:
        """Store findings of a run; each record has ``id``, ``document`` and flat ``metadata``."""
        if records:
            self.findings.upsert(ids=[r["id"] for r in records], documents=[r["document"] for r in records],
                                 metadatas=[r["metadata"] for r in records])

    def seen(self, signature: str, exclude_run: str = "") -> list[dict]:
        """Earlier findings with this signature (other runs than ``exclude_run``), oldest first."""
        where = {"signature": signature} if not exclude_run else \
            {"$and": [{"signature": signature}, {"run": {"$ne": exclude_run}}]}
        got = self.findings.get(where=where, include=["metadatas"])
        return sorted((m for m in got["metadatas"] if m), key=lambda m: str(m.get("when", "")))

    def count_findings(self) -> int:
        """How many past findings the store holds."""
        return self.findings.count()


def encode(value) -> str:
    """Compact JSON for a metadata field."""
    return json.dumps(value, default=str, separators=(",", ":"))[:4000]
