"""Reading table files into a cleaned :class:`~serendip.tools.table.Table`."""

from serendip.tools.loading.load import load_table

__all__ = ["load_table"]
