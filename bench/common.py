"""What every benchmark script shares: the ``--json`` flag, a readable table, and the result file.

With ``--json`` a benchmark prints, as its last line, one JSON object ``{"bench": <name>, ...metrics}``
and writes the same object to ``bench/results/<name>.json``; without it, it prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Add the flags every benchmark understands: ``--json`` and where its result file goes."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON object on the last line and write <results-dir>/<name>.json",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help=f"where --json writes (default {RESULTS_DIR})"
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return "" if value is None else str(value)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of dicts as an aligned text table; the first row's keys are the columns."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells
    )
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    """JSON cannot hold NaN or numpy scalars; write them as null and plain numbers."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit(
    name: str,
    metrics: Mapping[str, Any],
    table_rows: Sequence[Mapping[str, Any]] | None = None,
    as_json: bool = False,
    results_dir: Path = RESULTS_DIR,
) -> dict[str, Any]:
    """Print a benchmark's result; with ``as_json`` also write it to ``<results_dir>/<name>.json``.

    The table (when given) and the metrics print first; with ``as_json`` the JSON object is the last line.
    """
    result: dict[str, Any] = {"bench": name, **_plain(dict(metrics))}
    if table_rows:
        print(format_table(table_rows))
        print()
    if as_json:
        results_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(result, sort_keys=False)
        (results_dir / f"{name}.json").write_text(text + "\n")
        print(text)
    else:
        scalars = {
            key: value
            for key, value in result.items()
            if key != "bench" and not isinstance(value, dict | list)
        }
        print(format_table([{"metric": key, "value": value} for key, value in scalars.items()]))
    return result
