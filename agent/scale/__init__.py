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

Worker-side code imports numpy, pyarrow and crick, never pandas (pyarrow's conversions to and from numpy
load it: ~45 MiB, so values go through the arrays' buffers instead) nor scikit-learn (~85 MiB): a 256 MB
worker holds ~90 MiB before any data.
"""
