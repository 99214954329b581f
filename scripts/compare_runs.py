"""Compare two pipeline runs: every table's rows and every figure's bytes.

    .venv/bin/python scripts/compare_runs.py BEFORE.duckdb AFTER.duckdb [--figures A_DIR B_DIR]

A refactoring must not change what a run produces: run `segment-pipeline run --db X` on the
old and the new code, then compare. Tables are compared by row count and an order-independent
hash of their rows, except the columns that record when or where a run wrote something
(`RUN_SPECIFIC_COLUMNS`: times, run ids, output file paths), which differ between any two
runs. With `--float-rtol R`, a table whose rows differ is compared again with its DOUBLE values
equal within the relative tolerance R: a sum of doubles can change in its last digit when it
is added in another order (DuckDB's threads), which is not a change of the result. Exit code 0
when everything is equal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import duckdb
import numpy as np

#: Columns holding wall-clock times, run ids or the run's output paths (the figures and the
#: report are written next to each run's database): they differ between two runs of one code.
RUN_SPECIFIC_COLUMNS = {
    "loaded_at", "staged_at", "computed_at", "run_id", "created_at", "file_mtime", "file_path",
}  # fmt: skip


def table_fingerprints(db: Path) -> dict[str, tuple[int, str]]:
    """`schema.table` -> (rows, hash of the rows without run-time columns) for every table."""
    out: dict[str, tuple[int, str]] = {}
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall()
        for schema, name in tables:
            columns = [
                c
                for (c,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                    [schema, name],
                ).fetchall()
                if c not in RUN_SPECIFIC_COLUMNS
            ]
            selected = ", ".join(f'"{c}"' for c in columns)
            rows, digest = conn.execute(
                f"SELECT count(*), coalesce(sum(hash(({selected}))::HUGEINT), 0) "
                f'FROM "{schema}"."{name}"'
            ).fetchone()
            out[f"{schema}.{name}"] = (int(rows), str(digest))
    return out


def equal_within(before: Path, after: Path, table: str, rtol: float) -> bool:
    """Whether `table` has the same rows in both files, DOUBLE values equal within the
    relative tolerance `rtol` (rows matched by their other columns; run-specific columns left
    out)."""
    frames = []
    for db in (before, after):
        with duckdb.connect(str(db), read_only=True) as conn:
            frame = conn.execute(f"SELECT * FROM {table}").df()
        frame = frame.drop(columns=[c for c in frame.columns if c in RUN_SPECIFIC_COLUMNS])
        exact = [c for c in frame.columns if frame[c].dtype.kind != "f"]
        frames.append(frame.sort_values(exact or list(frame.columns)).reset_index(drop=True))
    first, second = frames
    if first.shape != second.shape or list(first.columns) != list(second.columns):
        return False
    for column in first.columns:
        if first[column].dtype.kind == "f":
            if not np.allclose(first[column], second[column], rtol=rtol, atol=0, equal_nan=True):
                return False
        elif not first[column].astype(str).equals(second[column].astype(str)):
            return False
    return True


def figure_digests(folder: Path) -> dict[str, str]:
    pngs = sorted(folder.glob("*.png"))
    return {png.name: hashlib.sha256(png.read_bytes()).hexdigest() for png in pngs}


def compare(before: dict[str, object], after: dict[str, object], what: str) -> list[str]:
    problems = [f"{what} {k}: only before" for k in sorted(set(before) - set(after))]
    problems += [f"{what} {k}: only after" for k in sorted(set(after) - set(before))]
    problems += [
        f"{what} {k}: {before[k]} != {after[k]}"
        for k in sorted(set(before) & set(after))
        if before[k] != after[k]
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--figures", nargs=2, type=Path, metavar=("BEFORE_DIR", "AFTER_DIR"))
    parser.add_argument("--float-rtol", type=float, default=None, metavar="R")
    args = parser.parse_args(argv)
    tables_before, tables_after = table_fingerprints(args.before), table_fingerprints(args.after)
    if args.float_rtol:
        for table in sorted(set(tables_before) & set(tables_after)):
            if tables_before[table] != tables_after[table] and equal_within(
                args.before, args.after, table, args.float_rtol
            ):
                print(f"table {table}: equal, DOUBLE values within {args.float_rtol:g} (relative)")
                tables_after[table] = tables_before[table]
    problems = compare(tables_before, tables_after, "table")
    print(f"tables: {len(tables_before)} before, {len(tables_after)} after")
    if args.figures:
        figures_before, figures_after = map(figure_digests, args.figures)
        problems += compare(figures_before, figures_after, "figure")
        print(f"figures: {len(figures_before)} before, {len(figures_after)} after")
    for line in problems:
        print("DIFFERENT", line)
    print("identical" if not problems else f"{len(problems)} differences")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
