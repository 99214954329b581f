"""`segment-pipeline`: generate sample data and run the pipeline through a real Dagster run.

    segment-pipeline generate --out DIR [--customers N] [--days D] [--seed S] [--start DAY]
    segment-pipeline run [--data DIR] [--format FMT] [--db FILE] [--select SELECTION]
    segment-pipeline backfill --start DAY --end DAY [--data DIR] [--db FILE] [--select ...]

`run` executes the project's asset job in process on the project's persistent Dagster instance
(`.dagster_home/` unless DAGSTER_HOME is set), so its runs show in `make ui` afterwards.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

from segment_pipeline.settings import DEFAULT_DAGSTER_HOME, PipelineSettings


def _parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segment-pipeline",
        description="Customer segmentation pipeline (Dagster + DuckDB).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a deterministic synthetic dataset")
    gen.add_argument("--out", type=Path, required=True, help="output folder")
    gen.add_argument("--customers", type=int, default=3000)
    gen.add_argument("--days", type=int, default=365)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument(
        "--start", type=_parse_day, default=date(2025, 11, 1), help="first day (default 2025-11-01)"
    )

    run = sub.add_parser("run", help="materialize the pipeline over every day in the dataset")
    _add_dataset_args(run)
    run.add_argument(
        "--select",
        default=None,
        help="Dagster asset selection (default: every asset), e.g. "
        "'key:staging/*' or 'key:\"staging/transactions\"+'",
    )
    run.add_argument(
        "--start",
        type=_parse_day,
        default=None,
        help="first day to (re)load (default: the dataset's first day)",
    )
    run.add_argument(
        "--end",
        type=_parse_day,
        default=None,
        help="last day to (re)load (default: the dataset's last day)",
    )

    backfill = sub.add_parser(
        "backfill",
        help="(re)materialize a range of days as one run, then everything downstream",
    )
    _add_dataset_args(backfill)
    backfill.add_argument("--start", type=_parse_day, required=True, help="first day")
    backfill.add_argument("--end", type=_parse_day, required=True, help="last day")
    backfill.add_argument(
        "--select", default=None, help="Dagster asset selection (default: every asset)"
    )
    return parser


def _add_dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="dataset folder (default: $SEGMENT_PIPELINE_DATA or data/sample)",
    )
    parser.add_argument(
        "--format", dest="source_format", default=None, help="source format (default: canonical)"
    )
    parser.add_argument(
        "--mapping", type=Path, default=None, help="column mapping file (format 'mapped')"
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="DuckDB file (default: data/warehouse/segments.duckdb)",
    )


def _settings_from_args(args: argparse.Namespace) -> PipelineSettings:
    settings = PipelineSettings.from_env()
    return settings.with_overrides(
        data_dir=args.data.resolve() if args.data else None,
        source_format=args.source_format.lower() if args.source_format else None,
        mapping_file=args.mapping.resolve() if args.mapping else None,
        db_path=args.db.resolve() if args.db else None,
    )


def _use_project_instance() -> None:
    """Point Dagster at the project's persistent instance (unless DAGSTER_HOME is set)."""
    if not os.environ.get("DAGSTER_HOME"):
        DEFAULT_DAGSTER_HOME.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(DEFAULT_DAGSTER_HOME)


