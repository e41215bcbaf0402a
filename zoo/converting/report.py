"""The batch summary: counts per task family, then one line per model; a rich table, report.md, report.html."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.converting.manifest import FAILURES
from zoo.files import write_text_atomic
from zoo.registry.records import TASKS
from zoo.rendering import table

COLUMNS = ("model", "status", "exporter", "opset", "nodes", "ONNX MB", "max diff", "seconds", "error")
FAMILY_COLUMNS = ("task family", "models", "exported", "verified", "failed", "failures by reason")
FAMILY_ORDER = (*TASKS, "quantized")


def runtime_names(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The runtimes beyond onnxruntime that any row was verified in (`--runtime`): a column each."""
    names = {name for row in rows for name in (row.get("runtimes") or {}) if name != "onnxruntime"}
    return sorted(names)


def runtime_cell(row: Mapping[str, Any], name: str) -> str:
    """`ok 1.2e-06`, `FAILED 0.31` (max abs diff) or `error: <the runtime's message>`; empty when not run."""
    result = (row.get("runtimes") or {}).get(name)
    if not result:
        return ""
    if result.get("error"):
        return f"error: {result['error']}"
    diff = f" {result['max_abs']:.2g}" if result.get("max_abs") is not None else ""
    return ("ok" if result.get("passed") else "FAILED") + diff


def columns(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """COLUMNS with one column per extra runtime, before the error."""
    return (*COLUMNS[:-1], *runtime_names(rows), COLUMNS[-1])


def cells(row: Mapping[str, Any], runtimes: Sequence[str] = ()) -> list[str]:
    """The table cells of one manifest row (`runtimes`: the extra runtimes' columns)."""
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
        *(runtime_cell(row, name) for name in runtimes),
        error,
    ]


def counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    return dict(Counter(row.get("status", "?") for row in rows))


def counts_line(rows: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts(rows).items())) or "no models"


def family_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task family: models, exported (an exporter produced ONNX), verified, failed, and failure reasons.

    A row's family is its `task` (a registry task, or `quantized`); rows written before zoo recorded it
    count as `unknown`. Reasons are `status: error class` with how many models each.
    """
    families: dict[str, dict[str, Any]] = {}
    for row in rows:
        family = row.get("task") or "unknown"
        entry = families.setdefault(family, {"models": 0, "exported": 0, "verified": 0, "failed": 0, "reasons": {}})
        entry["models"] += 1
        entry["exported"] += bool(row.get("exporter"))
        entry["verified"] += bool(row.get("verified")) and row.get("status") in ("ok", "skipped")
        if row.get("status") in FAILURES:
            entry["failed"] += 1
            reason = f"{row['status']}: {row.get('error_class') or '?'}"
            entry["reasons"][reason] = entry["reasons"].get(reason, 0) + 1
    rank = {name: index for index, name in enumerate(FAMILY_ORDER)}
    return {name: families[name] for name in sorted(families, key=lambda n: (rank.get(n, len(rank)), n))}


def family_cells(rows: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    """The per-family table's cells."""
    result = []
    for family, entry in family_counts(rows).items():
        reasons = ", ".join(f"{reason} x{n}" for reason, n in sorted(entry["reasons"].items(), key=lambda r: -r[1]))
        numbers = [str(entry[key]) for key in ("models", "exported", "verified", "failed")]
        result.append([family, *numbers, reasons])
    return result


def summary_table(rows: Sequence[Mapping[str, Any]], title: str | None = None):
    runtimes = runtime_names(rows)
    return table(title, columns(rows), [cells(row, runtimes) for row in rows])


def family_table(rows: Sequence[Mapping[str, Any]], title: str | None = None):
    return table(title, FAMILY_COLUMNS, family_cells(rows))


def markdown(rows: Sequence[Mapping[str, Any]], title: str) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    def markdown_table(columns: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        return lines + ["| " + " | ".join(escape(c) for c in line) + " |" for line in body]

    lines = [f"# {title}", "", counts_line(rows), "", *markdown_table(FAMILY_COLUMNS, family_cells(rows)), ""]
    runtimes = runtime_names(rows)
    lines += markdown_table(columns(rows), [cells(row, runtimes) for row in rows])
    return "\n".join(lines) + "\n"


def html_page(rows: Sequence[Mapping[str, Any]], title: str) -> str:
    runtimes = runtime_names(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns(rows))
    body = "\n".join(
        f'<tr class="{html.escape(row.get("status", ""))}">'
        + "".join(f"<td>{html.escape(c)}</td>" for c in cells(row, runtimes))
        + "</tr>"
        for row in rows
    )
    family_head = "".join(f"<th>{html.escape(c)}</th>" for c in FAMILY_COLUMNS)
    family_body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in family_cells(rows)
    )
    style = (
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "tr.ok td:nth-child(2){color:green}tr.failed td:nth-child(2),tr.timeout td:nth-child(2),"
        "tr.verify-failed td:nth-child(2),tr.crashed td:nth-child(2),tr.memory td:nth-child(2){color:#b00}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>{html.escape(counts_line(rows))}</p>\n"
        f'<table class="families"><thead><tr>{family_head}</tr></thead><tbody>\n{family_body}\n</tbody></table>\n'
        f"<h2>Models</h2>\n<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n"
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
