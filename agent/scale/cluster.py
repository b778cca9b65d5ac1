"""The Dask client of a run: an existing scheduler (``--cluster ADDRESS``) or a LocalCluster sized to the machine."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

WORKER_MIN_MB = 256


class ClusterError(Exception):
    """The scheduler cannot be reached; the message is one line."""


@dataclass
class ClusterInfo:
    """What the report says about the cluster."""

    address: str
    local: bool
    n_workers: int
    threads: int
    memory_limit_mb: list[float]

    def describe(self) -> str:
        limits = sorted({round(m) for m in self.memory_limit_mb})
        limit = "/".join(str(m) for m in limits) + " MiB each" if limits and limits[0] else "no memory limit"
        kind = "a LocalCluster" if self.local else f"the scheduler at {self.address}"
        return f"{kind}: {self.n_workers} workers, {self.threads} threads, {limit}"


def local_cluster_shape(memory_budget_mb: int, cores: int | None = None) -> tuple[int, int]:
    """(workers, MiB per worker): one single-threaded worker per core, as many as the budget holds.

    A worker needs about WORKER_MIN_MB (its Python, numpy and pyarrow take ~90 MiB): a smaller budget
    still gets one worker of that size.
    """
    cores = cores or os.cpu_count() or 1
    n = max(1, min(cores, memory_budget_mb // WORKER_MIN_MB))
    return n, max(WORKER_MIN_MB, memory_budget_mb // n)


def open_client(address: str | None, memory_budget_mb: int):
    """A connected ``distributed.Client`` and its description; close both with ``client.close()`` (and the cluster).

    Raises:
        ClusterError: The scheduler at ``address`` cannot be reached.
    """
    from distributed import Client, LocalCluster

    cluster = None
    if address:
        try:
            client = Client(address, timeout="30s")
        except Exception as exc:  # noqa: BLE001 - distributed raises OSError, TimeoutError ...
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: {str(exc).splitlines()[0][:200]}") from None
    else:
        n, per_worker = local_cluster_shape(memory_budget_mb)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, memory_limit=f"{per_worker}MiB",
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    workers = client.scheduler_info()["workers"].values()
    info = ClusterInfo(address=client.scheduler.address, local=cluster is not None, n_workers=len(workers),
                       threads=sum(w.get("nthreads", 1) for w in workers),
                       memory_limit_mb=[(w.get("memory_limit") or 0) / 2**20 for w in workers])

    def close() -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    return client, info, close
