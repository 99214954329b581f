"""The behavioural segment tables: staging -> the purchase distribution (with the price
clusters), the occupation groups and the category price segments -> customer_behaviour (one row
per customer) -> behavioural_segments. Logic in `segment_pipeline.logic.behaviour`."""

import itertools

import dagster as dg
from dagster import AssetExecutionContext

from segment_pipeline.assets.behaviour.settings import BehaviourSettings
from segment_pipeline.assets.ingest import STAGING_KEYS
from segment_pipeline.assets.tables import SHARE_TOLERANCE, check_spec, table_asset, table_key
from segment_pipeline.logic.behaviour import (
    BEHAVIOURAL_SEGMENTS,
    BEHAVIOURAL_SEGMENTS_SQL,
    CATEGORY_PRICE_SEGMENTS,
    CUSTOMER_BEHAVIOUR,
    OCC_OTHER,
    OCCUPATION_GROUPS_TABLE,
    PRICE_UNKNOWN,
    PURCHASE_DISTRIBUTION,
    MixtureFit,
    build_category_price_segments,
    build_occupation_groups,
    purchase_distribution_with_fit,
    write_customer_behaviour,
)
from segment_pipeline.logic.staging import ensure_staging_tables
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import (
    preview_markdown,
    replace_rows,
    replace_rows_from_frame,
    table_metadata,
)

BEHAVIOUR_GROUP = "behaviour"

DISTRIBUTION_KEY = table_key(PURCHASE_DISTRIBUTION)
OCCUPATION_KEY = table_key(OCCUPATION_GROUPS_TABLE)
PRICE_KEY = table_key(CATEGORY_PRICE_SEGMENTS)
CUSTOMER_KEY = table_key(CUSTOMER_BEHAVIOUR)
SEGMENTS_KEY = table_key(BEHAVIOURAL_SEGMENTS)

#: Check of customer_behaviour: customers of the sale lines, distinct customers, the spend
#: difference to the lines' total, customers with Unknown demographics and (`?`: the Unknown
#: price segment) with no spend in a tiered category.
CUSTOMER_BEHAVIOUR_CHECK_SQL = load_sql("behaviour/customer_behaviour_check")
#: Check of behavioural_segments: share sums, segment customers, customers of customer_behaviour.
SEGMENT_TOTALS_SQL = load_sql("behaviour/segment_totals")
TOP_SEGMENT_SQL = load_sql("behaviour/top_segment")


