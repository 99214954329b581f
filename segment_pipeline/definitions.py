"""The one place that assembles the project's Dagster definitions.

`dagster dev` / `dagster asset materialize -m segment_pipeline.definitions` load `defs`, a
`@dg.definitions` function: importing this module does nothing; Dagster calls it when it loads
the code location (after loading `.env`), and it reads the settings from the environment then.
The CLI and the tests call `build_definitions(settings)` with their own dataset and database.
Each layer module contributes its assets; nothing here computes anything.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import dagster as dg

from segment_pipeline.assets import behaviour, clv, dynamics, ingest, rfm
from segment_pipeline.assets.layer import LayerContext
from segment_pipeline.figures import figure_assets, with_drawing_ahead
from segment_pipeline.jobs import ALL_ASSETS_JOB
from segment_pipeline.partitions import dataset_partitions
from segment_pipeline.resources import DatasetResource, DuckDBWarehouse
from segment_pipeline.schedules import build_daily_schedule
from segment_pipeline.sensors import build_new_data_sensor
from segment_pipeline.settings import PipelineSettings
from segment_pipeline.sources import open_source

#: Analysis layers, in graph order; each provides `build_assets`, `RESOURCES` and `FIGURE_LAYER`
#: (assets/layer.py says what they are).
ANALYSIS_LAYERS: tuple[ModuleType, ...] = (rfm, behaviour, clv, dynamics)


def build_definitions(settings: PipelineSettings | None = None) -> dg.Definitions:
    """All assets, checks, jobs and resources for one dataset and one warehouse file."""
    settings = settings or PipelineSettings.from_env()
    source = open_source(settings)
    partitions_def = dataset_partitions(settings, source)
    # Adapters with daily files say where they are; the sensor watches that folder.
    watched_dir = getattr(source, "transactions_dir", settings.data_dir)
    layer = LayerContext(partitions_def=partitions_def, figures_dir=Path(settings.figures_dir))
    with warnings.catch_warnings():
        # Dagster flags its source code references as beta (60 warnings, one per asset and
        # class, where a caller shows every warning); `backfill_policy`'s are silenced in
        # `segment_pipeline.assets`, where the assets that set it are built at import.
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        figure_layers = [m.FIGURE_LAYER for m in ANALYSIS_LAYERS]
        assets = [
            *ingest.build_assets(layer),
            *(asset for module in ANALYSIS_LAYERS for asset in module.build_assets(layer)),
        ]
        assets = [
            # The figures' inputs: their figures may be drawn as soon as they are written.
            *with_drawing_ahead(assets, figure_layers),
            # One step draws every layer's figures (drawing is most of a run's fixed cost).
            figure_assets("figures", figure_layers, layer.figures_dir),
        ]
        # Each asset links to its source lines in the UI (Definition tab: "Code references").
        assets = dg.with_source_code_references(assets)
    return dg.Definitions(
        assets=assets,
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
                path=settings.env_or_value("db_path", str(settings.db_path)),
                memory_limit=settings.env_or_value("memory_limit", settings.memory_limit),
            ),
            "dataset": DatasetResource.for_settings(settings),
            **{key: value for module in ANALYSIS_LAYERS for key, value in module.RESOURCES.items()},
        },
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's definitions, from the settings in the environment."""
    return build_definitions(PipelineSettings.from_env())
