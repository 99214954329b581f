"""Customer dynamics (issue 12): monthly snapshots, migration between segments and price
tiers, and experiment sizing.

Lineage: staging (sale lines, customers, products) -> marts.customer_snapshots and
marts.category_tier_snapshots, **partitioned by month** with the same partitions as raw and
staging (a ranged run computes all its months in one step, `BackfillPolicy.single_run()`) ->
marts.segment_transitions, marts.customer_last_moves and, with marts.strategy_summary,
marts.experiment_sizing (unpartitioned: they read every stored month) -> the figures
dyn_segment_migration, dyn_segment_share_over_time, dyn_price_tier_flow and the report's
section "What changed since last month". SQL and statistics live in
`segment_pipeline.logic.dynamics`, the plots in `.dynamics_figures`; parameters are the
`dynamics_settings` resource (DynamicsSettings), plus `rfm_settings` (segment map, window) and
`behaviour_settings` (occupation threshold, strategy rules) shared with those layers.
"""

import itertools
import random
from datetime import date, timedelta

import dagster as dg
import duckdb
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from segment_pipeline.assets.behaviour import SUMMARY_KEY, BehaviourSettings
from segment_pipeline.assets.ingest import PARTITIONED_TAGS, STAGING_KEYS
from segment_pipeline.assets.layer import LayerContext
from segment_pipeline.assets.rfm import RESOURCE_KEY as RFM_RESOURCE_KEY
from segment_pipeline.assets.rfm import RfmSettings
from segment_pipeline.assets.tables import (
    ANALYTICS_OWNERS,
    check_spec,
    table_asset,
    table_key,
    table_spec,
)
from segment_pipeline.drawing import PlotFunctions
from segment_pipeline.figures import FigureLayer, FigureSpec, PlotCall
from segment_pipeline.logic import dynamics as dyn
from segment_pipeline.logic import figure_names as names
from segment_pipeline.logic import snapshot_update
from segment_pipeline.logic.memory import scratch_database
from segment_pipeline.logic.staging import ensure_staging_tables
from segment_pipeline.resources import WAREHOUSE_POOL, DuckDBWarehouse
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import (
    ensure_table,
    preview_markdown,
    read_table,
    replace_rows_from_frame,
    scalar,
    table_metadata,
)

#: The plotting functions by name (drawing.PlotFunction): imported where the figures are
#: drawn (the drawing server), not by loading the definitions.
figs = PlotFunctions("segment_pipeline.logic.dynamics_figures")

GROUP = "dynamics"
RESOURCE_KEY = "dynamics_settings"


SNAPSHOTS_KEY = table_key(dyn.CUSTOMER_SNAPSHOTS)
TIERS_KEY = table_key(dyn.CATEGORY_TIER_SNAPSHOTS)
TRANSITIONS_KEY = table_key(dyn.SEGMENT_TRANSITIONS)
LAST_MOVES_KEY = table_key(dyn.CUSTOMER_LAST_MOVES)
SIZING_KEY = table_key(dyn.EXPERIMENT_SIZING)
FIGURE_STEMS = {
    "migration": names.SEGMENT_MIGRATION,
    "shares": names.SEGMENT_SHARE_OVER_TIME,
    "price_flow": names.PRICE_TIER_FLOW,
}
FIGURE_KEYS = {k: dg.AssetKey(["figures", stem]) for k, stem in FIGURE_STEMS.items()}

#: Customers and revenue per dimension and direction of the latest pair of months.
LATEST_TRANSITION_TOTALS_SQL = load_sql("dynamics/latest_transition_totals")
#: Check of customer_last_moves: customers of the latest snapshot, distinct customers.
LAST_MOVES_COVERAGE_SQL = load_sql("dynamics/last_moves_coverage")
#: The most frequent moves into a segment in the latest month.
LATEST_MOVES_SQL = load_sql("dynamics/latest_moves")
#: The strategy classes and their playbook actions (strategy_summary), in class order.
STRATEGY_CLASS_ACTIONS_SQL = load_sql("strategy/class_actions")


