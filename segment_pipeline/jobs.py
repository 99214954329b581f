"""Jobs: one asset job over the whole graph, used by the CLI, the schedule and the sensor."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.execution.plan.outputs import StepOutputProperties

ALL_ASSETS_JOB_NAME = "segment_pipeline_all"

#: Every asset: the run's partition (or partition range) applies to raw and staging, and the
#: unpartitioned analysis layers downstream are rebuilt once from all partitions.
ALL_ASSETS_JOB = dg.define_asset_job(
    ALL_ASSETS_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="Materialize raw and staging for the selected day(s), then everything "
    "downstream in the same run.",
)


def planned_asset_outputs(
    instance: dg.DagsterInstance, run: dg.DagsterRun
) -> list[StepOutputProperties] | None:
    """The asset outputs of the steps `run` executes (asset key, partitioned or not), read
    from its execution plan snapshot, which Dagster stores before the run starts; None when
    the run has none. What a run writes: its `asset_selection` is not (`dg.materialize`
    records none)."""
    if run.execution_plan_snapshot_id is None:
        return None
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    to_run = set(plan.step_keys_to_execute)
    return [
        output.properties
        for step in plan.steps
        if step.key in to_run
        for output in step.outputs
        if output.properties is not None and output.properties.asset_key is not None
    ]
