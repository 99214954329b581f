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
    `SEGMENT_PIPELINE_START_DATE` (first partition when the dataset has no dated files yet).
    """

    data_dir: Path = DEFAULT_DATA_DIR
    source_format: str = "canonical"
    mapping_file: Path | None = None
    db_path: Path = DEFAULT_DB_PATH
    figures_dir: Path = DEFAULT_FIGURES_DIR
    undated_day: date = DEFAULT_UNDATED_DAY
    start_date: date | None = None

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
        undated = get("UNDATED_DAY")
        start = get("START_DATE")
        return cls(
            data_dir=_path(get("DATA")) or defaults.data_dir,
            source_format=(get("FORMAT") or defaults.source_format).lower(),
            mapping_file=_path(mapping),
            db_path=_path(get("DB")) or defaults.db_path,
            figures_dir=_path(get("FIGURES_DIR")) or defaults.figures_dir,
            undated_day=date.fromisoformat(undated) if undated else defaults.undated_day,
            start_date=date.fromisoformat(start) if start else None,
        )

    def with_overrides(self, **changes: object) -> PipelineSettings:
        """A copy with some fields replaced (`None` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (for subprocesses such as
        `dagster dev`)."""
        env = {
            ENV_PREFIX + "DATA": str(self.data_dir),
            ENV_PREFIX + "FORMAT": self.source_format,
            ENV_PREFIX + "DB": str(self.db_path),
            ENV_PREFIX + "FIGURES_DIR": str(self.figures_dir),
            ENV_PREFIX + "UNDATED_DAY": self.undated_day.isoformat(),
        }
        if self.mapping_file is not None:
            env[ENV_PREFIX + "MAPPING"] = str(self.mapping_file)
        if self.start_date is not None:
            env[ENV_PREFIX + "START_DATE"] = self.start_date.isoformat()
        return env


def _path(value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()