class DynamicsSettings(dg.ConfigurableResource):
    """Parameters of the dynamics layer; the defaults work on the bundled sample. Override them
    in the run config (`resources: {dynamics_settings: {config: {...}}}`) or the launchpad.
    The snapshots themselves use `rfm_settings` and `behaviour_settings`."""

    lapse_days: int = Field(
        default=dyn.DEFAULT_LAPSE_DAYS,
        description="A customer is lapsed when their last purchase is more than this many days "
        "before the snapshot's as_of (otherwise active)",
    )
    relative_uplift: float = Field(
        default=0.10,
        description="Uplift an experiment must detect, relative to the baseline rate (0.10 = "
        "+10%; for staying active: 10% fewer lapses)",
    )
    power: float = Field(default=0.80, description="Power of the experiment (1 - type II error)")
    alpha: float = Field(default=0.05, description="Significance level (two-sided)")
    baseline_months: int = Field(
        default=12,
        description="Month-to-month transitions (the latest ones) pooled for the baseline rates",
    )
    class_outcomes: dict[str, str] = Field(
        default_factory=lambda: dict(dyn.DEFAULT_CLASS_OUTCOMES),
        description="Outcome each strategy class's playbook targets: repeat_purchase, "
        "stay_active or price_tier_up",
    )

    def checked(self) -> "DynamicsSettings":
        """Self, after checking every field; a `dg.Failure` listing the problems otherwise."""
        problems = []
        if self.lapse_days < 1:
            problems.append(f"lapse_days must be >= 1, got {self.lapse_days}")
        if not 0 < self.relative_uplift < 1:
            problems.append(f"relative_uplift must be in (0, 1), got {self.relative_uplift}")
        for name in ("power", "alpha"):
            value = getattr(self, name)
            if not 0 < value < 1:
                problems.append(f"{name} must be in (0, 1), got {value}")
        if self.baseline_months < 1:
            problems.append(f"baseline_months must be >= 1, got {self.baseline_months}")
        unknown = {c: o for c, o in self.class_outcomes.items() if o not in dyn.OUTCOMES}
        if unknown:
            problems.append(
                f"class_outcomes has unknown outcomes {unknown}; known: {', '.join(dyn.OUTCOMES)}"
            )
        if problems:
            raise dg.Failure(
                description="Invalid dynamics_settings:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        return self

    def sizing(self) -> dyn.SizingSettings:
        return dyn.SizingSettings(
            relative_uplift=self.relative_uplift,
            alpha=self.alpha,
            power=self.power,
            lapse_days=self.lapse_days,
            baseline_months=self.baseline_months,
        )


class SnapshotConfig(dg.Config):
    """Which month the check `matches_as_of_recomputation` recomputes."""

    check_month: str | None = None
    """YYYY-MM-01 of a month of the run (default: one of the run's months with a snapshot,
    picked at random with the run id as the seed, so it is repeatable)."""


def _window_settings(rfm_settings: RfmSettings) -> dyn.WindowSettings:
    start = rfm_settings.window_start
    return dyn.WindowSettings(
        window_start=date.fromisoformat(start) if start else None,
        lookback_days=rfm_settings.lookback_days,
    )


def _run_months(context: AssetExecutionContext) -> list[date]:
    window = context.partition_time_window
    return dyn.months_between(window.start.date(), window.end.date() - timedelta(days=1))


def _check_month(
    context: AssetExecutionContext, config: SnapshotConfig, with_rows: list[date]
) -> date | None:
    if config.check_month:
        try:
            month = date.fromisoformat(config.check_month).replace(day=1)
        except ValueError:
            raise dg.Failure(
                description=f"check_month must be YYYY-MM-DD, got {config.check_month!r}"
            ) from None
        return month if month in with_rows else None
    return random.Random(context.run_id).choice(with_rows) if with_rows else None


def _history_check(history: pd.DataFrame) -> dg.AssetCheckResult:
    """Stored months (SNAPSHOT_HISTORY_SQL) whose customers or spend differ from today's
    staging (history corrected after the snapshot was taken): a warning naming the months to
    recompute."""
    stale = history[
        (history["stored_customers"] != history["current_customers"])
        | ((history["stored_monetary"] - history["current_monetary"]).abs() > 1e-6)
    ]
    months = [m.strftime("%Y-%m") for m in pd.to_datetime(stale["snapshot_month"])]
    return dg.AssetCheckResult(
        asset_key=SNAPSHOTS_KEY,
        check_name="snapshots_match_current_history",
        passed=stale.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "months_checked": len(history),
            "stale_months": ", ".join(months) or "(none)",
            "fix": "segment-pipeline backfill --start <first stale month> --end <last day>"
            if months
            else "(nothing to do)",
            "stale": preview_markdown(stale, max_rows=24),
        },
    )


