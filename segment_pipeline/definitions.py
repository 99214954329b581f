"""The one place that assembles the project's Dagster definitions.

`dagster dev` / `dagster asset materialize -m segment_pipeline.definitions` load `defs`;
the CLI and the tests call `build_definitions(settings)` with their own dataset and database.
Each layer module contributes its assets; nothing here computes anything.
"""

from __future__ import annotations

import importlib

import dagster as dg

from segment_pipeline.assets.ingest import (
    build_ingest_assets,
    staging_customers,
    staging_products,
)
from segment_pipeline.jobs import ALL_ASSETS_JOB
from segment_pipeline.partitions import dataset_partitions
from segment_pipeline.resources import DatasetResource, DuckDBWarehouse
from segment_pipeline.schedules import build_daily_schedule
from segment_pipeline.sensors import build_new_data_sensor
from segment_pipeline.settings import PipelineSettings
from segment_pipeline.sources import open_source

#: Analysis layers, in graph order. Each module exposes `build_defs(settings) -> Definitions`.
LAYER_MODULES: tuple[str, ...] = (
    "segment_pipeline.assets.rfm",
    "segment_pipeline.assets.behaviour",
    "segment_pipeline.assets.clv",
)


def _layer_definitions(settings: PipelineSettings) -> list[dg.Definitions]:
    """Definitions of the analysis layers."""
    return [importlib.import_module(name).build_defs(settings) for name in LAYER_MODULES]


def build_definitions(settings: PipelineSettings | None = None) -> dg.Definitions:
    """All assets, checks, jobs and resources for one dataset and one warehouse file."""
    settings = settings or PipelineSettings.from_env()
    source = open_source(settings)
    partitions_def = dataset_partitions(settings, source)
    # Adapters with daily files say where they are; the sensor watches that folder.
    watched_dir = getattr(source, "transactions_dir", settings.data_dir)
    core = dg.Definitions(
        assets=[*build_ingest_assets(partitions_def), staging_customers, staging_products],
        jobs=[ALL_ASSETS_JOB],
        schedules=[build_daily_schedule(partitions_def)],
        sensors=[build_new_data_sensor(watched_dir, partitions_def)],
        resources={
            "warehouse": DuckDBWarehouse(path=str(settings.db_path)),
            "dataset": DatasetResource.from_settings(settings),
        },
        executor=dg.in_process_executor,
    )
    return dg.Definitions.merge(core, *_layer_definitions(settings))


defs = build_definitions()
