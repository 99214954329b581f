"""Raw and staging layers: monthly-partitioned loading and validation of transactions, plus
the customer and product masters.

Both partitioned assets use `BackfillPolicy.single_run()`: a backfill of a range of months is
one run. Raw replaces the days it is asked for (the whole window by default; the schedule, the
sensor and `segment-pipeline backfill` narrow it to the new or changed days with `first_day` /
`last_day`) in one transaction. Staging then processes exactly the days whose raw load it has
not seen (raw.loads vs staging.staged_days), so a new day costs a day, not its month, and the
staging checks look at those days only.
"""

from datetime import date

import dagster as dg
import duckdb
import pandas as pd
from dagster import AssetExecutionContext

from segment_pipeline.assets.layer import LayerContext
from segment_pipeline.assets.tables import check_spec, table_asset, table_spec
from segment_pipeline.logic.staging import (
    QUARANTINE,
    RAW_TRANSACTIONS,
    STAGED_CUSTOMERS,
    STAGED_PRODUCTS,
    STAGED_RETURNS,
    STAGED_TRANSACTIONS,
    RawLoadError,
    StagingCounts,
    forget_master_load,
    load_raw_window,
    master_input_key,
    master_scratch_on_disk,
    record_master_load,
    stage_master,
    stage_transactions_window,
    unchanged_master,
)
from segment_pipeline.partitions import window_days
from segment_pipeline.resources import WAREHOUSE_POOL, DatasetResource, DuckDBWarehouse
from segment_pipeline.sources import DataContractError
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import TableDef, preview_markdown, table_metadata

OWNERS = ["team:data-engineering"]
STAGING_KINDS = ("duckdb", "polars", "pandera")

#: Marks the time-partitioned assets, so a selection can name them (`tag:partitioned=time`)
#: and everything else (`not tag:partitioned=time`), e.g. for a two-step CLI backfill.
PARTITIONED_TAGS = {"partitioned": "time"}

RAW_KEY = dg.AssetKey(["raw", "transactions"])
STAGED_KEY = dg.AssetKey(["staging", "transactions"])
RETURNS_KEY = dg.AssetKey(["staging", "returns"])
QUARANTINE_KEY = dg.AssetKey(["staging", "quarantine"])
CUSTOMERS_KEY = dg.AssetKey(["staging", "customers"])
PRODUCTS_KEY = dg.AssetKey(["staging", "products"])

#: Downstream layers depend on these (all partitions of the sale lines, and the masters).
STAGING_KEYS = [STAGED_KEY, CUSTOMERS_KEY, PRODUCTS_KEY]


class DayRangeConfig(dg.Config):
    """Which days of the partition window to (re)process. Default: every day of the window."""

    first_day: str | None = None
    """First day, YYYY-MM-DD (days before it in the window are left as they are)."""
    last_day: str | None = None
    """Last day, YYYY-MM-DD."""


class StagingConfig(DayRangeConfig):
    """The days to stage, and thresholds for the staging checks."""

    max_quarantine_rate: float = 0.05
    """Warn when more than this share of the staged days' raw lines is quarantined."""


#: The partitioned steps that take a day range, by the asset key that selects them.
DAY_RANGE_OPS = {RAW_KEY: "raw__transactions", STAGED_KEY: "staging__transactions"}


def day_range_run_config(
    first: date, last: date, selected: list[dg.AssetKey] | None = None
) -> dict:
    """Run config that narrows raw and staging to the days `first..last` (the schedule, the
    sensor and the CLI), for the steps among `selected` (default: both)."""
    config = {"first_day": first.isoformat(), "last_day": last.isoformat()}
    return {
        "ops": {
            op: {"config": config}
            for key, op in DAY_RANGE_OPS.items()
            if selected is None or key in selected
        }
    }


def _window_label(days: list[date]) -> str:
    if not days:
        return "(no days)"
    return days[0].isoformat() if len(days) == 1 else f"{days[0]}..{days[-1]}"


