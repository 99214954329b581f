"""Monthly partitions over daily files.

Raw and staging are partitioned by **month**; the files still arrive one per day, and inside a
month the raw asset loads only the days it is asked for (a run config `first_day`/`last_day`,
set by the schedule, the sensor and `segment-pipeline backfill`), while staging processes only
the days whose raw load changed. Why months, not days: Dagster records one materialization
event per partition per asset, one by one, so a year of daily partitions costs about 35 s of
bookkeeping per run whatever the data size; twelve months cost well under a second
(docs/architecture.md, "Partitions", has the measurements).

The start comes from settings (`SEGMENT_PIPELINE_START_DATE`) or from a cheap listing (the
first day file's name), never from reading the data: loading the definitions must not scan a
10M-line export or a database table. Sources whose first day cannot be listed (one export
file, a SQL table) start at `DEFAULT_PARTITION_START` unless configured; the CLI, which reads
the data anyway, starts them at the data's own first month.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from dagster import AssetExecutionContext

from segment_pipeline.settings import PipelineSettings
from segment_pipeline.sources import DataContractError, DatasetSource

PARTITION_FORMAT = "%Y-%m-%d"

#: The run tags Dagster reads for a single run over a range of partitions.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

#: First partition for sources that cannot say their first day without reading the data.
DEFAULT_PARTITION_START = date(2000, 1, 1)


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_key(day: date) -> str:
    """The key of the monthly partition holding `day` (`2025-11-01` for any day of 2025-11)."""
    return month_start(day).strftime(PARTITION_FORMAT)


def _months_between(first: date, last: date) -> int:
    return (last.year - first.year) * 12 + last.month - first.month


def dataset_partitions(
    settings: PipelineSettings, source: DatasetSource, today: date | None = None
) -> dg.MonthlyPartitionsDefinition:
    """The monthly partitions for `source`: from its first month (settings, else a listing,
    else DEFAULT_PARTITION_START) through the current month (still filling up) or the data's
    last listed month, whichever is later."""
    today = today or datetime.now(UTC).date()
    try:
        listed = source.listed_day_range()
    except DataContractError:
        listed = None  # a missing folder is reported by the run, not when the definitions load
    start = settings.start_date or (listed[0] if listed else DEFAULT_PARTITION_START)
    last_day = max(listed[1] if listed else today, settings.end_date or today, today, start)
    # end_offset=1 includes the current (incomplete) month, so today's files have a partition;
    # more when the data runs past this month (a generated dataset, a timezone ahead of UTC).
    end_offset = 1 + max(0, _months_between(today, last_day))
    return dg.MonthlyPartitionsDefinition(
        start_date=month_start(start).strftime(PARTITION_FORMAT),
        end_offset=end_offset,
        timezone="UTC",
    )


def window_days(context: AssetExecutionContext) -> list[date]:
    """The days of the run's partition window (one month, or a whole backfill range)."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(days=i) for i in range((end - start).days)]


def has_partition_for(partitions_def: dg.PartitionsDefinition, day: date) -> bool:
    """Whether some partition holds `day`."""
    return partitions_def.has_partition_key(month_key(day))


def range_tags(first: date, last: date) -> dict[str, str]:
    """Tags of one run over the partitions holding the days `first..last`."""
    return {PARTITION_RANGE_START_TAG: month_key(first), PARTITION_RANGE_END_TAG: month_key(last)}