def build_snapshot_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """marts/customer_snapshots and marts/category_tier_snapshots on the month partitions of
    raw and staging."""

    @dg.multi_asset(
        specs=[
            table_spec(
                dyn.CUSTOMER_SNAPSHOTS,
                group=GROUP,
                deps=STAGING_KEYS,
                tags=PARTITIONED_TAGS,
                description="Per month and customer: RFM values, scores and segment, dominant "
                "price segment and behavioural segment as of the month's end, computed from the "
                "lines up to that day with the RFM and behaviour layers' definitions (running "
                "sums over the months; one month of every run is recomputed with the layers' "
                "own SQL by a blocking check); the month's orders and spend. A ranged run "
                "computes all its months in one step and replaces them in one transaction. A "
                "new day of the latest month updates it: its customers recomputed, the rest "
                "kept and all scored again, computed directly after six updates or whenever "
                "a corrected day, a master, a tier or a group would make kept rows wrong "
                "(metadata `computed`).",
            ),
            table_spec(
                dyn.CATEGORY_TIER_SNAPSHOTS,
                group=GROUP,
                deps=STAGING_KEYS,
                tags=PARTITIONED_TAGS,
                description="Per month and category: median line amount and price tier as of "
                "the month's end (the tiers that month's snapshot used).",
            ),
        ],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            check_spec(
                SNAPSHOTS_KEY,
                "one_row_per_customer",
                "In every month of the run, each customer with a sale line in the "
                "month's RFM window has exactly one row, with a segment of the map, scores 1-5 "
                "and one window.",
            ),
            check_spec(
                SNAPSHOTS_KEY,
                "matches_as_of_recomputation",
                "One month of the run (picked at random, seeded by the run id), "
                "recomputed from staging alone as of its end, equals the stored rows in every "
                "column. A month updated by a new day: its customers and a seeded sample of "
                "the kept ones, recomputed from their own lines, equal their rows but for the "
                "scores, and the stored rows equal the update's.",
            ),
            check_spec(
                SNAPSHOTS_KEY,
                "snapshots_match_current_history",
                "Warns when a stored month's customers or spend differ from "
                "today's staging over its window: a day up to that month was corrected after "
                "the snapshot was taken; backfill from the corrected day to refresh it.",
                blocking=False,
            ),
        ],
        name="customer_snapshots",
        pool=WAREHOUSE_POOL,
    )
    def customer_snapshots(
        context: AssetExecutionContext,
        config: SnapshotConfig,
        warehouse: DuckDBWarehouse,
        rfm_settings: RfmSettings,
        behaviour_settings: BehaviourSettings,
    ):
        segment_map = rfm_settings.segment_map()  # invalid settings: stop before any work
        window_settings = _window_settings(rfm_settings)
        minimum = behaviour_settings.min_customers_per_occupation
        months = _run_months(context)
        with warehouse.connect() as conn:
            ensure_staging_tables(conn)
            large = dyn.scratch_on_disk(conn)
            with scratch_database(conn, on_disk=large) as on_disk:
                if on_disk:
                    context.log.info(
                        "scratch tables in a file beside the warehouse (over "
                        f"{dyn.SCRATCH_ON_DISK_LINES:,} staged lines)"
                    )
                try:
                    # A one-month run of the data's latest month updates it by its new days
                    # when its record allows (logic/snapshot_update.py), else computes it.
                    update = (
                        snapshot_update.update_latest_month(
                            conn,
                            months[0],
                            segment_map=segment_map,
                            window_settings=window_settings,
                            min_customers_per_occupation=minimum,
                            seed=context.run_id,
                            on_disk=on_disk,
                        )
                        if dyn.computed_directly(months)
                        else None
                    )
                    updated = update is not None and update.month is not None
                    if update is not None and update.month is not None:
                        done = [update.month]
                    else:
                        done = dyn.compute_snapshots(
                            conn,
                            months,
                            segment_map=segment_map,
                            window_settings=window_settings,
                            min_customers_per_occupation=minimum,
                            on_disk=on_disk,
                        )
                    written = dyn.write_snapshots(
                        conn,
                        months[0],
                        months[-1],
                        also=lambda c: snapshot_update.record_latest_month(
                            c,
                            months,
                            window_settings=window_settings,
                            min_customers_per_occupation=minimum,
                            updates_since_direct=update.updates_since_direct if updated else 0,
                        ),
                    )
                    history_frame = conn.execute(dyn.SNAPSHOT_HISTORY_SQL).df()
                    coverage = dyn.with_window_customers(
                        conn.execute(
                            dyn.SNAPSHOT_COVERAGE_SQL,
                            {
                                "first": months[0],
                                "last": months[-1],
                                **segment_map.segments_param(),
                            },
                        ).df(),
                        history_frame,
                    )
                    with_rows = [m.month for m in done if m.customers]
                    check_month = _check_month(context, config, with_rows)
                    # A one-month run computed its month with the layers' own SQL already: its
                    # rows are the recomputation, compared with what was stored. So did an
                    # updated month for its new days' customers and a sample of the kept ones
                    # (their rows compared with the stored ones before the write); its stored
                    # rows are then compared with what the update computed.
                    reference = "_snapshots" if dyn.computed_directly(months) else "_check"
                    if check_month is not None and reference == "_check":
                        dyn.create_snapshot_temp(conn, "_check", on_disk=on_disk)
                        last_line = scalar(conn, dyn.LAST_LINE_DATE_SQL)
                        dyn.compute_snapshot(
                            conn,
                            check_month,
                            segment_map=segment_map,
                            window_settings=window_settings,
                            min_customers_per_occupation=minimum,
                            last_line=last_line,
                            into="_check",
                            on_disk=on_disk,
                        )
                    if check_month is not None:
                        n_stored, n_again, differ = dyn.differing_rows(
                            conn,
                            f"SELECT * FROM {dyn.CUSTOMER_SNAPSHOTS.fqn} WHERE snapshot_month = ?",
                            reference,
                            [check_month],
                        )
                    history = _history_check(history_frame)
                    snap_meta = table_metadata(
                        conn, dyn.CUSTOMER_SNAPSHOTS, order_by="snapshot_month DESC, customer_id"
                    )
                    tier_meta = table_metadata(
                        conn, dyn.CATEGORY_TIER_SNAPSHOTS, order_by="snapshot_month DESC, tier_rank"
                    )
                finally:
                    # scratch tables of the run's shared connection: the narrow copy of every
                    # line would otherwise stay in DuckDB's memory for the later steps
                    dyn.drop_snapshot_temps(conn)
                    snapshot_update.drop_update_temps(conn)

        per_month = pd.DataFrame(
            [
                {
                    "month": m.month.strftime("%Y-%m"),
                    "as_of": m.as_of.isoformat() if m.as_of else "(no data yet)",
                    "window": f"{m.window.start} .. {m.window.end}" if m.window else "",
                    "customers": m.customers,
                }
                for m in done
            ]
        )
        for m in done:
            context.log.info(
                f"snapshot {m.month:%Y-%m}: "
                + (f"{m.customers} customers as of {m.as_of}" if m.customers else "no data yet")
            )
        label = f"{months[0]:%Y-%m}" + (f"..{months[-1]:%Y-%m}" if len(months) > 1 else "")
        if update is None:
            how = "one pass over the run's months"
        elif updated:
            how = (
                f"updated by {update.new_days} new day(s): {update.recomputed} customers "
                f"recomputed, the rest kept, all scored again ({update.updates_since_direct} "
                f"update(s) since computed directly)"
            )
        else:
            how = f"computed directly ({update.reason})"
        context.log.info(f"snapshot {label}: {how}")
        summary = {
            "months": label,
            "months_with_data": len(with_rows),
            "rows_written": written,
            "computed": how,
            # over SCRATCH_ON_DISK_LINES staged lines: in <database>.scratch, deleted after
            "scratch_tables": "file beside the warehouse" if on_disk else "memory",
        }
        yield dg.MaterializeResult(
            asset_key=SNAPSHOTS_KEY,
            metadata={**snap_meta, **summary, "per_month": preview_markdown(per_month, 60)},
        )
        yield dg.MaterializeResult(asset_key=TIERS_KEY, metadata={**tier_meta, **summary})
        bad = coverage[
            (coverage["rows"] != coverage["customers"])
            | (coverage["rows"] != coverage["window_customers"])
            | (coverage["bad_rows"] > 0)
            | (coverage["windows"] != 1)
        ]
        yield dg.AssetCheckResult(
            asset_key=SNAPSHOTS_KEY,
            check_name="one_row_per_customer",
            passed=bad.empty and len(coverage) == len(with_rows),
            metadata={
                "months_checked": len(coverage),
                "months_failing": len(bad),
                "per_month": preview_markdown(coverage, max_rows=60),
            },
        )
        if check_month is None:
            as_of_meta = {"vacuous": "no month of the run has a snapshot (no data up to it)"}
            passed = True
        else:
            if updated:
                recomputed = (
                    "updated by a new day: its customers and a sample of the kept ones "
                    "recomputed with the layers' own SQL from their own lines, the stored rows "
                    "compared with the update's (the month is computed directly, and so "
                    f"checked in full, after {snapshot_update.MAX_UPDATES_BETWEEN_DIRECT} "
                    "updates in a row)"
                )
            elif reference == "_snapshots":
                recomputed = (
                    "by this run: a one-month run computes its month with the layers' own SQL"
                )
            else:
                recomputed = "after the run's one-pass computation, with the layers' own SQL"
            as_of_meta = {
                "month": check_month.strftime("%Y-%m"),
                "recomputed": recomputed,
                "stored_rows": n_stored,
                "recomputed_rows": n_again,
                "rows_differing": differ,
            }
            passed = differ == 0 and n_stored == n_again
            if updated:
                as_of_meta["kept_customers_recomputed"] = update.sample_checked
                as_of_meta["kept_customers_differing"] = update.sample_differing
                passed = passed and update.sample_differing == 0
        yield dg.AssetCheckResult(
            asset_key=SNAPSHOTS_KEY,
            check_name="matches_as_of_recomputation",
            passed=passed,
            metadata=as_of_meta,
        )
        yield history

    return customer_snapshots


