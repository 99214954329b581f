"""What every table asset of the analysis layers shares: its key, its owners, its check specs
and the `dg.asset` conventions (key from the table, the table's column schema in the UI,
owners, single-run backfills, the warehouse pool)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import dagster as dg

from segment_pipeline.resources import WAREHOUSE_POOL
from segment_pipeline.tables import TableDef

#: Dagster's op tag that orders the steps ready to run (highest first; 0 when absent).
PRIORITY_TAG = "dagster/priority"

#: Owners of the analysis layers' tables and figures (raw and staging: assets/ingest.py).
ANALYTICS_OWNERS: tuple[str, ...] = ("team:analytics",)

#: The step priority (Dagster's `dagster/priority` op tag: among the steps ready to run, the
#: highest goes first) of the tables the heaviest figures are drawn from, the RFM layer's
#: segment and preference tables (their five figures are about half of a run's drawing). Run
#: before the other layers' steps, their figures are drawn ahead while those steps run
#: (`figures.DrawingAhead`) instead of in the figure step.
DRAWN_EARLY_PRIORITY = 1

#: How far a sum of shares may be from 1 and still count as 1 (float sums).
SHARE_TOLERANCE = 1e-9


def table_key(table: TableDef) -> dg.AssetKey:
    """`schema/name` of a table, the asset key of the asset that writes it."""
    return dg.AssetKey([table.schema, table.name])


def check_spec(
    asset: dg.AssetKey, name: str, description: str, blocking: bool = True
) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, blocking=blocking, description=description)


def table_asset(
    table: TableDef,
    *,
    group: str,
    deps: Iterable,
    description: str,
    checks: Iterable[dg.AssetCheckSpec] = (),
    kinds: Iterable[str] = ("duckdb",),
    owners: Sequence[str] = ANALYTICS_OWNERS,
    key: dg.AssetKey | None = None,
    metadata: Mapping[str, object] | None = None,
    priority: int = 0,
) -> Callable[..., dg.AssetsDefinition]:
    """`dg.asset` for the asset that writes `table`: its key is the table's unless `key` is
    given, its metadata the table's column schema and name plus `metadata`; `priority` orders
    its step among those ready to run (`DRAWN_EARLY_PRIORITY`)."""
    return dg.asset(
        key=key or table_key(table),
        deps=list(deps),
        description=description,
        metadata={**table.spec_metadata(), **(metadata or {})},
        check_specs=list(checks),
        kinds=set(kinds),
        group_name=group,
        owners=list(owners),
        backfill_policy=dg.BackfillPolicy.single_run(),  # ranges run as one run
        pool=WAREHOUSE_POOL,
        op_tags={PRIORITY_TAG: str(priority)} if priority else None,
    )


def table_spec(
    table: TableDef,
    *,
    group: str,
    deps: Iterable,
    description: str,
    kinds: Iterable[str] = ("duckdb",),
    owners: Sequence[str] = ANALYTICS_OWNERS,
    tags: Mapping[str, str] | None = None,
) -> dg.AssetSpec:
    """`dg.AssetSpec` of `table` for a multi-asset: key, column schema and owners as in
    `table_asset` (backfill policy and pool belong to the multi-asset)."""
    return dg.AssetSpec(
        table_key(table),
        deps=list(deps),
        description=description,
        metadata=table.spec_metadata(),
        kinds=set(kinds),
        group_name=group,
        owners=list(owners),
        tags=tags,
    )
