"""Raw and staging layers: daily-partitioned loading and validation of transactions, plus the
customer and product masters.

Both partitioned assets use `BackfillPolicy.single_run()`: a backfill of a range of days is one
run, and the asset walks the run's window one day at a time, so memory stays bounded by a day's
data however long the range. Each day is delete-then-insert, so re-running a day replaces
exactly that day's rows.
"""

from datetime import date

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from segment_pipeline.logic.staging import (
    QUARANTINE,
    RAW_TRANSACTIONS,
    STAGED_CUSTOMERS,
    STAGED_PRODUCTS,
    STAGED_RETURNS,
    STAGED_TRANSACTIONS,
    RawLoadError,
    StagingCounts,
    ensure_staging_tables,
    load_raw_day,
    stage_master,
    stage_transactions_window,
)
from segment_pipeline.partitions import window_days
from segment_pipeline.resources import WAREHOUSE_POOL, DatasetResource, DuckDBWarehouse
from segment_pipeline.sources import DataContractError
from segment_pipeline.tables import preview_markdown, table_metadata

OWNERS = ["team:data-engineering"]

#: Marks the daily-partitioned assets, so a selection can name them (`tag:partitioned=daily`)
#: and everything else (`not tag:partitioned=daily`), e.g. for a two-step CLI backfill.
DAILY_TAGS = {"partitioned": "daily"}

RAW_KEY = dg.AssetKey(["raw", "transactions"])
STAGED_KEY = dg.AssetKey(["staging", "transactions"])
RETURNS_KEY = dg.AssetKey(["staging", "returns"])
QUARANTINE_KEY = dg.AssetKey(["staging", "quarantine"])
CUSTOMERS_KEY = dg.AssetKey(["staging", "customers"])
PRODUCTS_KEY = dg.AssetKey(["staging", "products"])

#: Downstream layers depend on these (all partitions of the sale lines, and the masters).
STAGING_KEYS = [STAGED_KEY, CUSTOMERS_KEY, PRODUCTS_KEY]


class StagingConfig(dg.Config):
    """Thresholds for the staging checks."""

    max_quarantine_rate: float = 0.05
    """Warn when more than this share of a window's raw lines is quarantined."""


def _window_label(days: list[date]) -> str:
    if not days:
        return "(empty window)"
    return days[0].isoformat() if len(days) == 1 else f"{days[0]}..{days[-1]}"


