"""Jobs: one asset job over the whole graph, used by the CLI, the schedule and the sensor."""

from __future__ import annotations

import dagster as dg

ALL_ASSETS_JOB_NAME = "segment_pipeline_all"

#: Every asset: the run's partition (or partition range) applies to raw and staging, and the
#: unpartitioned analysis layers downstream are rebuilt once from all partitions.
ALL_ASSETS_JOB = dg.define_asset_job(
    ALL_ASSETS_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="Materialize raw and staging for the selected day(s), then everything "
    "downstream in the same run.",
)