@table_asset(
    PURCHASE_DISTRIBUTION,
    group=BEHAVIOUR_GROUP,
    deps=STAGING_KEYS,
    description="EDA of sale-line amounts: quantiles, skewness of raw and log1p amounts, raw "
    "and log1p histograms (computed in DuckDB), and the price clusters (a Gaussian mixture on "
    "log1p(amount), its number of components chosen by BIC).",
)
def purchase_distribution(
    context: AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    behaviour_settings: BehaviourSettings,
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        rows, fit = purchase_distribution_with_fit(conn, behaviour_settings.cluster_settings())
        replace_rows_from_frame(conn, PURCHASE_DISTRIBUTION, rows)
        metadata = table_metadata(conn, PURCHASE_DISTRIBUTION)
    key_rows = rows[rows["measure"].isin(["quantile", "skewness", "cluster"])]
    clusters = rows[rows["measure"] == "cluster"]
    where = ", ".join(
        f"{v:,.2f} ({s:.0%})" for v, s in zip(clusters["value"], clusters["share"], strict=True)
    )
    context.log.info(f"{len(clusters)} price cluster(s) at {where}{_fit_text(fit)}")
    metadata.update(
        {
            "preview": preview_markdown(key_rows, max_rows=30),
            "clusters": dg.MetadataValue.int(len(clusters)),
            "cluster_fit": dg.MetadataValue.json(_fit_json(fit)),
            "skewness_raw": _float_meta(rows, "skewness", "raw"),
            "skewness_log1p": _float_meta(rows, "skewness", "log1p"),
        }
    )
    return dg.MaterializeResult(metadata=metadata)


def _fit_text(fit: MixtureFit | None) -> str:
    if fit is None:
        return ""
    if fit.method != "gaussian_mixture":
        return f" (no mixture fitted: {fit.sample_lines} line(s) or one distinct amount)"
    best = min(fit.bic, key=lambda k: fit.bic[k])
    return (
        f" (Gaussian mixture on log1p(amount) of {fit.sample_lines:,} sampled lines: k = "
        f"{best} of 1..{max(fit.bic)} by BIC)"
    )


def _fit_json(fit: MixtureFit | None) -> dict[str, object]:
    if fit is None:
        return {"method": None}
    return {
        "method": fit.method,
        "sample_lines": fit.sample_lines,
        "bic": {str(k): round(v, 3) for k, v in fit.bic.items()},
        "components_log1p": [
            {"mean": round(m, 6), "sd": round(s, 6), "weight": round(w, 6)}
            for m, s, w in fit.components
        ],
        "boundaries_log1p": [round(b, 6) for b in fit.boundaries],
    }


def _float_meta(rows, measure: str, name: str) -> dg.MetadataValue:
    hit = rows[(rows["measure"] == measure) & (rows["name"] == name)]["value"]
    value = float(hit.iloc[0]) if len(hit) and hit.notna().iloc[0] else float("nan")
    return dg.MetadataValue.float(round(value, 6))


@table_asset(
    OCCUPATION_GROUPS_TABLE,
    group=BEHAVIOUR_GROUP,
    deps=STAGING_KEYS,
    description="Per occupation code: customers, lines, mean log1p(line amount) and the "
    "occupation group (terciles of the mean: Occ_Low / Occ_Mid / Occ_High; Occ_Other for codes "
    "below min_customers_per_occupation and for Unknown).",
    checks=[
        check_spec(
            OCCUPATION_KEY,
            "groups_consistent",
            "Occ_Other holds exactly the codes below the minimum customer count "
            "(and Unknown); the ranked groups are ordered: the highest mean of a lower group is "
            "at most the lowest mean of a higher group.",
        ),
    ],
    kinds=("duckdb", "pandas"),
)
def occupation_groups(
    context: AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    behaviour_settings: BehaviourSettings,
):
    minimum = behaviour_settings.min_customers_per_occupation
    with warehouse.connect() as conn:
        frame = build_occupation_groups(conn, minimum)
        replace_rows_from_frame(conn, OCCUPATION_GROUPS_TABLE, frame)
        metadata = table_metadata(
            conn, OCCUPATION_GROUPS_TABLE, order_by="mean_log1p_amount DESC", preview_rows=25
        )
    expected_other = (frame["customers"] < minimum) | (frame["occupation"] == "Unknown")
    other_ok = bool(((frame["occupation_group"] == OCC_OTHER) == expected_other).all())
    ranked = frame[frame["occupation_group"] != OCC_OTHER]
    spans = ranked.groupby("occupation_group")["mean_log1p_amount"].agg(["min", "max"])
    order = [g for g in ("Occ_Low", "Occ_Mid", "Occ_High") if g in spans.index]
    ordered_ok = all(
        spans.loc[a, "max"] <= spans.loc[b, "min"] for a, b in itertools.pairwise(order)
    )
    counts = frame["occupation_group"].value_counts().to_dict()
    context.log.info(f"occupation groups: {counts}")
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "min_customers_per_occupation": minimum,
            "codes_per_group": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
        }
    )
    yield dg.AssetCheckResult(
        asset_key=OCCUPATION_KEY,
        check_name="groups_consistent",
        passed=other_ok and ordered_ok,
        metadata={"occ_other_matches_threshold": other_ok, "groups_ordered": ordered_ok},
    )


@table_asset(
    CATEGORY_PRICE_SEGMENTS,
    group=BEHAVIOUR_GROUP,
    deps=STAGING_KEYS,
    description="Per product category: median line amount and its price segment (terciles of "
    "the category medians: Price_Low / Price_Mid / Price_High). Unknown (lines without a "
    "category) takes no tier: its price segment is Unknown and it does not move the cut points.",
    kinds=("duckdb", "pandas"),
)
def category_price_segments(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        ensure_staging_tables(conn)  # the views too, on a warehouse staged by older code
        frame = build_category_price_segments(conn)
        replace_rows_from_frame(conn, CATEGORY_PRICE_SEGMENTS, frame)
        metadata = table_metadata(
            conn,
            CATEGORY_PRICE_SEGMENTS,
            order_by="median_line_amount DESC, category",
            preview_rows=25,
        )
    counts = frame["price_segment"].value_counts().to_dict()
    context.log.info(f"price segments: {counts}")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "categories_per_segment": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
        }
    )


