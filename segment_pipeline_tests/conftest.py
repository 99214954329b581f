"""Shared fixtures.

- `sample_dir`: the bundled sample dataset (data/sample).
- `shared_data_dir`: ../shared/data (the real files), skipped when absent.
- `instance`: an ephemeral Dagster instance (runs are real, nothing persists).
- `staged_sample_db`: a DuckDB file with raw + staging materialized from the bundled sample,
  built once per test session; copy it (`copy_db`) before writing to it.
- `settings_for(data_dir, db_path)`: PipelineSettings for a test dataset and warehouse.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import yaml

from segment_pipeline.assets.layer import LayerContext
from segment_pipeline.settings import PROJECT_ROOT, PipelineSettings

# Tests never touch the project's own instance or warehouse.
os.environ.pop("DAGSTER_HOME", None)

SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    assert (SAMPLE_DIR / "transactions").is_dir(), "the bundled sample is missing"
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA_DIR} not present")
    return SHARED_DATA_DIR


#: The project instance's event log storage (.dagster_home/dagster.yaml), for test instances.
POOLED_EVENT_LOG = {
    "event_log_storage": {
        "module": "segment_pipeline.instance_storage",
        "class": "PooledSqliteEventLogStorage",
    }
}


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test(overrides=POOLED_EVENT_LOG) as inst:
        yield inst


def project_home(home: Path) -> Path:
    """A DAGSTER_HOME for a test, configured like the project's own (.dagster_home/)."""
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((PROJECT_ROOT / ".dagster_home" / "dagster.yaml").read_text())
    # The pooled event log defaults to $DAGSTER_HOME/history/runs; name it for readers
    # (tests open the instance with from_config, without DAGSTER_HOME set).
    config["event_log_storage"]["config"] = {"base_dir": str(home / "history" / "runs")}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def layer_context(settings: PipelineSettings) -> LayerContext:
    """What a layer's `build_assets` needs, for tests that materialize one layer's assets
    (month partitions from 2000: only the snapshot assets use them)."""
    return LayerContext(
        partitions_def=dg.MonthlyPartitionsDefinition(start_date="2000-01-01"),
        figures_dir=Path(settings.figures_dir),
    )


def settings_for(data_dir: Path, db_path: Path, **overrides: object) -> PipelineSettings:
    return PipelineSettings(
        data_dir=Path(data_dir),
        db_path=Path(db_path),
        figures_dir=Path(db_path).parent / "figures",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def staged_sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """raw + staging of the whole bundled sample, materialized once through a real run."""
    from segment_pipeline.runner import execute_pipeline

    db = tmp_path_factory.mktemp("staged") / "segments.duckdb"
    settings = settings_for(SAMPLE_DIR, db)
    with dg.instance_for_test() as inst:
        outcome = execute_pipeline(
            settings, instance=inst, selection='key:"raw/*" or key:"staging/*"', echo=False
        )
    assert outcome.success, outcome.messages
    return db


@pytest.fixture
def copy_db(tmp_path: Path) -> Callable[[Path], Path]:
    """Copy a warehouse file into this test's tmp folder (so tests can write to it)."""

    def _copy(db: Path) -> Path:
        target = tmp_path / "warehouse" / "segments.duckdb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(db, target)
        return target

    return _copy
