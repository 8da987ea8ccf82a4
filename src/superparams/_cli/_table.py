"""The one table renderer of the command line: rich in a terminal, aligned text otherwise.

Without a terminal (a pipe, a file, a test), nothing imports rich.
"""

from __future__ import annotations

from typing import Any, TextIO

from superparams._cli._parse import is_number


def table(headers: list[str], rows: list[list[str]], stream: TextIO) -> None:
    """A table: rich in a terminal, plain aligned columns otherwise."""
    numeric = [all(is_number(r[i]) or not r[i] for r in rows) for i in range(len(headers))]
    if stream.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for header, is_numeric in zip(headers, numeric, strict=True):
            table.add_column(header, justify="right" if is_numeric else "left")
        for row in rows:
            table.add_row(*row)
        Console(file=stream, highlight=False).print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    stream.write(line(headers) + "\n")
    stream.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        stream.write(line(row) + "\n")
    stream.flush()


def cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if column == "seconds" and isinstance(value, (int, float)):
        from superparams._display import duration

        return duration(float(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    if column in ("outdated", "superseded") and isinstance(value, bool):
        return "true" if value else "false"  # as the exports write it
    return str(value)