def _requested_days(context: AssetExecutionContext, config: DayRangeConfig) -> list[date]:
    """The window's days within the configured range; a range that selects none is an error."""
    try:
        first = date.fromisoformat(config.first_day) if config.first_day else None
        last = date.fromisoformat(config.last_day) if config.last_day else None
    except ValueError as exc:
        raise dg.Failure(description=f"day range config: {exc} (expected YYYY-MM-DD)") from None
    window = window_days(context)
    days = [d for d in window if (first is None or d >= first) and (last is None or d <= last)]
    if not days:
        raise dg.Failure(
            description=f"the configured days {config.first_day}..{config.last_day} are outside "
            f"the partition window {_window_label(window)}"
        )
    return days


def _staging_spec(table: TableDef, description: str) -> dg.AssetSpec:
    """A table written by the partitioned staging step (from raw.transactions)."""
    return table_spec(
        table,
        group="staging",
        deps=[RAW_KEY],
        description=description,
        kinds=STAGING_KINDS,
        owners=OWNERS,
        tags=PARTITIONED_TAGS,
    )


def build_assets(layer: LayerContext) -> list[dg.AssetsDefinition]:
    """raw and staging: the month-partitioned transactions (raw load, staging) on
    `layer.partitions_def`, and the customer and product masters."""
    return [*_transaction_assets(layer.partitions_def), staging_customers, staging_products]


