"""The one place that assembles the project's Dagster definitions.

`dagster dev` / `dagster asset materialize -m segment_pipeline.definitions` load `defs`, a
`@dg.definitions` function: importing this module does nothing; Dagster calls it when it loads
the code location (after loading `.env`), and it reads the settings from the environment then.
The CLI and the tests call `build_definitions(settings)` with their own dataset and database.
Each layer module contributes its assets; nothing here computes anything.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import dagster as dg

from segment_pipeline.assets.ingest import (
    build_ingest_assets,
    staging_customers,
    staging_products,
)
from segment_pipeline.figures import figure_assets
from segment_pipeline.jobs import ALL_ASSETS_JOB
from segment_pipeline.partitions import dataset_partitions
from segment_pipeline.resources import DatasetResource, DuckDBWarehouse
from segment_pipeline.schedules import build_daily_schedule
from segment_pipeline.sensors import build_new_data_sensor
from segment_pipeline.settings import PipelineSettings
from segment_pipeline.sources import open_source

#: Analysis layers, in graph order. Each module exposes `build_defs(settings) -> Definitions`
#: (a layer with month-partitioned assets takes `partitions_def` too, see _layer_definitions)
#: and `FIGURE_LAYER`, its figures, which one step draws for all layers (_figure_assets).
LAYER_MODULES: tuple[str, ...] = (
    "segment_pipeline.assets.rfm",
    "segment_pipeline.assets.behaviour",
    "segment_pipeline.assets.clv",
    "segment_pipeline.assets.dynamics",
)


def _layer_definitions(
    settings: PipelineSettings, partitions_def: dg.PartitionsDefinition
) -> list[dg.Definitions]:
    """Definitions of the analysis layers. A layer whose `build_defs` has a `partitions_def`
    parameter (the dynamics layer's monthly snapshots) gets the month partitions of raw and
    staging, the same object, so its partitions never disagree with theirs."""
    out = []
    for name in LAYER_MODULES:
        build = importlib.import_module(name).build_defs
        if "partitions_def" in inspect.signature(build).parameters:
            out.append(build(settings, partitions_def=partitions_def))
        else:
            out.append(build(settings))
    return out


def _figure_assets(settings: PipelineSettings) -> dg.AssetsDefinition:
    """Every layer's figures (its `FIGURE_LAYER`) as one multi-asset, drawn in one step."""
    layers = [importlib.import_module(name).FIGURE_LAYER for name in LAYER_MODULES]
    return figure_assets("figures", layers, Path(settings.figures_dir))


def build_definitions(settings: PipelineSettings | None = None) -> dg.Definitions:
    """All assets, checks, jobs and resources for one dataset and one warehouse file."""
    settings = settings or PipelineSettings.from_env()
    source = open_source(settings)
    partitions_def = dataset_partitions(settings, source)
    # Adapters with daily files say where they are; the sensor watches that folder.
    watched_dir = getattr(source, "transactions_dir", settings.data_dir)
    layers = _layer_definitions(settings, partitions_def)
    assets = [
        *build_ingest_assets(partitions_def),
        staging_customers,
        staging_products,
        *(asset for layer in layers for asset in layer.assets or []),
        _figure_assets(settings),
    ]
    return dg.Definitions(
        # Each asset links to its source lines in the UI (Definition tab: "Code references").
        assets=dg.with_source_code_references(assets),
        jobs=[ALL_ASSETS_JOB],
        schedules=[
            build_daily_schedule(
                partitions_def,
                cron=settings.schedule_cron,
                timezone=settings.schedule_timezone,
                enabled=settings.schedule_enabled,
            )
        ],
        sensors=[build_new_data_sensor(watched_dir, partitions_def)],
        resources={
            # Values from environment variables stay references to them (dg.EnvVar).
            "warehouse": DuckDBWarehouse(
                path=settings.env_or_value("db_path", str(settings.db_path))
            ),
            "dataset": DatasetResource.for_settings(settings),
            **{key: value for layer in layers for key, value in (layer.resources or {}).items()},
        },
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's definitions, from the settings in the environment."""
    return build_definitions(PipelineSettings.from_env())
