"""What every table asset of the analysis layers shares: its key, its check specs and the
`dg.asset` conventions (key from the table, the table's column schema in the UI, owners,
single-run backfills, the warehouse pool)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

from segment_pipeline.resources import WAREHOUSE_POOL
from segment_pipeline.tables import TableDef


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
    owners: Sequence[str],
    deps: Iterable,
    description: str,
    checks: Iterable[dg.AssetCheckSpec] = (),
    kinds: Iterable[str] = ("duckdb",),
):
    """`dg.asset` for the asset that writes `table`."""
    return dg.asset(
        key=table_key(table),
        deps=list(deps),
        description=description,
        metadata=table.spec_metadata(),
        check_specs=list(checks),
        kinds=set(kinds),
        group_name=group,
        owners=list(owners),
        backfill_policy=dg.BackfillPolicy.single_run(),  # ranges run as one run
        pool=WAREHOUSE_POOL,
    )
