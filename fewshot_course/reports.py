"""Tables for the notebooks: methods compared with their confidence intervals, recorded benchmarks.

``comparison_table`` turns evaluation results into a markdown table (display it with
``IPython.display.Markdown``); ``benchmark_section`` reads a section that a benchmark script wrote
into ``benchmarks/RESULTS.md``, so a notebook quotes measured figures instead of restating them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from fewshot_course.evaluation import Result

__all__ = ["format_result", "comparison_table", "benchmark_section", "RESULTS_FILE"]

#: Where the benchmark scripts record their figures (present in a source checkout of the course).
RESULTS_FILE = Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md"


def format_result(result: Result, *, percent: bool = True) -> str:
    """``"93.4 ± 1.2 %"`` (or ``"0.934 ± 0.012"`` with ``percent=False``) for a ``Result``."""
    if percent:
        return f"{100 * result.mean:.1f} ± {100 * result.ci95:.1f} %"
    return f"{result.mean:.3f} ± {result.ci95:.3f}"


def comparison_table(rows: Mapping[str, Mapping[str, object] | Result], *,
                     row_header: str = "method") -> str:
    """A markdown table with one row per key of ``rows``.

    Args:
        rows: row name -> either one ``Result`` (a single "accuracy" column) or a mapping
            column name -> cell. ``Result`` cells are written as mean ± 95% CI half-width in
            percent, floats with 3 significant digits, anything else with ``str``. Columns appear
            in order of first use; a row without a column gets an empty cell.
        row_header: heading of the first column.

    Example::

        comparison_table({"ProtoNet": {"Digits 1-shot": r1, "Digits 5-shot": r5},
                          "1-NN pixels": {"Digits 1-shot": n1, "Digits 5-shot": n5}})
    """
    if not rows:
        raise ValueError("comparison_table needs at least one row")
    table = {name: ({"accuracy": row} if isinstance(row, Result) else dict(row))
             for name, row in rows.items()}
    columns = list(dict.fromkeys(column for row in table.values() for column in row))
    lines = ["| " + " | ".join([row_header, *columns]) + " |",
             "| " + " | ".join(["---"] + ["---:"] * len(columns)) + " |"]
    for name, row in table.items():
        cells = [_cell(row[column]) if column in row else "" for column in columns]
        lines.append("| " + " | ".join([_escape(str(name)), *cells]) + " |")
    return "\n".join(lines)


def benchmark_section(name: str, results_file: str | Path | None = None) -> str | None:
    """The markdown body of section ``name`` of ``benchmarks/RESULTS.md``, or None if absent.

    Sections are delimited by ``<!-- name:start -->`` and ``<!-- name:end -->`` (see
    ``benchmarks/results.py``); the section's own ``## name`` heading is dropped so the text can be
    embedded under a notebook's heading.
    """
    path = Path(results_file) if results_file is not None else RESULTS_FILE
    if not path.exists():
        return None
    match = re.search(rf"<!-- {re.escape(name)}:start -->\n(.*?)<!-- {re.escape(name)}:end -->",
                      path.read_text(encoding="utf-8"), flags=re.DOTALL)
    if match is None:
        return None
    body = match.group(1)
    body = re.sub(rf"\A## {re.escape(name)}\s*\n", "", body.lstrip())
    return body.strip()


def _cell(value: object) -> str:
    if isinstance(value, Result):
        return format_result(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return _escape(str(value))


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
