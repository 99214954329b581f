"""Project-wide settings, read from the environment (and a `.env` file) with defaults that run
the bundled sample out of the box.

Settings are needed *before* Dagster resources exist: the daily partitions definition starts
at the dataset's first day, so the dataset location must be known when the definitions load.
Everything else (analysis parameters) is Dagster config on resources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import load_dotenv

#: The repository root (the folder holding `pyproject.toml`), used for project-relative defaults.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_DATA_DIR = PROJECT_ROOT / "data" / "sample"
DEFAULT_DB_PATH = PROJECT_ROOT / "data" / "warehouse" / "segments.duckdb"
DEFAULT_FIGURES_DIR = PROJECT_ROOT / "data" / "warehouse" / "figures"
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"

#: Data without timestamps (Black Friday) is loaded as this one day unless configured.
DEFAULT_UNDATED_DAY = date(2024, 11, 29)

ENV_PREFIX = "SEGMENT_PIPELINE_"


@dataclass(frozen=True)
class PipelineSettings:
    """Where the data comes from and where the warehouse goes.

    Environment variables (all optional), also read from `.env` in the working directory:
    `SEGMENT_PIPELINE_DATA`, `SEGMENT_PIPELINE_FORMAT`, `SEGMENT_PIPELINE_MAPPING`,
    `SEGMENT_PIPELINE_DB`, `SEGMENT_PIPELINE_FIGURES_DIR`, `SEGMENT_PIPELINE_UNDATED_DAY`,
    `SEGMENT_PIPELINE_START_DATE` (first partition when the dataset has no dated files yet),
    `SEGMENT_PIPELINE_TIMEZONE` (the dataset's zone: timestamps with an offset are converted
    to its local time; default UTC).
    """

    data_dir: Path = DEFAULT_DATA_DIR
    source_format: str = "canonical"
    mapping_file: Path | None = None
    db_path: Path = DEFAULT_DB_PATH
    figures_dir: Path | None = None  # None: next to the database (see figures_dir_for)
    undated_day: date = DEFAULT_UNDATED_DAY
    timezone: str = "UTC"  # timestamps with an offset are converted to this zone's local time
    start_date: date | None = None
    #: The data's last day when the CLI has read it (a single export, a SQL table): the
    #: partitions then reach it even when it lies after the current month. Not an env setting.
    end_date: date | None = None

    @classmethod
    def from_env(
        cls, env: dict[str, str] | None = None, *, read_dotenv: bool = True
    ) -> PipelineSettings:
        """Build settings from environment variables (and `.env`, without overriding the
        environment)."""
        if env is None:
            if read_dotenv:
                load_dotenv(Path.cwd() / ".env", override=False)
            env = dict(os.environ)

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value.strip() if value and value.strip() else None

        defaults = cls()
        mapping = get("MAPPING")
        undated = _day_setting("UNDATED_DAY", get("UNDATED_DAY"))
        start = _day_setting("START_DATE", get("START_DATE"))
        return cls(
            data_dir=_path(get("DATA")) or defaults.data_dir,
            source_format=(get("FORMAT") or defaults.source_format).lower(),
            mapping_file=_path(mapping),
            db_path=_path(get("DB")) or defaults.db_path,
            figures_dir=_path(get("FIGURES_DIR")),
            undated_day=undated or defaults.undated_day,
            timezone=_timezone_setting(get("TIMEZONE")) or defaults.timezone,
            start_date=start,
        )

    def __post_init__(self) -> None:
        if self.figures_dir is None:
            object.__setattr__(self, "figures_dir", figures_dir_for(self.db_path))

    def with_overrides(self, **changes: object) -> PipelineSettings:
        """A copy with some fields replaced (`None` values are ignored). A new database moves
        the derived figures folder with it, unless a figures folder was set explicitly."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if (
            "db_path" in changes
            and "figures_dir" not in changes
            and self.figures_dir == figures_dir_for(self.db_path)
        ):
            changes["figures_dir"] = figures_dir_for(Path(str(changes["db_path"])))
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (for subprocesses such as
        `dagster dev`)."""
        env = {
            ENV_PREFIX + "DATA": str(self.data_dir),
            ENV_PREFIX + "FORMAT": self.source_format,
            ENV_PREFIX + "DB": str(self.db_path),
            ENV_PREFIX + "FIGURES_DIR": str(self.figures_dir),
            ENV_PREFIX + "UNDATED_DAY": self.undated_day.isoformat(),
            ENV_PREFIX + "TIMEZONE": self.timezone,
        }
        if self.mapping_file is not None:
            env[ENV_PREFIX + "MAPPING"] = str(self.mapping_file)
        if self.start_date is not None:
            env[ENV_PREFIX + "START_DATE"] = self.start_date.isoformat()
        return env


class SettingsError(ValueError):
    """A setting from the environment or `.env` is not usable; the message names it."""


def _day_setting(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SettingsError(
            f"{ENV_PREFIX}{name}={value!r} is not a date; write it as YYYY-MM-DD "
            "(in the environment or .env)"
        ) from None


def _timezone_setting(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{ENV_PREFIX}TIMEZONE={value!r} is not a time zone; use an IANA name such as "
            "UTC, Europe/London or Asia/Seoul"
        ) from None
    return value


def figures_dir_for(db_path: Path) -> Path:
    """Figures live next to their database, so runs on different datasets (different `--db`)
    never overwrite each other's PNGs: `data/warehouse/figures/` for the default database,
    `<folder>/<name>_figures/` for any other."""
    if Path(db_path) == DEFAULT_DB_PATH:
        return DEFAULT_FIGURES_DIR
    return Path(db_path).parent / f"{Path(db_path).stem}_figures"


def _path(value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()
