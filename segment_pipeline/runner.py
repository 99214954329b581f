"""Run the asset job in process on a Dagster instance, print progress, and summarise.

Used by `segment-pipeline run` (and later `backfill`). The run is a real Dagster run recorded
on the instance: progress is read back from the instance's event log while the run executes,
so what the terminal shows is what the UI shows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from segment_pipeline import drawing
from segment_pipeline.figures import FIGURES_PREFIX
from segment_pipeline.jobs import ALL_ASSETS_JOB_NAME
from segment_pipeline.partitions import has_partition_for, month_key, range_tags
from segment_pipeline.resources import DuckDBWarehouse, run_has_failed_step
from segment_pipeline.settings import PipelineSettings
from segment_pipeline.sources import DataContractError, open_source

#: Every run the CLI starts records the process that executes it, so a later CLI run can tell
#: a run whose process died (kill -9, a reboot) from one that is still going.
RUN_PID_TAG = "segment_pipeline/pid"
RUN_HOST_TAG = "segment_pipeline/host"
PARTITION_TAG = "dagster/partition"
_UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]

#: Dagster's own console output is off: the runner prints progress from the event log, one
#: line per step or check, and a failing step's full trace goes to a log file (its path is
#: printed), not 100 lines of stack trace on the console.
_QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_SHOWN_EVENTS = {"STEP_SUCCESS", "STEP_FAILURE", "ASSET_CHECK_EVALUATION"}


def settings_warehouse(settings: PipelineSettings) -> DuckDBWarehouse:
    """The warehouse of `settings` with their values (the definitions' resource may hold
    unresolved `dg.EnvVar`s of them)."""
    return DuckDBWarehouse(path=str(settings.db_path), memory_limit=settings.memory_limit)


@dataclass
class RunOutcome:
    """What a pipeline run did, for the CLI's exit code and for tests."""

    success: bool
    run_id: str
    failed_checks: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)
    """Steps that failed with an unexpected error (their trace is in a log file); the other
    step failures are deliberate messages about the input."""

    @property
    def input_error(self) -> bool:
        """Failed only because of the input (a `Failure` naming the file and what to do)."""
        return not self.success and not self.failed_checks and not self.bugs

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 0 success, 2 bad input (a user error: the messages say which
        file, line and what to do), 1 a failed blocking check or an unexpected error."""
        if self.success:
            return 0
        return 2 if self.input_error else 1


def resolve_selection(defs: dg.Definitions, selection: str | None) -> list[dg.AssetKey] | None:
    """Asset keys for a Dagster selection string (None = every asset)."""
    if not selection:
        return None
    graph = defs.resolve_asset_graph()
    try:
        keys = dg.AssetSelection.from_string(selection).resolve(graph)
    except Exception as exc:  # Dagster raises several types for a bad selection string
        raise ValueError(
            f"--select {selection!r} is not a valid asset selection ({exc}); examples: "
            "'key:\"staging/*\"', 'group:rfm', 'key:\"marts/rfm_summary\"+'"
        ) from None
    if not keys:
        raise ValueError(f"the selection {selection!r} matches no asset")
    # Assets written together by one step (staging/transactions with staging/returns and
    # staging/quarantine; the monthly snapshots) run together: Dagster cannot run a part of
    # such a step. Subsettable ones (the figures) keep the selection as given.
    whole = set(keys)
    for key in keys:
        assets_def = graph.assets_def_for_key(key)
        if not assets_def.can_subset:
            whole.update(assets_def.keys)
    return sorted(whole)


def execute_pipeline(
    settings: PipelineSettings,
    *,
    instance: dg.DagsterInstance,
    selection: str | None = None,
    start: date | None = None,
    end: date | None = None,
    echo: bool = True,
    run_config: dict | None = None,
) -> RunOutcome:
    """Materialize `selection` for the days `start..end` (default: every day in the dataset)."""
    from segment_pipeline.definitions import build_definitions

    def say(line: str) -> None:
        if echo:
            print(line, flush=True)

    source = open_source(settings)
    days = source.transaction_days()
    if not days:
        raise DataContractError(f"no transaction data found in {source.describe()}")
    start = start or days[0]
    end = end or days[-1]
    if start > end:
        raise ValueError(f"--start {start} is after --end {end}")
    if source.listed_day_range() is None:
        # The partitions of a source that cannot be listed (one export, a SQL table) start at
        # a fixed default and end this month; this run has read the data, so they follow it.
        settings = settings.with_overrides(
            start_date=settings.start_date or min(days[0], start), end_date=max(days[-1], end)
        )

    defs = build_definitions(settings)
    job = defs.resolve_job_def(ALL_ASSETS_JOB_NAME)
    keys = resolve_selection(defs, selection)
    graph = defs.resolve_asset_graph()
    selected = keys or sorted(graph.get_all_asset_keys())
    partitioned = [k for k in selected if graph.get(k).is_partitioned]
    if partitioned:
        _check_range_has_partitions(graph.get(partitioned[0]).partitions_def, start, end)
    # Unpartitioned assets a partitioned one reads (the customer and product masters, which
    # the monthly snapshots read through staging.sales_lines) run with the month partitions,
    # before them: a first run on a fresh warehouse must not snapshot customers without
    # their profiles, and a past month's snapshot is not recomputed later.
    feeding = sorted(
        {
            parent
            for key in partitioned
            for parent in graph.get(key).parent_keys
            if parent in selected and not graph.get(parent).is_partitioned
        }
    )
    partitioned = [*partitioned, *feeding]
    unpartitioned = [k for k in selected if k not in partitioned]
    if any(key.path[0] == FIGURES_PREFIX for key in selected):
        # Here, on the main thread (the run's steps run on another), so that the drawing
        # server starts with Ctrl-C ignored; the figure step's resource finds it running.
        drawing.start_server()
    say(f"Dataset: {source.describe()}  days {start}..{end}  ->  {settings.db_path}")

    # Days within one month (the daily case: a new day, a corrected day, a short dataset):
    # one run of that month's partition and everything downstream, as the schedule does.
    # A longer range: two runs, the month partitions over the range, then the unpartitioned
    # analysis layers once (in one partition-range run Dagster plans every asset once per
    # partition). The second run only starts if the first succeeded, blocking checks
    # included; in a single run the blocking checks stop the downstream steps the same way.
    config = {**_QUIET_CONSOLE, **(run_config or {})}
    day_config = _with_day_range(config, start, end, partitioned)
    # The settings' database (the definitions' resource may be an unresolved dg.EnvVar of it).
    warehouse = settings_warehouse(settings)
    # Both runs in one run scope (each run's own would keep the first before the second
    # starts): a failure in either leaves every table as it was.
    scope = warehouse.run_scope() if warehouse.atomic_runs else contextlib.nullcontext()
    with scope as run_scope:
        if partitioned and month_key(start) == month_key(end):
            tags = {PARTITION_TAG: month_key(start)}
            outcome = _execute_run(job, instance, selected, tags, day_config, say)
        else:
            outcome = RunOutcome(success=True, run_id="")
            if partitioned:
                outcome = _execute_run(
                    job, instance, partitioned, range_tags(start, end), day_config, say
                )
            if unpartitioned and outcome.success:
                downstream = _execute_run(job, instance, unpartitioned, {}, config, say)
                downstream.run_ids = outcome.run_ids + downstream.run_ids
                outcome = downstream
        if run_scope is not None:
            # The rule of a run launched anywhere else: kept unless a step failed.
            run_scope.succeeded = not any(
                run_has_failed_step(instance, run_id) for run_id in outcome.run_ids
            )
    return outcome


def _with_day_range(config: dict, start: date, end: date, keys: list[dg.AssetKey]) -> dict:
    """`config` with raw and staging (among `keys`) narrowed to the days `start..end`; config
    the caller gave for those steps wins."""
    from segment_pipeline.assets.ingest import day_range_run_config

    ops = dict(config.get("ops", {}))
    for op, day_range in day_range_run_config(start, end, keys)["ops"].items():
        given = ops.get(op, {}).get("config", {})
        ops[op] = {"config": {**day_range["config"], **given}}
    return {**config, "ops": ops}


def _check_range_has_partitions(
    partitions_def: dg.PartitionsDefinition, start: date, end: date
) -> None:
    """A range outside the partitions is a usage error, said in one line (not a Dagster
    invariant failure inside the run)."""
    for name, day in (("--start", start), ("--end", end)):
        if not has_partition_for(partitions_def, day):
            keys = partitions_def.get_partition_keys()
            span = f"{keys[0]} .. {keys[-1]}" if keys else "none"
            raise ValueError(
                f"{name} {day} is outside the partitions (months {span}); they start at the "
                "dataset's first day file, or at SEGMENT_PIPELINE_START_DATE if you set it"
            )


def _execute_run(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    keys: list[dg.AssetKey],
    tags: dict[str, str],
    run_config: dict,
    say: Callable[[str], None],
) -> RunOutcome:
    """One in-process run of `keys`, printing progress read back from the event log."""
    run_id = str(uuid.uuid4())
    tags = {**tags, RUN_PID_TAG: str(os.getpid()), RUN_HOST_TAG: socket.gethostname()}
    holder: dict[str, dg.ExecuteInProcessResult | BaseException] = {}

    def target() -> None:
        try:
            holder["result"] = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                tags={k: v for k, v in tags.items() if k != PARTITION_TAG},
                partition_key=tags.get(PARTITION_TAG),
                asset_selection=keys,
                raise_on_error=False,
                run_config=run_config,
            )
        except BaseException as exc:  # surfaced below, never swallowed
            holder["error"] = exc

    # The run's events, handed over by the instance as the worker stores them (reading them
    # back from the event log every half second cost a SQLite query per poll).
    events: queue.SimpleQueue[dg.EventLogEntry] = queue.SimpleQueue()
    instance.add_event_listener(run_id, events.put)
    # A daemon thread: a second Ctrl-C ends the process even if the step does not stop.
    worker = threading.Thread(target=target, name="segment-pipeline-run", daemon=True)
    worker.start()
    failed_checks: list[str] = []
    messages: list[str] = []
    bugs: list[str] = []
    try:
        while True:
            alive = worker.is_alive()
            try:
                # The next event, or every half second a look at whether the run has ended
                # (its events are all queued by then: the worker puts them before it ends).
                entry = events.get(timeout=0.5 if alive else 0)
            except queue.Empty:
                if alive:
                    continue
                break
            line = _progress_line(entry, failed_checks, messages, bugs)
            if line:
                say(line)
    except KeyboardInterrupt:
        _stop_run(worker, instance, run_id, say)
        raise
    worker.join()
    if "error" in holder:
        raise holder["error"]  # type: ignore[misc]
    result = holder["result"]
    assert isinstance(result, dg.ExecuteInProcessResult)
    return RunOutcome(
        success=result.success and not failed_checks,
        run_id=run_id,
        failed_checks=failed_checks,
        messages=messages,
        run_ids=[run_id],
        bugs=bugs,
    )


def _stop_run(
    worker: threading.Thread,
    instance: dg.DagsterInstance,
    run_id: str,
    say: Callable[[str], None],
) -> None:
    """Ctrl-C: stop the run's step now, roll back what it was writing, and record the run
    as canceled (never SUCCESS). The interrupt is delivered to the run's thread as a
    KeyboardInterrupt (Dagster then fails the step and the run) and to the open DuckDB
    queries, which otherwise finish first."""
    import ctypes

    from segment_pipeline.resources import interrupt_open_connections

    say("interrupted: stopping the run (it is undone)")
    # The interrupt abandons the step's context managers mid-way; their late clean-up (for
    # example a connection's lock released by the garbage collector from this thread) may
    # complain. That is expected noise after Ctrl-C: it goes to a log file, not the console.
    log = Path(os.environ.get("DAGSTER_HOME", ".")) / "logs" / f"{run_id}-interrupt.log"

    def to_log(unraisable: sys.UnraisableHookArgs) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(f"{unraisable.err_msg or 'Exception ignored'}: {unraisable.object!r}\n")
            handle.writelines(
                traceback.format_exception(
                    unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback
                )
            )

    sys.unraisablehook = to_log
    if worker.ident is not None:
        # Once: a second delivery could land in Dagster's own failure handling.
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(worker.ident), ctypes.py_object(KeyboardInterrupt)
        )
    deadline = time.monotonic() + 30
    while worker.is_alive() and time.monotonic() < deadline:
        interrupt_open_connections()
        worker.join(0.5)
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, message="Interrupted (Ctrl-C) in segment-pipeline")
    # Also when Dagster failed the run itself: an interrupt that lands while a step holds its
    # slot of the `duckdb_warehouse` pool can leave the slot claimed by the finished run, and
    # every later run waited for it (seen in CI: the rerun after Ctrl-C hung).
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    run = instance.get_run_by_id(run_id)
    status = run.status.value if run is not None else "unknown"
    say(f"run {run_id} stopped: {status}")


def _progress_line(
    record: dg.EventLogEntry, failed_checks: list[str], messages: list[str], bugs: list[str]
) -> str | None:
    stamp = time.strftime("%H:%M:%S", time.localtime(record.timestamp))
    if not record.is_dagster_event:
        if record.level >= 20:
            return f"{stamp}  {record.step_key or '':<28} {record.user_message}"
        return None
    event = record.dagster_event
    kind = event.event_type_value
    if kind not in _SHOWN_EVENTS:
        return None
    if kind == "STEP_SUCCESS":
        took = record.user_message.split(" in ")[-1].rstrip(".")
        return f"{stamp}  {record.step_key:<28} done ({took})"
    if kind == "STEP_FAILURE":
        text = _failure_text(event, record)
        trace = _write_failure_trace(event, record)
        if trace is not None:
            text = f"{text} (an unexpected error: full trace in {trace})"
            bugs.append(record.step_key or "")
        messages.append(f"{record.step_key}: {text}")
        return f"{stamp}  {record.step_key:<28} FAILED: {text}"
    evaluation = event.event_specific_data
    check = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
    if evaluation.passed:
        return f"{stamp}  {'':<28} check {check} passed"
    severity = evaluation.severity.value if evaluation.severity else "ERROR"
    if severity == "ERROR":
        failed_checks.append(check)
    return f"{stamp}  {'':<28} check {check} FAILED ({severity})"


def _failure_text(event: dg.DagsterEvent, record: dg.EventLogEntry) -> str:
    """The message a user needs: a `Failure`'s description, else the innermost error."""
    data = event.step_failure_data
    if data is None:
        return record.user_message
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return record.user_message
    return (
        f"{error.cls_name}: {error.message.strip().splitlines()[0]}"
        if error.cls_name
        else error.message.strip()
    )


