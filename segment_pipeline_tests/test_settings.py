"""One configuration channel: every variable is declared in `settings.ENV_VARS` and read by
`PipelineSettings.from_env`; resources reference the variables (`dg.EnvVar`); importing the
definitions reads nothing; `.env` is loaded by the entry points only."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from segment_pipeline import cli
from segment_pipeline.definitions import build_definitions
from segment_pipeline.resources import DatasetResource
from segment_pipeline.runner import settings_warehouse
from segment_pipeline.settings import ENV_VARS, PipelineSettings, SettingsError
from segment_pipeline_tests.conftest import SAMPLE_DIR


def test_every_variable_is_read_and_parsed(tmp_path: Path) -> None:
    env = {
        ENV_VARS["data_dir"]: str(tmp_path / "shop"),
        ENV_VARS["source_format"]: "  Mapped ",
        ENV_VARS["mapping_file"]: str(tmp_path / "m.yaml"),
        ENV_VARS["db_path"]: str(tmp_path / "w.duckdb"),
        ENV_VARS["undated_day"]: "2024-11-29",
        ENV_VARS["timezone"]: "Asia/Seoul",
        ENV_VARS["start_date"]: "2020-02-03",
        ENV_VARS["schedule_cron"]: "0 1 * * *",
        ENV_VARS["schedule_timezone"]: "Europe/London",
        ENV_VARS["schedule_enabled"]: "true",
        ENV_VARS["sql_transactions_table"]: "sales.lines",
        ENV_VARS["sql_chunk_rows"]: "700",
        ENV_VARS["memory_limit"]: "2.5GB",
        "UNRELATED": "x",
    }
    settings = PipelineSettings.from_env(env)
    assert settings.data_dir == tmp_path / "shop"
    assert settings.source_format == "mapped"
    assert settings.figures_dir == tmp_path / "w_figures"  # follows the database
    assert settings.start_date == date(2020, 2, 3) and settings.timezone == "Asia/Seoul"
    assert (settings.schedule_cron, settings.schedule_timezone) == ("0 1 * * *", "Europe/London")
    assert settings.schedule_enabled is True
    assert (settings.sql_transactions_table, settings.sql_chunk_rows) == ("sales.lines", 700)
    assert settings.memory_limit == "2.5GB"
    assert settings.sql_customers_table == "customers"  # unset: the default
    assert settings.from_environment == {name for name, var in ENV_VARS.items() if var in env}
    # A CLI flag replaces a value: it no longer comes from the environment.
    flagged = settings.with_overrides(db_path=tmp_path / "other.duckdb")
    assert "db_path" not in flagged.from_environment and "data_dir" in flagged.from_environment


def test_auto_is_a_memory_limit() -> None:
    assert PipelineSettings().memory_limit == "auto"
    assert PipelineSettings.from_env({ENV_VARS["memory_limit"]: " AUTO "}).memory_limit == "auto"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("undated_day", "29.11.2024", "SEGMENT_PIPELINE_UNDATED_DAY='29.11.2024' is not a date"),
        ("timezone", "Mars/Olympus", "SEGMENT_PIPELINE_TIMEZONE='Mars/Olympus' is not a time"),
        ("sql_chunk_rows", "many", "SEGMENT_PIPELINE_SQL_CHUNK_ROWS must be a whole number"),
        ("sql_chunk_rows", "0", "SEGMENT_PIPELINE_SQL_CHUNK_ROWS must be a whole number"),
        ("memory_limit", "lots", "SEGMENT_PIPELINE_MEMORY_LIMIT='lots' is not a memory size"),
        ("memory_limit", "900", "SEGMENT_PIPELINE_MEMORY_LIMIT='900' is not a memory size"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        PipelineSettings.from_env({ENV_VARS[name]: value})


def test_resources_reference_the_variables_and_flags_are_values(tmp_path: Path) -> None:
    env = {ENV_VARS["data_dir"]: str(SAMPLE_DIR), ENV_VARS["db_path"]: str(tmp_path / "w.duckdb")}
    from_env = PipelineSettings.from_env(env)
    defs = build_definitions(from_env)
    warehouse, dataset = defs.resources["warehouse"], defs.resources["dataset"]
    assert isinstance(warehouse.path, dg.EnvVar)
    assert warehouse.path.env_var_name == "SEGMENT_PIPELINE_DB"
    assert isinstance(dataset.data_dir, dg.EnvVar)
    assert dataset.source_format == "canonical"  # a default: a value
    assert warehouse.memory_limit == "auto"
    # The CLI's --db is a value in the resource config, not a variable.
    flagged = build_definitions(from_env.with_overrides(db_path=tmp_path / "flag.duckdb"))
    assert flagged.resources["warehouse"].path == str(tmp_path / "flag.duckdb")


def test_the_dataset_resource_parses_like_the_environment(tmp_path: Path) -> None:
    settings = PipelineSettings(data_dir=tmp_path, sql_chunk_rows=123, timezone="Asia/Seoul")
    resource = DatasetResource.for_settings(settings)
    again = resource.settings()
    for name in ("data_dir", "source_format", "undated_day", "timezone", "sql_chunk_rows"):
        assert getattr(again, name) == getattr(settings, name), name
    with pytest.raises(SettingsError, match="the dataset resource's undated_day"):
        DatasetResource(data_dir=str(tmp_path), undated_day="soon").settings()


def test_importing_the_definitions_reads_nothing(tmp_path: Path) -> None:
    """Import does no I/O: with a broken setting and a missing dataset the import succeeds;
    building the definitions (what Dagster does when it loads the code location) then names the
    variable."""
    (tmp_path / ".env").write_text("SEGMENT_PIPELINE_UNDATED_DAY=not-a-day\n")
    code = (
        "import segment_pipeline.definitions as d\n"
        "print('imported')\n"
        "try:\n"
        "    d.defs()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "SEGMENT_PIPELINE_DATA": str(tmp_path / "nowhere"),
        "SEGMENT_PIPELINE_START_DATE": "someday",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "imported"
    # The environment's bad start date is reported; the .env file was not read by the import.
    assert "SEGMENT_PIPELINE_START_DATE='someday' is not a date" in lines[1]


def test_the_cli_loads_dotenv_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ENV_VARS.values():
        # setenv first, so that teardown removes what load_dotenv writes into os.environ
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    (tmp_path / ".env").write_text(
        f"SEGMENT_PIPELINE_DB={tmp_path / 'from_dotenv.duckdb'}\nSEGMENT_PIPELINE_FORMAT=mapped\n"
    )
    monkeypatch.setenv("SEGMENT_PIPELINE_FORMAT", "canonical")
    cli._load_dotenv()
    args = cli.build_parser().parse_args(["run"])
    settings = cli._settings_from_args(args)
    assert settings.db_path == tmp_path / "from_dotenv.duckdb"
    assert settings.source_format == "canonical"


def test_env_example_lists_every_variable() -> None:
    from segment_pipeline.settings import PROJECT_ROOT
    from segment_pipeline.sources.sql import URL_ENV

    listed = (PROJECT_ROOT / ".env.example").read_text()
    missing = [var for var in [*ENV_VARS.values(), URL_ENV] if f"# {var}=" not in listed]
    assert not missing, f".env.example does not list {missing}"


def test_the_memory_limit_reaches_duckdb(tmp_path: Path) -> None:
    """SEGMENT_PIPELINE_MEMORY_LIMIT is the limit of the connections a CLI run opens (its run
    scope's) and a reference to the variable in the definitions' resource."""
    env = {ENV_VARS["db_path"]: str(tmp_path / "w.duckdb"), ENV_VARS["memory_limit"]: "64MB"}
    settings = PipelineSettings.from_env(env)
    resource = build_definitions(settings).resources["warehouse"]
    assert isinstance(resource.memory_limit, dg.EnvVar)
    assert resource.memory_limit.env_var_name == "SEGMENT_PIPELINE_MEMORY_LIMIT"
    with settings_warehouse(settings).connect() as conn:
        limit = conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit == "61.0 MiB"  # DuckDB's reading of 64 MB