# --------------------------------------------------------------------------------------------
# Unpartitioned: transitions, last moves, experiment sizing
# --------------------------------------------------------------------------------------------


def _ensure_snapshots(conn: duckdb.DuckDBPyConnection) -> list[date]:
    """The stored snapshot months (the tables are created empty when never materialized)."""
    ensure_table(conn, dyn.CUSTOMER_SNAPSHOTS)
    ensure_table(conn, dyn.CATEGORY_TIER_SNAPSHOTS)
    rows = conn.execute(dyn.SNAPSHOT_MONTHS_SQL).fetchall()
    return [r[0] for r in rows]


def history_note(months: list[date]) -> str | None:
    """Why there is no month-to-month comparison yet (None when there is one)."""
    if not months:
        return "No monthly snapshot yet: materialize marts/customer_snapshots for some months."
    consecutive = any(dyn.add_months(a, 1) == b for a, b in itertools.pairwise(months))
    if len(months) == 1:
        return (
            f"No previous snapshot: only {months[0]:%b %Y} is materialized; the comparison "
            "starts when the next month's snapshot exists."
        )
    if not consecutive:
        return (
            "No two consecutive monthly snapshots ("
            + ", ".join(f"{m:%Y-%m}" for m in months)
            + "): backfill the months between them."
        )
    return None