def _write_failure_trace(event: dg.DagsterEvent, record: dg.EventLogEntry) -> Path | None:
    """A failure that is not a deliberate `Failure` (bad input says what to do in its
    description) is a bug: its full trace goes to `$DAGSTER_HOME/logs/<run>-<step>.log`."""
    data = event.step_failure_data
    if data is None or data.error is None or data.user_failure_data is not None:
        return None
    if data.error.cls_name in ("Failure", "DagsterAssetCheckFailedError"):
        return None
    folder = Path(os.environ.get("DAGSTER_HOME", ".")) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.run_id}-{record.step_key}.log"
    path.write_text(data.error.to_string())
    return path


def summarise(settings: PipelineSettings) -> str:
    """Rows per table, quarantined rows by rule, and where the figures are."""
    if not Path(settings.db_path).exists():
        return "(no warehouse file written)"

    lines = [f"Warehouse: {settings.db_path}"]
    with settings_warehouse(settings).connect() as conn:
        tables = conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() ORDER BY schema_name, table_name"
        ).fetchall()
        width = max((len(f"{s}.{t}") for s, t in tables), default=10)
        for schema, table in tables:
            n = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchall()[0][0]
            lines.append(f"  {schema + '.' + table:<{width}}  {n:>10,} rows")
        lines.extend(_quarantine_summary(conn))
    figures = sorted(Path(settings.figures_dir).glob("*.png"))
    if figures:
        lines.append(f"Figures ({len(figures)}): {settings.figures_dir}")
    lines.extend(_not_loaded_summary(settings))
    return "\n".join(lines)


