"""The new-data sensor: watches the dataset's `transactions/` folder.

Each tick lists the day files, and compares each with what the cursor remembers (size,
modification time and, when those moved, a SHA-256 of the content, so touching a file without
changing it does not reload it). New and changed days, including corrected files for days
already loaded, are requested as ONE run over the range from the first to the last of them:
the month partitions holding those days, with the raw load narrowed to the first..last changed
day (so staging processes those days, not their months), then everything downstream once.
Unchanged days between the first and the last are reloaded too; that is safe because every
write is idempotent. A file whose name is not a valid `YYYY-MM-DD.csv|parquet` is reported in the
sensor's log and skipped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg

from segment_pipeline.assets.ingest import day_range_run_config
from segment_pipeline.jobs import ALL_ASSETS_JOB
from segment_pipeline.partitions import has_partition_for, range_tags
from segment_pipeline.sources.canonical import parse_day_file_name

SENSOR_NAME = "new_transaction_files"


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    sha256: str

    def to_json(self) -> list[object]:
        return [self.size, self.mtime_ns, self.sha256]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ScanResult:
    changed_days: list[str]
    bad_names: list[str]
    state: dict[str, list[object]]


def scan_folder(folder: Path, previous: dict[str, list[object]]) -> ScanResult:
    """Compare the day files in `folder` with the `previous` cursor state."""
    state: dict[str, list[object]] = {}
    changed: set[str] = set()
    bad: list[str] = []
    if not folder.is_dir():
        return ScanResult([], [], {})
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        day = parse_day_file_name(path.name)
        if day is None:
            bad.append(path.name)
            continue
        stat = path.stat()
        old = previous.get(path.name)
        if old is not None and old[0] == stat.st_size and old[1] == stat.st_mtime_ns:
            state[path.name] = old  # unchanged size and time: trust the old hash
            continue
        current = FileState(stat.st_size, stat.st_mtime_ns, file_sha256(path))
        state[path.name] = current.to_json()
        if old is None or old[2] != current.sha256:
            changed.add(day.isoformat())
    return ScanResult(sorted(changed), bad, state)


def build_new_data_sensor(
    transactions_dir: Path, partitions_def: dg.PartitionsDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=ALL_ASSETS_JOB,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Watches {transactions_dir} for new or changed day files and requests one "
        "run per batch: those days' raw and staging partitions, then everything downstream.",
    )
    def new_transaction_files(context: dg.SensorEvaluationContext):
        previous = json.loads(context.cursor) if context.cursor else {}
        result = scan_folder(transactions_dir, previous)
        for name in result.bad_names:
            context.log.warning(
                f"skipping {transactions_dir / name}: not a YYYY-MM-DD.csv or .parquet file name"
            )
        days = [
            d
            for d in result.changed_days
            if has_partition_for(partitions_def, date.fromisoformat(d))
        ]
        for day in sorted(set(result.changed_days) - set(days)):
            context.log.warning(
                f"skipping {day}: outside the partitions (restart the code "
                "location to extend them to new dates)"
            )
        cursor = json.dumps(result.state, sort_keys=True)
        if not days:
            return dg.SensorResult(
                skip_reason=dg.SkipReason("no new or changed day files"), cursor=cursor
            )
        start, end = days[0], days[-1]
        context.log.info(f"{len(days)} new or changed day file(s): {start}..{end}")
        request = dg.RunRequest(
            run_key=f"files-{start}-{end}-{hashlib.sha256(cursor.encode()).hexdigest()[:12]}",
            run_config=day_range_run_config(date.fromisoformat(start), date.fromisoformat(end)),
            tags={
                **range_tags(date.fromisoformat(start), date.fromisoformat(end)),
                "segment_pipeline/trigger": "sensor",
                "segment_pipeline/changed_days": ",".join(days)[:1000],
            },
        )
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return new_transaction_files