@table_asset(
    dyn.SEGMENT_TRANSITIONS,
    group=GROUP,
    deps=[SNAPSHOTS_KEY],
    description="Between every two consecutive monthly snapshots: customers by state in the "
    "earlier and in the later one, per dimension (rfm_segment, price_tier Low -> Mid -> High, "
    "activity active / lapsed), with row shares and the revenue that moved with them; (entered) "
    "and (left) for customers in only one of the two. Only the pairs whose snapshots changed "
    "are recomputed (marts.segment_transitions_inputs records what each pair was computed from).",
    checks=[
        check_spec(
            TRANSITIONS_KEY,
            "rows_sum_to_snapshots",
            "Every pair of consecutive snapshot months has rows, and for every pair and "
            "dimension the rows of the earlier states add up to the earlier snapshot's customers "
            "and the columns of the later states to the later one's.",
        ),
    ],
)
def segment_transitions(
    context: AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    dynamics_settings: DynamicsSettings,
) -> dg.MaterializeResult:
    settings = dynamics_settings.checked()
    with warehouse.connect() as conn:
        months = _ensure_snapshots(conn)
        write = dyn.write_segment_transitions(conn, settings.lapse_days)
        sums = conn.execute(dyn.TRANSITIONS_CONSERVATION_SQL).df()
        last = conn.execute(LATEST_TRANSITION_TOTALS_SQL).df()
        metadata = table_metadata(
            conn,
            dyn.SEGMENT_TRANSITIONS,
            order_by="from_month DESC, dimension, from_order, to_order",
            preview_rows=20,
        )
    note = history_note(months)
    if note:
        context.log.warning(note)
    conserved = bool(
        (
            (sums["out_of_from"] == sums["from_customers"])
            & (sums["into_to"] == sums["to_customers"])
        ).all()
    )
    # every pair of consecutive snapshot months has its rows (only changed pairs are rewritten)
    pairs_held = set(pd.to_datetime(sums["from_month"]).dt.date) if len(sums) else set()
    missing = [m for m in write.pairs if m not in pairs_held]
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "snapshot_months": ", ".join(f"{m:%Y-%m}" for m in months) or "(none)",
            "pairs": len(write.pairs),
            "pairs_recomputed": ", ".join(f"{m:%Y-%m}" for m in write.recomputed) or "(none)",
            "rows_written": write.rows_written,
            "last_month": preview_markdown(last, max_rows=20),
            "lapse_days": settings.lapse_days,
            **({"note": note} if note else {}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="rows_sum_to_snapshots",
                passed=conserved and not missing,
                metadata={
                    "pairs_x_dimensions": len(sums),
                    "pairs_without_rows": ", ".join(f"{m:%Y-%m}" for m in missing) or "(none)",
                    "per_pair": preview_markdown(sums, max_rows=40),
                    **({"vacuous": note} if sums.empty and note else {}),
                },
            )
        ],
    )