def _not_loaded_summary(settings: PipelineSettings) -> list[str]:
    """The dataset's files that were not loaded, so none is skipped without a word."""
    try:
        skipped = open_source(settings).unrecognised_inputs()
    except DataContractError:
        return []
    if not skipped:
        return []
    lines = [
        f"NOT LOADED: {len(skipped)} file(s) whose names are not YYYY-MM-DD.csv or .parquet "
        "(rename them to load them):"
    ]
    lines.extend(f"  {path}" for path in skipped[:20])
    if len(skipped) > 20:
        lines.append(f"  ... and {len(skipped) - 20} more")
    return lines


def _quarantine_summary(conn: duckdb.DuckDBPyConnection) -> list[str]:
    from segment_pipeline.logic.staging import QUARANTINE
    from segment_pipeline.sql_files import load_sql
    from segment_pipeline.tables import table_exists

    if not table_exists(conn, QUARANTINE):
        return []
    rows = conn.execute(load_sql("staging/quarantine_by_rule")).fetchall()
    if not rows:
        return ["Quarantine: empty"]
    total = sum(r[2] for r in rows)
    out = [f"Quarantined rows: {total:,} (see {QUARANTINE.fqn})"]
    out.extend(f"  {entity:<13} {rule:<34} {n:>8,}" for entity, rule, n in rows)
    return out