def build_ingest_assets(
    partitions_def: dg.DailyPartitionsDefinition,
) -> list[dg.AssetsDefinition]:
    """The raw and staging assets for one partitions definition."""

    @dg.asset(
        key=RAW_KEY,
        tags=DAILY_TAGS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        group_name="raw",
        kinds={"duckdb"},
        owners=OWNERS,
        description="Each day's transaction lines exactly as found in the dataset (all text), "
        "with the source file and line number. A day without a file is an empty partition.",
        metadata=RAW_TRANSACTIONS.spec_metadata(),
    )
    def raw_transactions(
        context: AssetExecutionContext, warehouse: DuckDBWarehouse, dataset: DatasetResource
    ) -> dg.MaterializeResult:
        days = window_days(context)
        try:
            source = dataset.open()
        except DataContractError as exc:
            raise dg.Failure(description=str(exc)) from None
        per_day: list[dict[str, object]] = []
        with warehouse.connect() as conn:
            ensure_staging_tables(conn)
            for day in days:
                try:
                    load = load_raw_day(conn, source, day, ensure=False)
                except (DataContractError, RawLoadError) as exc:
                    raise dg.Failure(description=str(exc)) from None
                per_day.append(
                    {
                        "day": day.isoformat(),
                        "file": load.source_file or "(no file: empty partition)",
                        "rows": load.rows,
                    }
                )
                context.log.debug(f"raw.transactions {day}: {load.rows} lines")
            metadata = table_metadata(
                conn, RAW_TRANSACTIONS, order_by="partition_date, source_line"
            )
        context.log.info(
            f"raw.transactions {_window_label(days)}: {sum(int(d['rows']) for d in per_day)} "
            f"lines from {sum(1 for d in per_day if d['rows'])} files"
        )
        metadata.update(
            {
                "window": _window_label(days),
                "window_rows": sum(int(d["rows"]) for d in per_day),
                "days_without_file": sum(1 for d in per_day if d["rows"] == 0),
                "per_day": preview_markdown(pd.DataFrame(per_day), max_rows=31),
                "source": source.describe(),
            }
        )
        return dg.MaterializeResult(metadata=metadata)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                STAGED_KEY,
                tags=DAILY_TAGS,
                deps=[RAW_KEY],
                group_name="staging",
                kinds={"duckdb", "pandas", "pandera"},
                owners=OWNERS,
                description="Validated sale lines: typed, amount = quantity * unit_price, checked "
                "against the pandera model StagedTransaction.",
                metadata=STAGED_TRANSACTIONS.spec_metadata(),
            ),
            dg.AssetSpec(
                RETURNS_KEY,
                tags=DAILY_TAGS,
                deps=[RAW_KEY],
                group_name="staging",
                kinds={"duckdb", "pandas", "pandera"},
                owners=OWNERS,
                description="Return and cancellation lines (negative quantity), validated "
                "against the pandera model ReturnLine.",
                metadata=STAGED_RETURNS.spec_metadata(),
            ),
            dg.AssetSpec(
                QUARANTINE_KEY,
                tags=DAILY_TAGS,
                deps=[RAW_KEY],
                group_name="staging",
                kinds={"duckdb", "pandas", "pandera"},
                owners=OWNERS,
                description="Rows that broke a rule, with the rule, the offending value and the "
                "raw row. Transactions are partitioned by day; customer and product rows are "
                "written by their own assets (entity column).",
                metadata=QUARANTINE.spec_metadata(),
            ),
        ],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec(
                "rows_conserved",
                asset=STAGED_KEY,
                blocking=True,
                description="Every raw line of every day in the window is in exactly one place: "
                "raw = staged + returns + quarantined.",
            ),
            dg.AssetCheckSpec(
                "line_key_unique",
                asset=STAGED_KEY,
                blocking=True,
                description="line_id is unique across staging.transactions and staging.returns.",
            ),
            dg.AssetCheckSpec(
                "required_columns_not_null",
                asset=STAGED_KEY,
                blocking=True,
                description="No NULL in order_id, customer_id, order_ts, product_id, quantity, "
                "unit_price, amount.",
            ),
            dg.AssetCheckSpec(
                "quarantine_rate",
                asset=STAGED_KEY,
                blocking=False,
                description="Warns when the window's quarantined share exceeds "
                "max_quarantine_rate (config).",
            ),
        ],
        name="staging_transactions",
        pool=WAREHOUSE_POOL,
    )
    def staging_transactions(
        context: AssetExecutionContext, config: StagingConfig, warehouse: DuckDBWarehouse
    ):
        days = window_days(context)
        with warehouse.connect() as conn:
            counts: list[StagingCounts] = stage_transactions_window(conn, days)
            for day_counts in counts:
                context.log.debug(
                    f"staging {day_counts.day}: raw={day_counts.raw} staged={day_counts.staged} "
                    f"returns={day_counts.returns} quarantined={day_counts.quarantined}"
                )
            context.log.info(
                f"staging {_window_label(days)}: raw={sum(c.raw for c in counts)} "
                f"staged={sum(c.staged for c in counts)} "
                f"returns={sum(c.returns for c in counts)} "
                f"quarantined={sum(c.quarantined for c in counts)}"
            )
            checks = _staging_checks(conn, counts, config.max_quarantine_rate)
            quarantine_rules = (
                conn.execute(
                    "SELECT rule, count(*) AS rows FROM staging.quarantine "
                    "WHERE entity = 'transactions' AND partition_date BETWEEN ? AND ? "
                    "GROUP BY rule ORDER BY rows DESC, rule",
                    [days[0], days[-1]],
                ).df()
                if days
                else pd.DataFrame()
            )
            window = {
                "window": _window_label(days),
                "window_raw_rows": sum(c.raw for c in counts),
            }
            staged_meta = table_metadata(conn, STAGED_TRANSACTIONS, order_by="line_id")
            returns_meta = table_metadata(conn, STAGED_RETURNS, order_by="line_id")
            quarantine_meta = table_metadata(
                conn, QUARANTINE, order_by="entity, partition_date, source_file, source_line"
            )
        yield dg.MaterializeResult(
            asset_key=STAGED_KEY,
            metadata={**staged_meta, **window, "window_staged_rows": sum(c.staged for c in counts)},
        )
        yield dg.MaterializeResult(
            asset_key=RETURNS_KEY,
            metadata={
                **returns_meta,
                **window,
                "window_return_rows": sum(c.returns for c in counts),
            },
        )
        yield dg.MaterializeResult(
            asset_key=QUARANTINE_KEY,
            metadata={
                **quarantine_meta,
                **window,
                "window_quarantined_rows": sum(c.quarantined for c in counts),
                "rules": preview_markdown(quarantine_rules, max_rows=20),
            },
        )
        yield from checks

    return [raw_transactions, staging_transactions]


