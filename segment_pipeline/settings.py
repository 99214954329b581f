"""Project-wide settings: the one place that reads the project's environment variables.

Every `SEGMENT_PIPELINE_*` variable is declared once, in `ENV_VARS`, and read by
`PipelineSettings.from_env` when the definitions load (`segment_pipeline.definitions`) or when
the CLI starts. Nothing here runs at import time. The `.env` file in the working directory is
read by the entry points, never by this module: Dagster's own commands (`dagster dev`, the
webserver, the daemon, `dagster asset materialize`) load it before the code location, and
`segment-pipeline` loads it in `cli.main` the same way (the environment wins over the file).

What the definitions need before any resource exists (the dataset's location and start, for
the month partitions and the sensor's folder; the figures folder; the schedule's cron) is read
here. What runs read is Dagster resource config: `definitions.build_definitions` configures the
`dataset` and `warehouse` resources with `dg.EnvVar(...)` for every value that came from the
environment (the UI shows the variable, not a copy of its value) and with the plain value for
CLI flags and defaults.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The repository root (the folder holding `pyproject.toml`), used for project-relative defaults.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_DATA_DIR = PROJECT_ROOT / "data" / "sample"
DEFAULT_DB_PATH = PROJECT_ROOT / "data" / "warehouse" / "segments.duckdb"
DEFAULT_FIGURES_DIR = PROJECT_ROOT / "data" / "warehouse" / "figures"
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"

#: Data without timestamps (Black Friday) is loaded as this one day unless configured.
DEFAULT_UNDATED_DAY = date(2024, 11, 29)
DEFAULT_SCHEDULE_CRON = "30 4 * * *"  # 04:30, after the day's files have landed
DEFAULT_SQL_CHUNK_ROWS = 50_000
#: DuckDB's memory limit: `auto` is 900MB, 800MB while a large load is staged (more than 30M
#: raw lines, not yet staged), 700MB once the warehouse holds more than 30M staged lines
#: (resources.resolved_memory_limit says why).
DEFAULT_MEMORY_LIMIT = "auto"
#: What `auto` stands for (resources.resolved_memory_limit).
AUTO_MEMORY_LIMIT = "900MB"
LARGE_LOAD_MEMORY_LIMIT = "800MB"
LARGE_WAREHOUSE_MEMORY_LIMIT = "700MB"
LARGE_WAREHOUSE_LINES = 30_000_000

ENV_PREFIX = "SEGMENT_PIPELINE_"

#: Setting -> the environment variable it is read from (all optional). The SQL source's
#: database URL is not a setting: it holds a password, so it is only ever read from the
#: environment, when the SQL source opens (`sources.sql.read_sql_url`), and never shown.
ENV_VARS: dict[str, str] = {
    "data_dir": ENV_PREFIX + "DATA",
    "source_format": ENV_PREFIX + "FORMAT",
    "mapping_file": ENV_PREFIX + "MAPPING",
    "db_path": ENV_PREFIX + "DB",
    "figures_dir": ENV_PREFIX + "FIGURES_DIR",
    "undated_day": ENV_PREFIX + "UNDATED_DAY",
    "timezone": ENV_PREFIX + "TIMEZONE",
    "start_date": ENV_PREFIX + "START_DATE",
    "schedule_cron": ENV_PREFIX + "SCHEDULE_CRON",
    "schedule_timezone": ENV_PREFIX + "SCHEDULE_TIMEZONE",
    "schedule_enabled": ENV_PREFIX + "SCHEDULE_ENABLED",
    "sql_transactions_table": ENV_PREFIX + "SQL_TRANSACTIONS",
    "sql_customers_table": ENV_PREFIX + "SQL_CUSTOMERS",
    "sql_products_table": ENV_PREFIX + "SQL_PRODUCTS",
    "sql_chunk_rows": ENV_PREFIX + "SQL_CHUNK_ROWS",
    "memory_limit": ENV_PREFIX + "MEMORY_LIMIT",
}


class SettingsError(ValueError):
    """A setting (an environment variable, `.env` or resource config) is not usable; the
    message names it."""


@dataclass(frozen=True)
class PipelineSettings:
    """Where the data comes from, where the warehouse goes, and when the schedule runs.

    Every field but `end_date` and `from_environment` can be set by its variable in `ENV_VARS`
    (in the environment or `.env`); the defaults run the bundled sample. `timezone` is the
    dataset's zone: timestamps with an offset are converted to its local time.
    """

    data_dir: Path = DEFAULT_DATA_DIR
    source_format: str = "canonical"
    mapping_file: Path | None = None
    db_path: Path = DEFAULT_DB_PATH
    figures_dir: Path | None = None  # None: next to the database (see figures_dir_for)
    undated_day: date = DEFAULT_UNDATED_DAY
    timezone: str = "UTC"  # timestamps with an offset are converted to this zone's local time
    #: First partition when the dataset cannot list its first day (one export, a SQL table).
    start_date: date | None = None
    #: The data's last day when the CLI has read it (a single export, a SQL table): the
    #: partitions then reach it even when it lies after the current month. Not an env setting.
    end_date: date | None = None
    schedule_cron: str = DEFAULT_SCHEDULE_CRON
    schedule_timezone: str = "UTC"
    schedule_enabled: bool = False  # declared running (else turned on in the UI)
    #: Tables of the `sql` source (`schema.table` allowed) and its rows fetched per chunk.
    sql_transactions_table: str = "transactions"
    sql_customers_table: str = "customers"
    sql_products_table: str = "products"
    sql_chunk_rows: int = DEFAULT_SQL_CHUNK_ROWS
    #: DuckDB's memory limit per connection (the warehouse resource's `memory_limit`): `auto`
    #: or a size; larger work spills to a folder next to the database. The process needs
    #: about 0.5 GB on top.
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    #: The fields whose value came from their environment variable: resources built from these
    #: settings reference the variable (`dg.EnvVar`) instead of copying its value.
    from_environment: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PipelineSettings:
        """Settings from the environment (`os.environ` unless `env` is given). Unset or blank
        variables keep their default; a bad value raises SettingsError naming the variable."""
        env = os.environ if env is None else env
        values = {
            name: env[var].strip()
            for name, var in ENV_VARS.items()
            if env.get(var) and env[var].strip()
        }
        return cls.from_strings(values, origin=lambda name: ENV_VARS[name]).with_overrides(
            from_environment=frozenset(values)
        )

    @classmethod
    def from_strings(
        cls, values: Mapping[str, str | None], *, origin: Callable[[str], str] | None = None
    ) -> PipelineSettings:
        """Settings from text values by field name (environment variables, resource config),
        parsed the same way wherever they come from. `origin(field)` names where a value came
        from in error messages."""
        origin = origin or (lambda name: name)
        parsed: dict[str, object] = {}
        for name, text in values.items():
            if text is None or not str(text).strip():
                continue
            parsed[name] = _PARSERS.get(name, _text)(origin(name), str(text).strip())
        return cls(**parsed)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.figures_dir is None:
            object.__setattr__(self, "figures_dir", figures_dir_for(self.db_path))

    def with_overrides(self, **changes: object) -> PipelineSettings:
        """A copy with some fields replaced (`None` values are ignored). A replaced field no
        longer comes from the environment. A new database moves the derived figures folder with
        it, unless a figures folder was set explicitly."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if (
            "db_path" in changes
            and "figures_dir" not in changes
            and self.figures_dir == figures_dir_for(self.db_path)
        ):
            changes["figures_dir"] = figures_dir_for(Path(str(changes["db_path"])))
        if "from_environment" not in changes:
            changes["from_environment"] = self.from_environment - set(changes)
        return replace(self, **changes)

    def env_or_value(self, name: str, value: object) -> object:
        """`dg.EnvVar` of setting `name` when its value came from the environment, else
        `value` (resource config: the UI then shows the variable, not a copy of it)."""
        if name in self.from_environment:
            import dagster as dg

            return dg.EnvVar(ENV_VARS[name])
        return value