def project_instance() -> dg.DagsterInstance:
    """The instance named by DAGSTER_HOME, created under a file lock: two first runs started at
    once would otherwise race to create the same SQLite tables ("table runs already exists")."""
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".instance.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            instance = dg.DagsterInstance.get()
            instance.get_run_records(limit=1)  # touches (and so creates) the run storage
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return instance


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the runs this machine's CLI started whose process is gone, and free their pool
    slots.

    A run killed with kill -9 never records its end: it stays STARTED and keeps its slot of
    the `duckdb_warehouse` pool (limit 1), so every later run would wait for it forever.
    Returns one line per recovered run, for the console.
    """
    host = socket.gethostname()
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=_UNFINISHED, tags={RUN_HOST_TAG: host})
    )
    recovered = []
    for record in records:
        run = record.dagster_run
        pid = int(run.tags.get(RUN_PID_TAG, "0") or 0)
        if pid <= 0 or pid == os.getpid() or _process_alive(pid):
            continue
        message = (
            f"the process that executed this run (pid {pid} on {host}) is gone; marked failed "
            "by the next segment-pipeline run"
        )
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(f"run {run.run_id}: its process {pid} is gone; marked FAILED, slot freed")
    recovered.extend(free_slots_of_finished_runs(instance))
    return recovered


def free_slots_of_finished_runs(instance: dg.DagsterInstance) -> list[str]:
    """Free the pool slots (claimed or pending) that runs already finished still hold.

    A finished run never needs a slot, but one interrupted while a step held its slot could
    keep it (Dagster failed the run without freeing it), and every later run then waited for
    the `duckdb_warehouse` slot forever. Returns one line per run freed, for the console."""
    storage = instance.event_log_storage
    holders: set[str] = set()
    for key in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(key)
        holders.update(slot.run_id for slot in info.claimed_slots)
        holders.update(step.run_id for step in info.pending_steps)
    freed = []
    for run_id in sorted(holders):
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            status = run.status.value if run is not None else "unknown"
            freed.append(f"run {run_id}: finished ({status}) but held a pool slot; slot freed")
    return freed


def run_pipeline(
    settings: PipelineSettings,
    *,
    instance: dg.DagsterInstance | None = None,
    selection: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> int:
    """The CLI's `run`: execute, print progress and a summary, return the exit code (on the
    project's instance unless `instance` is given)."""
    instance = instance or project_instance()
    for line in recover_dead_runs(instance):
        print(f"recovered {line}")
    try:
        outcome = execute_pipeline(
            settings,
            instance=instance,
            selection=selection,
            start=start,
            end=end,
        )
    except (DataContractError, ValueError) as exc:
        print(f"error: {exc}")
        return 2
    print()
    print(summarise(settings))
    if outcome.success:
        print(f"Run(s) {', '.join(outcome.run_ids)} succeeded.")
        return outcome.exit_code
    print(f"Run {outcome.run_id} FAILED (see it in the UI: make ui -> Runs).")
    for message in outcome.messages:
        print(f"  {message}")
    for check in outcome.failed_checks:
        print(f"  failed check: {check}")
    return outcome.exit_code
