"""A summary over seeds as a table for a paper: LaTeX (booktabs) or Markdown.

Each cell is the mean ± the std over the seeds, both rounded where the std says the
digits stop meaning anything (one significant digit of the std, two when it starts with
a 1), and the best mean of each metric is bold: the largest, or the smallest for the
metrics in ``lowest``. Pure text from numbers: it reads no store and prints nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

#: What the dagger on a marked row says.
OUTDATED_NOTE = "outdated: made by an earlier version of the code"

#: One row: the key cells as text, then (mean, std, n) of each metric.
Row = tuple[list[str], list[tuple[float | None, float | None, int | None]]]


def decimals(std: float | None, mean: float | None) -> int:
    """How many decimals a mean ± std shows: to the std's first significant digit (its
    second when that is a 1); four significant digits of the mean without a std.

    >>> decimals(0.0044, 0.9831), decimals(0.0123, 0.9), decimals(None, 12.5)
    (3, 3, 2)
    """
    if std is None or not math.isfinite(std) or std <= 0:
        if mean is None or not math.isfinite(mean) or mean == 0:
            return 4
        return max(0, 3 - math.floor(math.log10(abs(mean))))
    place = math.floor(math.log10(std))
    first = int(std / 10**place + 1e-9)
    return max(0, -place + (1 if first == 1 else 0))


def mean_pm_std(mean: float | None, std: float | None, *, plus_minus: str = "±") -> str:
    """``0.983 ± 0.004``, rounded by :func:`decimals`; ``-`` with no mean.

    >>> mean_pm_std(0.98312, 0.0044)
    '0.983 ± 0.004'
    """
    if mean is None or not math.isfinite(mean):
        return "-"
    places = decimals(std, mean)
    if std is None or not math.isfinite(std):
        return f"{mean:.{places}f}"
    return f"{mean:.{places}f} {plus_minus} {std:.{places}f}"


def paper_table(
    kind: str,
    keys: Sequence[str],
    metrics: Sequence[str],
    rows: Sequence[Row],
    *,
    lowest: Collection[str] = (),
    marked: Collection[int] = (),
) -> str:
    """The table, ``kind`` ``"latex"`` or ``"markdown"``, with one row per setting; the
    rows at the positions ``marked`` (outdated: made by an earlier version of the code)
    carry a dagger, which a note under the table explains.

    >>> print(paper_table("markdown", ["lr"], ["acc"], [(["0.1"], [(0.9, 0.01, 3)]),
    ...                                                  (["0.01"], [(0.95, 0.02, 3)])]))
    | lr | acc |
    | --- | --- |
    | 0.1 | 0.900 ± 0.010 |
    | 0.01 | **0.95 ± 0.02** |
    <BLANKLINE>
    """
    best: dict[int, float] = {}
    for j, metric in enumerate(metrics):
        means = [m for m in (r[1][j][0] for r in rows) if m is not None and math.isfinite(m)]
        if means:
            best[j] = min(means) if metric in lowest else max(means)
    latex = kind == "latex"
    lines = []
    dagger, marked = ("$^\\dagger$" if latex else " †"), set(marked)
    for i, (key_cells, stats) in enumerate(rows):
        cells = [_escape(c) if latex else c for c in key_cells]
        if i in marked and cells:
            cells[-1] += dagger
        for j, (mean, std, _) in enumerate(stats):
            text = mean_pm_std(mean, std, plus_minus="$\\pm$" if latex else "±")
            if mean is not None and best.get(j) == mean:
                text = f"\\textbf{{{text}}}" if latex else f"**{text}**"
            cells.append(text)
        lines.append(cells)
    head = [*keys, *metrics]
    if latex:
        columns = "l" * len(keys) + "r" * len(metrics)
        out = [
            f"\\begin{{tabular}}{{{columns}}}",
            "\\toprule",
            " & ".join(_escape(h) for h in head) + " \\\\",
            "\\midrule",
            *(" & ".join(cells) + " \\\\" for cells in lines),
            "\\bottomrule",
            "\\end{tabular}",
        ]
        if marked:
            out.append(f"% $^\\dagger$ {OUTDATED_NOTE}")
    else:
        out = [
            "| " + " | ".join(head) + " |",
            "| " + " | ".join("---" for _ in head) + " |",
            *("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in lines),
        ]
        if marked:
            out += ["", f"† {OUTDATED_NOTE}"]
    return "\n".join(out) + "\n"


def _escape(text: str) -> str:
    """Text as LaTeX reads it: its special characters escaped."""
    special = {
        "&": "\\&",
        "%": "\\%",
        "$": "\\$",
        "#": "\\#",
        "_": "\\_",
        "{": "\\{",
        "}": "\\}",
        "~": "\\textasciitilde{}",
        "^": "\\textasciicircum{}",
        "\\": "\\textbackslash{}",
    }
    return "".join(special.get(c, c) for c in text)