def _text(origin: str, value: str) -> str:
    return value


def _lower(origin: str, value: str) -> str:
    return value.lower()


def _path(origin: str, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()


def _day(origin: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SettingsError(
            f"{origin}={value!r} is not a date; write it as YYYY-MM-DD (in the environment or .env)"
        ) from None


def _zone(origin: str, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{origin}={value!r} is not a time zone; use an IANA name such as "
            "UTC, Europe/London or Asia/Seoul"
        ) from None
    return value


def _flag(origin: str, value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def _positive_int(origin: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise SettingsError(f"{origin} must be a whole number of at least 1, not {value!r}")
    return number


#: A DuckDB memory size: a number and a unit (its own spelling: 900MB, 1.5GB, 512MiB).
_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B|bytes)", re.IGNORECASE)


def _memory_size(origin: str, value: str) -> str:
    if value.strip().lower() == "auto":
        return "auto"
    if not _MEMORY_SIZE.fullmatch(value):
        raise SettingsError(
            f"{origin}={value!r} is not a memory size; use auto, or a number and a unit such "
            "as 900MB, 2GB or 512MiB"
        )
    return value


_PARSERS: dict[str, Callable[[str, str], object]] = {
    "data_dir": _path,
    "source_format": _lower,
    "mapping_file": _path,
    "db_path": _path,
    "figures_dir": _path,
    "undated_day": _day,
    "timezone": _zone,
    "start_date": _day,
    "end_date": _day,
    "schedule_timezone": _zone,
    "schedule_enabled": _flag,
    "sql_chunk_rows": _positive_int,
    "memory_limit": _memory_size,
}
assert set(_PARSERS) - {"end_date"} <= set(ENV_VARS)
assert set(ENV_VARS) <= {f.name for f in fields(PipelineSettings)}


def figures_dir_for(db_path: Path) -> Path:
    """Figures live next to their database, so runs on different datasets (different `--db`)
    never overwrite each other's PNGs: `data/warehouse/figures/` for the default database,
    `<folder>/<name>_figures/` for any other."""
    if Path(db_path) == DEFAULT_DB_PATH:
        return DEFAULT_FIGURES_DIR
    return Path(db_path).parent / f"{Path(db_path).stem}_figures"