@table_asset(
    dyn.CUSTOMER_LAST_MOVES,
    group=GROUP,
    deps=[SNAPSHOTS_KEY],
    description="Per customer of the latest snapshot: the last month their RFM segment changed "
    "and from which segment, the last price-tier move (up / down / entered), months in the "
    "current segment, and whether they are active (a purchase within lapse_days). The moves up "
    "to the month before the latest are kept in marts.customer_last_moves_state while those "
    "months are unchanged, so a new day adds one month to them.",
    checks=[
        check_spec(
            LAST_MOVES_KEY,
            "one_row_per_latest_customer",
            "Exactly one row per customer of the latest monthly snapshot.",
        ),
    ],
)
def customer_last_moves(
    context: AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    dynamics_settings: DynamicsSettings,
) -> dg.MaterializeResult:
    settings = dynamics_settings.checked()
    with warehouse.connect() as conn:
        months = _ensure_snapshots(conn)
        write = dyn.write_customer_last_moves(conn, settings.lapse_days)
        latest, distinct = conn.execute(LAST_MOVES_COVERAGE_SQL).fetchall()[0]
        moves = conn.execute(LATEST_MOVES_SQL).df()
        metadata = table_metadata(conn, dyn.CUSTOMER_LAST_MOVES, order_by="customer_id")
    rows = write.rows
    folded = ", ".join(f"{m:%Y-%m}" for m in write.folded) or "(none)"
    context.log.info(
        f"{rows} customers in the latest snapshot; {write.reason}; months folded into the "
        f"state: {folded}"
    )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "latest_month": f"{months[-1]:%Y-%m}" if months else "(none)",
            "state": write.reason,
            "months_folded": folded,
            "moves_in_the_latest_month": preview_markdown(moves, max_rows=15),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="one_row_per_latest_customer",
                passed=rows == latest == distinct,
                metadata={"rows": rows, "latest_snapshot_customers": int(latest)},
            )
        ],
    )


