"""Reading table files into a cleaned :class:`~serendip.tools.engine.table.Table`."""

from serendip.tools.loading.load import load_table

__all__ = ["load_table"]
