"""The batch summary: one line per model, as a rich table, report.md and report.html in DIR."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.files import write_text_atomic

COLUMNS = ("model", "status", "exporter", "opset", "nodes", "ONNX MB", "max diff", "seconds", "error")


def cells(row: Mapping[str, Any]) -> list[str]:
    """The table cells of one manifest row."""
    nodes = f"{row['nodes_before']} -> {row['nodes_after']}" if row.get("nodes_after") else ""
    size = f"{row['size_bytes'] / 1e6:.1f}" if row.get("size_bytes") else ""
    diff = f"{row['max_abs_diff']:.2g}" if row.get("max_abs_diff") is not None else ""
    seconds = row.get("wall_seconds") or (row.get("seconds") or {}).get("total")
    error = f"{row['error_class']}: {row.get('error') or ''}" if row.get("error_class") else ""
    return [
        row["name"],
        row.get("status", ""),
        row.get("exporter") or "",
        str(row.get("opset") or ""),
        nodes,
        size,
        diff,
        f"{seconds:.1f}" if seconds else "",
        error,
    ]


def counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    return dict(Counter(row.get("status", "?") for row in rows))


def counts_line(rows: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts(rows).items())) or "no models"


def summary_table(rows: Sequence[Mapping[str, Any]], title: str | None = None):
    from zoo.cli.output import table

    return table(title, COLUMNS, [cells(row) for row in rows])


def markdown(rows: Sequence[Mapping[str, Any]], title: str) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        f"# {title}",
        "",
        counts_line(rows),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(escape(c) for c in cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def html_page(rows: Sequence[Mapping[str, Any]], title: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "\n".join(
        f'<tr class="{html.escape(row.get("status", ""))}">'
        + "".join(f"<td>{html.escape(c)}</td>" for c in cells(row))
        + "</tr>"
        for row in rows
    )
    style = (
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "tr.ok td:nth-child(2){color:green}tr.failed td:nth-child(2),tr.timeout td:nth-child(2),"
        "tr.verify-failed td:nth-child(2){color:#b00}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>{html.escape(counts_line(rows))}</p>\n<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n"
        "</tbody></table></body></html>\n"
    )


def write_reports(directory: str | Path, rows: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Write DIR/report.md and DIR/report.html for `rows` (atomically); their paths."""
    directory = Path(directory)
    title = f"zoo convert: {directory.name}"
    written = []
    for name, text in (("report.md", markdown(rows, title)), ("report.html", html_page(rows, title))):
        written.append(write_text_atomic(directory / name, text))
    return written