@table_asset(
    dyn.EXPERIMENT_SIZING,
    group=GROUP,
    deps=[SNAPSHOTS_KEY, SUMMARY_KEY],
    description="Per strategy class and playbook action (marts.strategy_summary): customers "
    "available in the latest snapshot, the monthly baseline rate of the outcome the class targets "
    "(Defend / Maintain: staying active, Grow: ordering again, Expand: moving up a price tier; "
    "measured on the snapshots), and the customers per arm to detect the configured relative "
    "uplift (two-sample z-test power on Cohen's h); says plainly when a class is too small.",
    checks=[
        check_spec(
            SIZING_KEY,
            "every_action_sized",
            "One row per class and playbook action of marts.strategy_summary, each with a verdict; "
            "a testable row has n_per_arm >= 1 and at least 2 x n_per_arm customers available.",
        ),
    ],
    kinds=("duckdb", "pandas"),
)
def experiment_sizing(
    context: AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    dynamics_settings: DynamicsSettings,
    behaviour_settings: BehaviourSettings,
) -> dg.MaterializeResult:
    settings = dynamics_settings.checked()
    table = behaviour_settings.rule_table()
    sizing = settings.sizing()
    with warehouse.connect() as conn:
        months = _ensure_snapshots(conn)
        try:
            classes = conn.execute(STRATEGY_CLASS_ACTIONS_SQL).df()
        except duckdb.CatalogException:
            raise dg.Failure(
                description="experiment sizing needs marts.strategy_summary: materialize the "
                "strategy group first"
            ) from None
        conn.register(dyn.STRATEGY_CELLS, dyn.strategy_cells(table))
        try:
            baseline = conn.execute(
                dyn.EXPERIMENT_BASELINE_SQL,
                dyn.baseline_params(sizing.lapse_days, sizing.baseline_months),
            ).df()
        finally:
            conn.unregister(dyn.STRATEGY_CELLS)
        rows = dyn.experiment_rows(baseline, classes, settings.class_outcomes, sizing)
        replace_rows_from_frame(conn, dyn.EXPERIMENT_SIZING, rows)
        metadata = table_metadata(
            conn, dyn.EXPERIMENT_SIZING, order_by="class_order, action_number", preview_rows=30
        )
    expected = sum(
        max(1, len([a for a in str(actions or "").split("; ") if a]))
        for actions in classes["actions"]
    )
    testable = rows[rows["testable"]]
    valid = bool(
        len(rows) == expected
        and rows["verdict"].notna().all()
        and (testable["n_per_arm"] >= 1).all()
        and (testable["customers_available"] >= 2 * testable["n_per_arm"]).all()
    )
    per_class = rows.drop_duplicates("strategy_class")[
        ["strategy_class", "outcome", "customers_available", "baseline_rate", "n_per_arm"]
    ]
    for row in rows.drop_duplicates("strategy_class").itertuples():
        context.log.info(f"{row.strategy_class}: {row.verdict}")
    note = history_note(months)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "relative_uplift": sizing.relative_uplift,
            "alpha": sizing.alpha,
            "power": sizing.power,
            "baseline_months": sizing.baseline_months,
            "testable_classes": int(testable["strategy_class"].nunique()),
            "per_class": preview_markdown(per_class),
            **({"note": note} if note else {}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="every_action_sized",
                passed=valid,
                metadata={"rows": len(rows), "class_actions": expected},
            )
        ],
    )