@table_asset(
    CUSTOMER_BEHAVIOUR,
    group=BEHAVIOUR_GROUP,
    deps=[*STAGING_KEYS, OCCUPATION_KEY, PRICE_KEY],
    description="One row per customer with a sale: age band, gender, occupation group, dominant "
    "price segment (most spend in tiered categories; an exact tie goes to the higher tier; "
    "Unknown for a customer who bought only products without a category), lines, orders, spend. "
    "A new day recomputes only its customers (marts.customer_behaviour_inputs records the days "
    "and lookups it was computed from); any other change writes it whole (metadata write_mode, "
    "why_written_whole, customers_recomputed).",
    checks=[
        check_spec(
            CUSTOMER_KEY,
            "every_customer_once",
            "One row per customer of staging.sales_lines, and spend adds up to the lines' total.",
        ),
    ],
)
def customer_behaviour(context: AssetExecutionContext, warehouse: DuckDBWarehouse):
    with warehouse.connect() as conn:
        written = write_customer_behaviour(conn)
        rows = written.rows
        expected, distinct, spend_gap, unknown, unpriced = conn.execute(
            CUSTOMER_BEHAVIOUR_CHECK_SQL, [PRICE_UNKNOWN]
        ).fetchall()[0]
        metadata = table_metadata(conn, CUSTOMER_BEHAVIOUR, order_by="customer_id")
    context.log.info(
        f"{rows} customers, {unknown} with Unknown demographics, {unpriced} with no spend in a "
        f"tiered category (price segment Unknown); {written.mode}: {written.recomputed} "
        f"customers' rows written" + (f" ({written.reason})" if written.reason else "")
    )
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "write_mode": dg.MetadataValue.text(written.mode),
            "why_written_whole": dg.MetadataValue.text(written.reason or "(not written whole)"),
            "customers_recomputed": written.recomputed,
            "new_days": written.new_days,
            "customers_with_unknown_demographics": int(unknown),
            "customers_with_unknown_price_segment": int(unpriced),
        }
    )
    yield dg.AssetCheckResult(
        asset_key=CUSTOMER_KEY,
        check_name="every_customer_once",
        passed=rows == expected == distinct and spend_gap < 0.01,
        metadata={
            "rows": int(rows),
            "customers_in_sales_lines": int(expected),
            "distinct_customers": int(distinct),
            "spend_difference": float(spend_gap),
        },
    )


@table_asset(
    BEHAVIOURAL_SEGMENTS,
    group=BEHAVIOUR_GROUP,
    deps=[CUSTOMER_KEY],
    description="Per age band x gender x occupation group x price segment: customers, "
    "transactions, gross sales, AOV, revenue share (sums to 1), customer share and their ratio.",
    checks=[
        check_spec(
            SEGMENTS_KEY,
            "revenue_shares_sum_to_one",
            "revenue_share and customer_share each sum to 1.",
        ),
        check_spec(
            SEGMENTS_KEY,
            "each_customer_in_one_segment",
            "Segment customers add up to the customers of "
            "customer_behaviour (each customer in exactly one segment).",
        ),
    ],
)
def behavioural_segments(context: AssetExecutionContext, warehouse: DuckDBWarehouse):
    with warehouse.connect() as conn:
        rows = replace_rows(conn, BEHAVIOURAL_SEGMENTS, BEHAVIOURAL_SEGMENTS_SQL)
        revenue_sum, customer_sum, customers, expected = conn.execute(
            SEGMENT_TOTALS_SQL
        ).fetchall()[0]
        metadata = table_metadata(conn, BEHAVIOURAL_SEGMENTS, order_by="sales_rank")
        top = conn.execute(TOP_SEGMENT_SQL).fetchall()
    if top:
        context.log.info(f"{rows} segments; top: {top[0][0]} ({100 * top[0][1]:.1f}% of sales)")
    shares_ok = (rows == 0) or (
        abs((revenue_sum or 0) - 1) < SHARE_TOLERANCE
        and abs((customer_sum or 0) - 1) < SHARE_TOLERANCE
    )
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "top_segment": top[0][0] if top else "(none)",
        }
    )
    yield dg.AssetCheckResult(
        asset_key=SEGMENTS_KEY,
        check_name="revenue_shares_sum_to_one",
        passed=bool(shares_ok),
        metadata={
            "revenue_share_sum": float(revenue_sum or 0),
            "customer_share_sum": float(customer_sum or 0),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=SEGMENTS_KEY,
        check_name="each_customer_in_one_segment",
        passed=int(customers or 0) == int(expected),
        metadata={"segment_customers": int(customers or 0), "customers": int(expected)},
    )