def _transaction_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The raw and staging transaction assets for one partitions definition."""

    @dg.asset(
        key=RAW_KEY,
        tags=PARTITIONED_TAGS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        group_name="raw",
        kinds={"duckdb"},
        owners=OWNERS,
        description="Each day's transaction lines exactly as found in the dataset (all text), "
        "with the source file and line number; raw.loads records which file and load each "
        "day came from. A day without a file has no rows.",
        metadata=RAW_TRANSACTIONS.spec_metadata(),
        check_specs=[
            dg.AssetCheckSpec(
                "every_file_loaded",
                asset=RAW_KEY,
                blocking=False,
                description="Warns when the dataset holds files that are not loaded (a day "
                "file named 2025-02-30.csv, notes.txt, 2025-11-06.CSV): nothing is skipped "
                "without a word.",
            )
        ],
    )
    def raw_transactions(
        context: AssetExecutionContext,
        config: DayRangeConfig,
        warehouse: DuckDBWarehouse,
        dataset: DatasetResource,
    ) -> dg.MaterializeResult:
        days = _requested_days(context, config)
        try:
            source = dataset.open()
            with warehouse.connect() as conn:
                load = load_raw_window(conn, source, days[0], days[-1])
                metadata = table_metadata(
                    conn, RAW_TRANSACTIONS, order_by="partition_date, source_line"
                )
        except (DataContractError, RawLoadError) as exc:
            raise dg.Failure(description=str(exc)) from None
        per_day = pd.DataFrame(
            [
                {"day": d.isoformat(), "file": f or "", "rows": n}
                for d, (f, n) in sorted(load.per_day.items())
            ]
        )
        context.log.info(
            f"raw.transactions {_window_label(days)}: {load.rows} lines from "
            f"{len(load.per_day)} day(s)"
        )
        if load.blank_lines:
            context.log.info(
                f"skipped {sum(load.blank_lines.values())} blank line(s), not transactions: "
                + ", ".join(f"{f} ({n})" for f, n in sorted(load.blank_lines.items())[:10])
            )
        skipped = source.unrecognised_inputs()
        for path in skipped:
            context.log.warning(f"not loaded: {path} (not a YYYY-MM-DD.csv or .parquet day file)")
        metadata.update(
            {
                "window": _window_label(days),
                "window_rows": load.rows,
                "days_loaded": len(load.per_day),
                "days_without_data": len(days) - len(load.per_day),
                "blank_lines_skipped": sum(load.blank_lines.values()),
                "per_day": preview_markdown(per_day, max_rows=31),
                "source": source.describe(),
                "files_not_loaded": len(skipped),
            }
        )
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name="every_file_loaded",
                    passed=not skipped,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "files_not_loaded": len(skipped),
                        "files": dg.MetadataValue.md(
                            "\n".join(f"- `{p}`" for p in skipped[:50]) or "_(none)_"
                        ),
                    },
                )
            ],
        )

    @dg.multi_asset(
        specs=[
            _staging_spec(
                STAGED_TRANSACTIONS,
                "Validated sale lines: typed, amount = quantity * unit_price, checked "
                "with pandera against the table's declared rules (its column schema shows them).",
            ),
            _staging_spec(
                STAGED_RETURNS,
                "Return and cancellation lines (negative quantity), validated "
                "with pandera against the table's declared rules (its column schema shows them).",
            ),
            _staging_spec(
                QUARANTINE,
                "Rows that broke a rule, with the rule, the offending value and the "
                "raw row. Transactions are partitioned by day; customer and product rows are "
                "written by their own assets (entity column).",
            ),
        ],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec(
                "rows_conserved",
                asset=STAGED_KEY,
                blocking=True,
                description="Every raw line of every day staged by the run is in exactly one "
                "place: raw = staged + returns + quarantined, counted from the tables.",
            ),
            dg.AssetCheckSpec(
                "line_key_unique",
                asset=STAGED_KEY,
                blocking=True,
                description="line_id is unique across staging.transactions and staging.returns "
                "on the days staged by the run.",
            ),
            dg.AssetCheckSpec(
                "required_columns_not_null",
                asset=STAGED_KEY,
                blocking=True,
                description="No NULL in order_id, customer_id, order_ts, product_id, quantity, "
                "unit_price, amount on the days staged by the run.",
            ),
            dg.AssetCheckSpec(
                "order_id_single_customer",
                asset=STAGED_KEY,
                blocking=False,
                description="Warns when an order id of the staged days also has lines of "
                "another customer (in any staged day). Both customers keep their lines; "
                "distinct-order counts count the order once.",
            ),
            dg.AssetCheckSpec(
                "ids_distinct_ignoring_case",
                asset=STAGED_KEY,
                blocking=False,
                description="Warns when a customer or product id of the staged days differs "
                "from another staged id only by letter case (ids are case-sensitive: 85123A "
                "and 85123a are two products unless the source says otherwise).",
            ),
            dg.AssetCheckSpec(
                "quarantine_rate",
                asset=STAGED_KEY,
                blocking=False,
                description="Warns when the quarantined share of the days staged by the run "
                "exceeds max_quarantine_rate (config).",
            ),
        ],
        name="staging__transactions",
        pool=WAREHOUSE_POOL,
    )
    def staging_transactions(
        context: AssetExecutionContext,
        config: StagingConfig,
        warehouse: DuckDBWarehouse,
        dataset: DatasetResource,
    ):
        days = _requested_days(context, config)
        with warehouse.connect() as conn:
            counts: list[StagingCounts] = stage_transactions_window(
                conn, days, timezone=dataset.timezone
            )
            context.log.info(
                f"staging {_window_label(days)}: raw={sum(c.raw for c in counts)} "
                f"staged={sum(c.staged for c in counts)} "
                f"returns={sum(c.returns for c in counts)} "
                f"quarantined={sum(c.quarantined for c in counts)}"
            )
            checks = _staging_checks(conn, counts, config.max_quarantine_rate)
            quarantine_rules = conn.execute(QUARANTINE_RULES_SQL, [days]).df()
            summary = {
                "window": _window_label(days),
                "days_staged": len(days),
                "staged_days_raw_rows": sum(c.raw for c in counts),
            }
            staged_meta = table_metadata(conn, STAGED_TRANSACTIONS, order_by="line_id")
            returns_meta = table_metadata(conn, STAGED_RETURNS, order_by="line_id")
            quarantine_meta = table_metadata(
                conn, QUARANTINE, order_by="entity, partition_date, source_file, source_line"
            )
        yield dg.MaterializeResult(
            asset_key=STAGED_KEY,
            metadata={**staged_meta, **summary, "staged_rows": sum(c.staged for c in counts)},
        )
        yield dg.MaterializeResult(
            asset_key=RETURNS_KEY,
            metadata={**returns_meta, **summary, "return_rows": sum(c.returns for c in counts)},
        )
        yield dg.MaterializeResult(
            asset_key=QUARANTINE_KEY,
            metadata={
                **quarantine_meta,
                **summary,
                "quarantined_rows": sum(c.quarantined for c in counts),
                "rules": preview_markdown(quarantine_rules, max_rows=20),
            },
        )
        yield from checks

    return [raw_transactions, staging_transactions]


#: Duplicate line ids and rows with a NULL required column, on the given days only (the
#: staging checks follow the days a run staged, not the whole history).
STAGED_DAYS_INTEGRITY_SQL = load_sql("ingest/staged_days_integrity")


#: Order ids of the given days that have lines of more than one customer (across history).
#: min <> max finds them without a distinct count per order (13.8 s -> 2.2 s on 10M lines);
#: only those few orders then list their customers.
SHARED_ORDER_IDS_SQL = load_sql("ingest/shared_order_ids")

#: Customer and product ids of the given days that equal another staged id but for case.
CASE_ONLY_ID_COLLISIONS_SQL = load_sql("ingest/case_only_id_collisions")

#: Quarantined transaction lines per rule on the given days (`?`), most frequent first.
QUARANTINE_RULES_SQL = load_sql("ingest/quarantine_rules")


def _identity_checks(
    conn: duckdb.DuckDBPyConnection, days: list[date]
) -> list[dg.AssetCheckResult]:
    """The two identity warnings: order ids shared by customers, ids equal but for case."""
    shared = conn.execute(SHARED_ORDER_IDS_SQL, [days]).df()
    folded = conn.execute(CASE_ONLY_ID_COLLISIONS_SQL, [days, days]).df()
    for frame, column in ((shared, "customers"), (folded, "ids")):
        frame[column] = frame[column].map(", ".join)
    return [
        dg.AssetCheckResult(
            asset_key=STAGED_KEY,
            check_name="order_id_single_customer",
            passed=shared.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "shared_order_ids": len(shared),
                "examples": preview_markdown(shared, max_rows=10),
            },
        ),
        dg.AssetCheckResult(
            asset_key=STAGED_KEY,
            check_name="ids_distinct_ignoring_case",
            passed=folded.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "customer_id_groups": int((folded["kind"] == "customer_id").sum()),
                "product_id_groups": int((folded["kind"] == "product_id").sum()),
                "examples": preview_markdown(folded, max_rows=10),
            },
        ),
    ]


def _staging_checks(
    conn: duckdb.DuckDBPyConnection, counts: list[StagingCounts], max_rate: float
) -> list[dg.AssetCheckResult]:
    days = [c.day for c in counts]
    broken = [c for c in counts if not c.conserved]
    per_day = pd.DataFrame(
        [
            {
                "day": c.day.isoformat(),
                "raw": c.raw,
                "staged": c.staged,
                "returns": c.returns,
                "quarantined": c.quarantined,
            }
            for c in counts
        ]
    )
    dup, nulls = conn.execute(STAGED_DAYS_INTEGRITY_SQL, [days, days]).fetchall()[0]
    raw_total = sum(c.raw for c in counts)
    quarantined_total = sum(c.quarantined for c in counts)
    rate = quarantined_total / raw_total if raw_total else 0.0
    return [
        *_identity_checks(conn, days),
        dg.AssetCheckResult(
            asset_key=STAGED_KEY,
            check_name="rows_conserved",
            passed=not broken,
            metadata={
                "days_checked": len(counts),
                "days_not_conserved": len(broken),
                "per_day": preview_markdown(per_day, max_rows=31),
            },
        ),
        dg.AssetCheckResult(
            asset_key=STAGED_KEY,
            check_name="line_key_unique",
            passed=dup == 0,
            metadata={"duplicate_line_ids": int(dup)},
        ),
        dg.AssetCheckResult(
            asset_key=STAGED_KEY,
            check_name="required_columns_not_null",
            passed=nulls == 0,
            metadata={"rows_with_nulls": int(nulls)},
        ),
        dg.AssetCheckResult(
            asset_key=STAGED_KEY,
            check_name="quarantine_rate",
            passed=rate <= max_rate,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "quarantine_rate": float(round(rate, 6)),
                "max_quarantine_rate": max_rate,
                "quarantined_rows": quarantined_total,
                "raw_rows": raw_total,
            },
        ),
    ]


def _master_asset(
    entity: str, key: dg.AssetKey, table: TableDef, description: str
) -> dg.AssetsDefinition:
    # Unpartitioned, but table_asset declares a single-run backfill policy, so a `dagster asset
    # materialize --partition-range` over the whole graph runs as one run (the CLI requires
    # it of every selected asset).
    @table_asset(
        table,
        group="staging",
        deps=(),
        description=description,
        checks=[
            check_spec(
                key, "rows_conserved", f"Every row of the {entity} file is staged or quarantined."
            ),
        ],
        kinds=STAGING_KINDS,
        owners=OWNERS,
    )
    def _asset(
        context: AssetExecutionContext, warehouse: DuckDBWarehouse, dataset: DatasetResource
    ):
        try:
            source = dataset.open()
            declared = source.declared_demographics()
            files = source.master_files(entity)
            input_key = master_input_key(entity, files, declared) if files else None
            with warehouse.connect() as conn:
                # the same files, codes and pipeline code as the last staging, whose rows
                # are still there: nothing to re-validate (a cost per customer, every run)
                counts = unchanged_master(conn, entity, input_key) if input_key else None
                revalidated = counts is None
                if counts is None:
                    query = (
                        source.raw_customers(conn)
                        if entity == "customers"
                        else source.raw_products(conn)
                    )
                    forget_master_load(conn, entity)
                    counts = stage_master(
                        conn,
                        entity,
                        query.sql if query else None,
                        query.params if query else [],
                        declared=declared,
                        scratch_on_disk=master_scratch_on_disk(files),
                    )
                    if input_key is not None:
                        record_master_load(conn, entity, input_key, counts)
                    source_file = query.source_file if query else "(none: optional file absent)"
                else:
                    source_file = str(files[0]) if files else ""
                metadata = table_metadata(conn, table, order_by=table.primary_key[0])
        except DataContractError as exc:
            raise dg.Failure(description=str(exc)) from None
        except duckdb.Error as exc:
            message = source.explain_read_error(exc)  # a byte not in the file's encoding
            if message is None:
                raise
            raise dg.Failure(description=message) from None
        context.log.info(
            f"staging.{entity}: raw={counts.raw} staged={counts.staged} "
            f"quarantined={counts.quarantined}"
            + ("" if revalidated else " (file, rules and tables unchanged: kept as staged)")
        )
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                **metadata,
                "raw_rows": counts.raw,
                "quarantined_rows": counts.quarantined,
                "source_file": source_file,
                "revalidated": revalidated,
            },
        )
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="rows_conserved",
            passed=counts.raw == counts.staged + counts.quarantined,
            metadata={
                "raw": counts.raw,
                "staged": counts.staged,
                "quarantined": counts.quarantined,
            },
        )

    return _asset


staging_customers = _master_asset(
    "customers",
    CUSTOMERS_KEY,
    STAGED_CUSTOMERS,
    "Validated customer profiles (pandera, the column schema's rules): one row per customer; "
    "missing demographics become Unknown; duplicates and rows without an id are quarantined. "
    "A file unchanged since its last staging (same content, codes and pipeline code, "
    "staging.master_loads) is kept as staged: metadata `revalidated` says which.",
)
staging_products = _master_asset(
    "products",
    PRODUCTS_KEY,
    STAGED_PRODUCTS,
    "Validated product master (pandera, the column schema's rules): one row per product; "
    "missing category becomes Unknown; duplicates and rows without an id are quarantined. "
    "A file unchanged since its last staging is kept as staged (metadata `revalidated`).",
)