# --------------------------------------------------------------------------------------------
# Figures (the shared factory: segment_pipeline.figures.figure_assets)
# --------------------------------------------------------------------------------------------


def _transitions(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    ensure_table(conn, dyn.SEGMENT_TRANSITIONS)
    return read_table(conn, dyn.SEGMENT_TRANSITIONS)


def _migration_plot(
    conn: duckdb.DuckDBPyConnection, rfm_settings: RfmSettings, _context
) -> PlotCall:
    order = rfm_settings.segment_map().segments
    note = history_note(_ensure_snapshots(conn))
    return PlotCall(figs.plot_segment_migration, (_transitions(conn), order), {"note": note})


def _shares_plot(conn: duckdb.DuckDBPyConnection, rfm_settings: RfmSettings, _context) -> PlotCall:
    _ensure_snapshots(conn)
    order = rfm_settings.segment_map().segments
    shares = conn.execute(dyn.SEGMENT_SHARES_SQL).df()
    return PlotCall(figs.plot_segment_share_over_time, (shares, order))


def _price_flow_plot(
    conn: duckdb.DuckDBPyConnection, rfm_settings: RfmSettings, _context
) -> PlotCall:
    note = history_note(_ensure_snapshots(conn))
    changes = conn.execute(dyn.CATEGORY_TIER_CHANGES_SQL).df()
    return PlotCall(figs.plot_price_tier_flow, (_transitions(conn), changes), {"note": note})


#: The three dynamics figures (RFM segments in the segment map's order: `rfm_settings`).
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        FIGURE_STEMS["migration"],
        (TRANSITIONS_KEY,),
        "Heatmap of the last month's RFM segment migration: from-segment x to-segment, "
        "share of the row and count, entrants and leavers.",
        _migration_plot,
    ),
    FigureSpec(
        FIGURE_STEMS["shares"],
        (SNAPSHOTS_KEY,),
        "RFM segment shares of every monthly snapshot (stacked bars).",
        _shares_plot,
    ),
    FigureSpec(
        FIGURE_STEMS["price_flow"],
        (TRANSITIONS_KEY, TIERS_KEY),
        "Price-tier flow of the last month (Low / Mid / High, entrants) and moves up and "
        "down a tier per month, with the months a category changed tier.",
        _price_flow_plot,
    ),
)


#: Drawn by the one figures step (segment_pipeline.figures.figure_assets, definitions.py).
FIGURE_LAYER = FigureLayer(RFM_RESOURCE_KEY, FIGURES, ANALYTICS_OWNERS)


TABLE_ASSETS = [segment_transitions, customer_last_moves, experiment_sizing]


RESOURCES = {RESOURCE_KEY: DynamicsSettings()}


def build_assets(layer: LayerContext) -> list[dg.AssetsDefinition]:
    """The monthly snapshot assets on the month partitions of raw and staging, and the
    unpartitioned tables, with their checks (see assets/layer.py)."""
    return [build_snapshot_asset(layer.partitions_def), *TABLE_ASSETS]
