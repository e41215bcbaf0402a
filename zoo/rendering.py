"""Rendering helpers shared by the library's reports and the CLI (below both: neither layer owns them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A rich table with `columns`; numeric cells are right-aligned."""
    rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        numeric = bool(rows) and all(is_number(row[index]) for row in rows if row[index])
        result.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        result.add_row(*row)
    return result


def is_number(text: str) -> bool:
    """Whether a cell reads as a number (`1,024`, `3.5`, `12%`)."""
    try:
        float(text.replace(",", "").rstrip("%"))
    except ValueError:
        return False
    return True