def cmd_generate(args: argparse.Namespace) -> int:
    from segment_pipeline.generator import generate

    for name in ("customers", "days"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}")

    report = generate(
        args.out, customers=args.customers, days=args.days, seed=args.seed, start=args.start
    )
    print(
        f"Wrote {report.transaction_lines} transaction lines over {report.days_written} days "
        f"({report.sale_lines} sales, {report.return_lines} returns, "
        f"{sum(report.defective_lines.values())} deliberately defective) for "
        f"{report.customers} customers and {report.products} products to {args.out}"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings_from_args(args)
    check_database_path(Path(settings.db_path))
    _use_project_instance()
    with _collector_paused():
        import segment_pipeline.definitions  # noqa: F401  (what every run builds first)
        from segment_pipeline.runner import project_instance, run_pipeline

        instance = project_instance()
    return run_pipeline(
        settings, instance=instance, selection=args.select, start=args.start, end=args.end
    )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a run starts up, and what start-up built
    frozen (never traversed again) once it is back on.

    Importing dagster, pandas, pandera and the definitions and opening the Dagster instance
    build about 270,000 long-lived objects the collector tracks, and no garbage: its full
    passes over them (six in a run of the tiny dataset, the last ones 0.3-0.5 s each) were
    1.1-1.7 s of the run, and 0.36 s with start-up paused and frozen (gc.callbacks, this
    VM). Nothing created after start-up is frozen here; what start-up built (modules,
    classes, functions, the instance) lives as long as the process anyway. (Workers forked
    from this process, without the drawing server, end the freeze: figures.draw_all.)"""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


#: Exit codes: 0 success, 1 the pipeline ran and a step or a blocking check failed (or an
#: internal error, with its trace in a log file), 2 a usage or input error (one line says what).
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


class UserError(ValueError):
    """Something the user can fix: the message says what, where and what to do."""


def check_database_path(db_path: Path) -> None:
    """Refuse a --db that is a folder or a file DuckDB cannot open, before any work."""
    if db_path.is_dir():
        raise UserError(f"--db {db_path} is a folder; give a file such as {db_path}/w.duckdb")
    if db_path.exists():
        import duckdb

        try:
            duckdb.connect(str(db_path), read_only=True).close()
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                return  # a running pipeline holds it: the run will wait for its turn
            raise UserError(
                f"--db {db_path} is not a DuckDB database ({str(exc).splitlines()[0]}); "
                "choose another file name or delete this file"
            ) from None


def _user_error_types() -> tuple[type[BaseException], ...]:
    from dagster._core.definitions.asset_selection import DagsterInvalidAssetSelectionError

    from segment_pipeline.resources import WarehouseLockTimeout
    from segment_pipeline.sources import DataContractError
    from segment_pipeline.tables import TableShapeError

    return (
        UserError,
        ValueError,  # SettingsError, DataContractError, bad dates and ranges
        DataContractError,
        DagsterInvalidAssetSelectionError,
        WarehouseLockTimeout,
        TableShapeError,
    )


def _write_trace(exc: BaseException) -> Path:
    """The full traceback of an internal error, in a file next to the project's run logs."""
    import traceback

    folder = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"segment-pipeline-error-{time.strftime('%Y%m%d-%H%M%S')}.log"
    path.write_text("".join(traceback.format_exception(exc)))
    return path


def _load_dotenv() -> None:
    """Variables from `.env` in the working directory, as Dagster's own commands load it
    (variables already in the environment win). The one place `segment-pipeline` reads it."""
    from dotenv import load_dotenv

    load_dotenv(Path.cwd() / ".env", override=False)


def main(argv: Sequence[str] | None = None) -> int:
    # Dagster flags beta APIs (backfill policies) on every load; users cannot act on that.
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview)")
    args = build_parser().parse_args(argv)
    _load_dotenv()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    started = time.monotonic()
    handlers = {"generate": cmd_generate, "run": cmd_run, "backfill": cmd_run}
    try:
        code = handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if isinstance(exc, _user_error_types()):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        path = _write_trace(exc)
        print(
            f"internal error: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}\n"
            f"  (a bug in segment-pipeline; the full trace is in {path})",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR
    if args.command != "generate":
        print(f"({time.monotonic() - started:.1f} s)")
    return code


def entry() -> None:
    """The `segment-pipeline` command: `main`, then exit without tearing the interpreter down.

    Every connection is closed and every file written by then; what is left is Python freeing
    the modules of dagster, pandas, matplotlib and polars one object at a time, about 1.2 s of
    every command (measured on the tiny dataset: 15.5 s -> 14.3 s). The exit handlers still
    run (logging's flush among them)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    entry()
