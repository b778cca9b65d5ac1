"""Tables larger than one process: partitioned Parquet explored through Dask (issue 15).

- :mod:`.dataset`: which inputs take this path (a Parquet folder or glob, or one Parquet file too large
  for the memory budget) and their partitions (pyarrow datasets: row counts from the footers).
- :mod:`.sketch`: one-pass statistics per partition, merged exactly (counts, missing, sentinels, ranges,
  moments, Pearson from co-moments) and quantiles from a mergeable t-digest (``crick``).
- :mod:`.sample`: a seeded uniform sample sized to the memory budget: the table the ordinary tools run on.
- :mod:`.forest` / :mod:`.scoring`: the sample's groupings and outlier models applied to every row,
  partition by partition, with numpy alone (a 256 MB worker cannot also hold scikit-learn).
- :mod:`.cluster`: the Dask client (``--cluster ADDRESS`` or a ``LocalCluster`` sized to the machine).
- :mod:`.run`: the whole run; :func:`serendip.agent.explore.explore` hands such inputs to it.

Worker-side code imports numpy, pyarrow (which loads pandas as soon as it converts arrays) and crick,
never scikit-learn: a worker with those holds ~180 MiB at its peak on 100k-row partitions, and
scikit-learn would add ~85 MiB more, past a 256 MB worker's limit.
"""
