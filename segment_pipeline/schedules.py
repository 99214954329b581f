"""The daily schedule: after each day ends, load that day and refresh everything downstream.

One run per tick: the month partition holding the previous day, with the raw load narrowed to
that day (staging then processes just that day), and every unpartitioned analysis asset in
the same run (the all-assets job). Time and timezone are settings
(`SEGMENT_PIPELINE_SCHEDULE_CRON`, `_SCHEDULE_TIMEZONE`, read with the others in settings.py).
The schedule is declared stopped and is turned on in the UI (Automation -> daily_refresh) or
with `dagster schedule start daily_refresh`, or by setting `SEGMENT_PIPELINE_SCHEDULE_ENABLED=1`
before `make ui`.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from segment_pipeline.assets.ingest import day_range_run_config
from segment_pipeline.jobs import ALL_ASSETS_JOB
from segment_pipeline.partitions import has_partition_for, month_key
from segment_pipeline.settings import DEFAULT_SCHEDULE_CRON

SCHEDULE_NAME = "daily_refresh"


def build_daily_schedule(
    partitions_def: dg.PartitionsDefinition,
    cron: str = DEFAULT_SCHEDULE_CRON,
    timezone: str = "UTC",
    enabled: bool = False,
) -> dg.ScheduleDefinition:
    """The schedule (the definitions pass the settings' `schedule_*` values)."""
    zone = ZoneInfo(timezone)

    @dg.schedule(
        name=SCHEDULE_NAME,
        cron_schedule=cron,
        execution_timezone=timezone,
        job=ALL_ASSETS_JOB,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if enabled
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"Every day at '{cron}' ({timezone}): load the previous day's transactions "
        "(raw and staging partitions) and refresh every downstream asset in the same run.",
    )
    def daily_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        local_day = context.scheduled_execution_time.astimezone(zone).date()
        day = local_day - timedelta(days=1)
        if not has_partition_for(partitions_def, day):
            return dg.SkipReason(f"{day} is in no partition (before the dataset starts)")
        return dg.RunRequest(
            run_key=f"daily-{day}",
            partition_key=month_key(day),
            run_config=day_range_run_config(day, day),
            tags={"segment_pipeline/trigger": "schedule", "segment_pipeline/day": str(day)},
        )

    return daily_refresh