def _staging_checks(
    conn, counts: list[StagingCounts], max_rate: float
) -> list[dg.AssetCheckResult]:
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
    # Re-count from the tables themselves (not from what the code thinks it wrote).
    recount = conn.execute(
        """
        WITH r AS (SELECT partition_date d, count(*) n FROM raw.transactions GROUP BY 1),
             s AS (SELECT partition_date d, count(*) n FROM staging.transactions GROUP BY 1),
             t AS (SELECT partition_date d, count(*) n FROM staging.returns GROUP BY 1),
             q AS (SELECT partition_date d, count(*) n FROM staging.quarantine
                   WHERE entity = 'transactions' GROUP BY 1)
        SELECT d, coalesce(r.n, 0) AS raw,
               coalesce(s.n, 0) + coalesce(t.n, 0) + coalesce(q.n, 0) AS placed
        FROM r FULL JOIN s USING (d) FULL JOIN t USING (d) FULL JOIN q USING (d)
        WHERE d IN (SELECT unnest(?::DATE[]))
          AND coalesce(r.n, 0) <> coalesce(s.n, 0) + coalesce(t.n, 0) + coalesce(q.n, 0)
        """,
        [[c.day for c in counts]],
    ).fetchall()
    dup = conn.execute(
        "SELECT count(*) - count(DISTINCT line_id) FROM "
        "(SELECT line_id FROM staging.transactions UNION ALL SELECT line_id FROM staging.returns)"
    ).fetchall()[0][0]
    nulls = conn.execute(
        "SELECT count(*) FROM staging.transactions WHERE order_id IS NULL OR customer_id IS NULL "
        "OR order_ts IS NULL OR product_id IS NULL OR quantity IS NULL OR unit_price IS NULL "
        "OR amount IS NULL"
    ).fetchall()[0][0]
    raw_total = sum(c.raw for c in counts)
    quarantined_total = sum(c.quarantined for c in counts)
    rate = quarantined_total / raw_total if raw_total else 0.0
    return [
        dg.AssetCheckResult(
            asset_key=STAGED_KEY,
            check_name="rows_conserved",
            passed=not broken and not recount,
            metadata={
                "days_checked": len(counts),
                "days_not_conserved": len(broken) + len(recount),
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


def _master_asset(entity: str, key: dg.AssetKey, table, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=key,
        group_name="staging",
        # Unpartitioned, but declared so a `dagster asset materialize --partition-range` over
        # the whole graph runs as one run (the CLI requires it of every selected asset).
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        kinds={"duckdb", "pandas", "pandera"},
        owners=OWNERS,
        description=description,
        metadata=table.spec_metadata(),
        check_specs=[
            dg.AssetCheckSpec(
                "rows_conserved",
                asset=key,
                blocking=True,
                description=f"Every row of the {entity} file is staged or quarantined.",
            )
        ],
    )
    def _asset(
        context: AssetExecutionContext, warehouse: DuckDBWarehouse, dataset: DatasetResource
    ):
        try:
            source = dataset.open()
            with warehouse.connect() as conn:
                query = (
                    source.raw_customers(conn)
                    if entity == "customers"
                    else source.raw_products(conn)
                )
                counts = stage_master(
                    conn, entity, query.sql if query else None, query.params if query else []
                )
                metadata = table_metadata(conn, table, order_by=table.primary_key[0])
        except DataContractError as exc:
            raise dg.Failure(description=str(exc)) from None
        context.log.info(
            f"staging.{entity}: raw={counts.raw} staged={counts.staged} "
            f"quarantined={counts.quarantined}"
        )
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                **metadata,
                "raw_rows": counts.raw,
                "quarantined_rows": counts.quarantined,
                "source_file": query.source_file if query else "(none: optional file absent)",
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
    "Validated customer profiles (pandera CustomerProfile): one row per customer; missing "
    "demographics become Unknown; duplicates and rows without an id are quarantined.",
)
staging_products = _master_asset(
    "products",
    PRODUCTS_KEY,
    STAGED_PRODUCTS,
    "Validated product master (pandera ProductRecord): one row per product; missing category "
    "becomes Unknown; duplicates and rows without an id are quarantined.",
)
