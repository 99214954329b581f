"""The analyst report (`insights_report`): Markdown built from small DataFrames.

`collect_report_inputs` runs small queries against the warehouse (headline numbers from
`staging.sales_lines`, everything else from the marts tables); `render_report` turns those
frames into Markdown and computes nothing but formatting, ratios of numbers it was given and
"top N" selections. So every number in the report comes from a table, and tests can feed
hand-built frames.

The RFM section reads `marts.rfm_summary` and `marts.segment_category_preference` (the RFM
layer's tables) only when they exist; without them the section says how to add it. The section
"Value by segment and class" reads `marts.clv_by_segment` (the CLV layer) and is left out
entirely when that table does not exist; when the CLV models could not be fitted it says why
(`marts.clv_model_fit.not_fitted_reason`). The section "What changed since last month" reads
the dynamics layer (`marts.segment_transitions`, `marts.experiment_sizing`,
`marts.customer_snapshots`, `marts.category_tier_snapshots`) and is left out when those tables
do not exist; with a single monthly snapshot it says that the comparison starts next month.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from segment_pipeline.logic import figure_names as names
from segment_pipeline.logic.behaviour import (
    CATEGORY_PRICE_SEGMENTS,
    OCC_OTHER,
    OCCUPATION_GROUPS,
    OCCUPATION_GROUPS_TABLE,
    PRICE_SEGMENTS,
    PRICE_UNKNOWN,
)
from segment_pipeline.logic.clv import (
    CLV_BY_SEGMENT,
    CLV_CUSTOMER_PREDICTIONS,
    CLV_MODEL_FIT,
    MODELS_NOT_FITTED_SQL,
    PREDICTION_HORIZON_SQL,
)
from segment_pipeline.logic.dynamics import (
    CATEGORY_TIER_CHANGES_SQL,
    CATEGORY_TIER_SNAPSHOTS,
    CUSTOMER_SNAPSHOTS,
    EXPERIMENT_SIZING,
    SEGMENT_TRANSITIONS,
    SNAPSHOT_MONTHS_SQL,
)
from segment_pipeline.logic.figure_names import png
from segment_pipeline.logic.preference import SEGMENT_CATEGORY_PREFERENCE
from segment_pipeline.logic.rfm import RFM_SUMMARY
from segment_pipeline.logic.strategy import ACTION_SEPARATOR, SEGMENT_STRATEGY, STRATEGY_SUMMARY
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import Column, TableDef, read_table, scalar

REPORT_NAME = "insights_report.md"

INSIGHTS_REPORT = TableDef(
    schema="marts",
    name="insights_report",
    description="The analyst report as Markdown (the same text as the file), with its hash.",
    columns=(
        Column("name", "VARCHAR", "File name of the report", nullable=False),
        Column("markdown", "VARCHAR", "The report (Markdown; figures linked by relative path)"),
        Column("sha256", "VARCHAR", "SHA-256 of the Markdown text (UTF-8)"),
        Column("file_path", "VARCHAR", "Where the Markdown file was written"),
        Column("rfm_section", "BOOLEAN", "True when the RFM tables were present and reported"),
    ),
    primary_key=("name",),
)

#: (file name, caption) of the figures the report embeds, in report order.
REPORT_FIGURES: tuple[tuple[str, str], ...] = (
    (png(names.PURCHASE_DISTRIBUTION), "Line amounts, raw and log1p, with the price clusters"),
    (png(names.OCCUPATION_GROUPS), "Occupation groups"),
    (png(names.PRICE_SEGMENTS), "Price segments of the categories"),
    (png(names.SEGMENT_VALUE_MAP), "Behavioural segments: customers, AOV and gross sales"),
    (png(names.STRATEGY_SUMMARY), "Strategy classes: customer share vs revenue share"),
)


@dataclass
class ReportInputs:
    """Everything the report shows, as read from the warehouse."""

    headline: Mapping[str, Any]
    demographics: Mapping[str, Any]
    distribution: pd.DataFrame
    occupation_groups: pd.DataFrame
    price_segments: pd.DataFrame
    segments: pd.DataFrame
    strategy_summary: pd.DataFrame
    min_customers_per_occupation: int
    top_n: int = 10
    last_purchase_days: int | None = None
    rfm_summary: pd.DataFrame | None = None
    rfm_preferences: pd.DataFrame | None = None
    rfm_actions: Mapping[str, str] = field(default_factory=dict)
    missing_rfm_tables: Sequence[str] = ()
    clv_by_segment: pd.DataFrame | None = None
    clv_horizon_months: int | None = None
    clv_not_fitted: Mapping[str, str] = field(default_factory=dict)
    dynamics: DynamicsInputs | None = None


# --------------------------------------------------------------------------------------------
# Reading the warehouse
# --------------------------------------------------------------------------------------------

HEADLINE_SQL = load_sql("report/headline")

#: How many distinct last-purchase days customers have: 1 means every customer has the same
#: recency (e.g. Black Friday data loaded as one day), so RFM recency carries no information.
LAST_PURCHASE_DAYS_SQL = load_sql("report/last_purchase_days")

DEMOGRAPHICS_SQL = load_sql("report/demographics")

#: The rows of purchase_distribution but the histograms.
DISTRIBUTION_MEASURES_SQL = load_sql("report/distribution_measures")

#: The transitions of the latest pair of months (every dimension).
LATEST_TRANSITIONS_SQL = load_sql("dynamics/latest_transitions")


def table_columns(conn: duckdb.DuckDBPyConnection, table: TableDef) -> list[str]:
    """Column names of a table (empty when it does not exist)."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = "
        "current_database() AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [table.schema, table.name],
    ).fetchall()
    return [r[0] for r in rows]


RFM_SUMMARY_COLUMNS = ("segment", "customers", "customer_share", "revenue_share")
RFM_PREFERENCE_COLUMNS = ("segment", "category", "preference_index")
CLV_COLUMNS = (
    "dimension",
    "segment",
    "segment_order",
    "customers",
    "total_clv",
    "mean_clv",
    "clv_share",
    "mean_p_alive",
)
CLV_FIGURE = (png(names.CLV_BY_SEGMENT), "Predicted CLV by RFM segment, strategy class and segment")


@dataclass(frozen=True)
class ClvInputs:
    """What the report reads from the CLV layer (all None / empty without it)."""

    by_segment: pd.DataFrame | None = None
    horizon_months: int | None = None
    #: model label (BG/NBD, Gamma-Gamma) -> why it was not fitted (marts.clv_model_fit)
    not_fitted: Mapping[str, str] = field(default_factory=dict)


CLV_MODEL_LABELS = {"bgnbd": "BG/NBD", "gamma_gamma": "Gamma-Gamma"}


def collect_clv(conn: duckdb.DuckDBPyConnection) -> ClvInputs:
    """marts.clv_by_segment, the prediction horizon and the models not fitted (with the
    reason), or an empty ClvInputs without the CLV layer."""
    if not all(c in table_columns(conn, CLV_BY_SEGMENT) for c in CLV_COLUMNS):
        return ClvInputs()
    frame = read_table(conn, CLV_BY_SEGMENT)
    horizon = None
    if "horizon_months" in table_columns(conn, CLV_CUSTOMER_PREDICTIONS):
        horizon = scalar(conn, PREDICTION_HORIZON_SQL)
    not_fitted: dict[str, str] = {}
    if "not_fitted_reason" in table_columns(conn, CLV_MODEL_FIT):
        rows = conn.execute(MODELS_NOT_FITTED_SQL).fetchall()
        not_fitted = {CLV_MODEL_LABELS.get(m, m): str(r) for m, r in rows}
    return ClvInputs(frame, int(horizon) if horizon is not None else None, not_fitted)


DYNAMICS_TRANSITION_COLUMNS = (
    "from_month",
    "to_month",
    "dimension",
    "from_state",
    "to_state",
    "direction",
    "customers",
    "row_share",
    "revenue_from_month",
    "revenue_to_month",
    "lapse_days",
)
DYNAMICS_SIZING_COLUMNS = (
    "strategy_class",
    "outcome",
    "customers_available",
    "baseline_rate",
    "target_rate",
    "n_per_arm",
    "verdict",
    "relative_uplift",
    "alpha",
    "power",
    "baseline_months",
)
DYNAMICS_FIGURES: tuple[tuple[str, str], ...] = (
    (png(names.SEGMENT_MIGRATION), "RFM segment migration since last month"),
    (png(names.SEGMENT_SHARE_OVER_TIME), "RFM segment shares, month by month"),
    (png(names.PRICE_TIER_FLOW), "Price-tier migration"),
)


@dataclass(frozen=True)
class DynamicsInputs:
    """What the report reads from the dynamics layer."""

    months: Sequence[Any]
    """The stored snapshot months (first days), ascending."""
    last_pair: pd.DataFrame
    """marts.segment_transitions rows of the latest pair of consecutive months (every
    dimension); empty without two consecutive snapshots."""
    sizing: pd.DataFrame
    """marts.experiment_sizing."""
    tier_changes: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Categories whose price tier changed in the latest pair's later month."""


def collect_dynamics(conn: duckdb.DuckDBPyConnection) -> DynamicsInputs | None:
    """The dynamics layer's tables (None without them)."""
    transitions = table_columns(conn, SEGMENT_TRANSITIONS)
    sizing_cols = table_columns(conn, EXPERIMENT_SIZING)
    if not (
        all(c in transitions for c in DYNAMICS_TRANSITION_COLUMNS)
        and all(c in sizing_cols for c in DYNAMICS_SIZING_COLUMNS)
        and "snapshot_month" in table_columns(conn, CUSTOMER_SNAPSHOTS)
    ):
        return None
    months = [r[0] for r in conn.execute(SNAPSHOT_MONTHS_SQL).fetchall()]
    last_pair = conn.execute(LATEST_TRANSITIONS_SQL).df()
    sizing = read_table(conn, EXPERIMENT_SIZING, order_by="class_order, action_number")
    changes = pd.DataFrame()
    if not last_pair.empty and table_columns(conn, CATEGORY_TIER_SNAPSHOTS):
        changes = conn.execute(
            f"SELECT * FROM ({CATEGORY_TIER_CHANGES_SQL}) WHERE to_month = ?",
            [last_pair["to_month"].iloc[0]],
        ).df()
    return DynamicsInputs(months, last_pair, sizing, changes)


def collect_report_inputs(
    conn: duckdb.DuckDBPyConnection,
    *,
    min_customers_per_occupation: int,
    rfm_actions: Mapping[str, str],
    top_n: int = 10,
) -> ReportInputs:
    """Read everything the report needs (small queries only)."""
    headline = conn.execute(HEADLINE_SQL).df().iloc[0].to_dict()
    demographics = conn.execute(DEMOGRAPHICS_SQL).df().iloc[0].to_dict()
    last_days = scalar(conn, LAST_PURCHASE_DAYS_SQL)
    dist = conn.execute(DISTRIBUTION_MEASURES_SQL).df()
    occupation = read_table(conn, OCCUPATION_GROUPS_TABLE)
    prices = read_table(conn, CATEGORY_PRICE_SEGMENTS)
    segments = read_table(conn, SEGMENT_STRATEGY, order_by="sales_rank")
    summary = read_table(conn, STRATEGY_SUMMARY, order_by="class_order")

    missing: list[str] = []
    rfm_summary = rfm_preferences = None
    summary_cols = table_columns(conn, RFM_SUMMARY)
    if all(c in summary_cols for c in RFM_SUMMARY_COLUMNS):
        order = "segment_order, segment" if "segment_order" in summary_cols else "segment"
        rfm_summary = read_table(conn, RFM_SUMMARY, order_by=order)
    else:
        missing.append(RFM_SUMMARY.fqn)
    pref_cols = table_columns(conn, SEGMENT_CATEGORY_PREFERENCE)
    if all(c in pref_cols for c in RFM_PREFERENCE_COLUMNS):
        rfm_preferences = read_table(conn, SEGMENT_CATEGORY_PREFERENCE)
    else:
        missing.append(SEGMENT_CATEGORY_PREFERENCE.fqn)
    clv_inputs = collect_clv(conn)
    return ReportInputs(
        headline=headline,
        demographics=demographics,
        distribution=dist,
        occupation_groups=occupation,
        price_segments=prices,
        segments=segments,
        strategy_summary=summary,
        min_customers_per_occupation=min_customers_per_occupation,
        top_n=top_n,
        last_purchase_days=int(last_days) if last_days is not None else None,
        rfm_summary=rfm_summary,
        rfm_preferences=rfm_preferences,
        rfm_actions=rfm_actions,
        missing_rfm_tables=missing,
        clv_by_segment=clv_inputs.by_segment,
        clv_horizon_months=clv_inputs.horizon_months,
        clv_not_fitted=clv_inputs.not_fitted,
        dynamics=collect_dynamics(conn),
    )


# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def money(value: Any, whole_from: float = 10_000) -> str:
    """An amount in the data's currency units: with cents below `whole_from`, whole units from
    it (the report's tables use 10,000; figure labels, short of room, 100)."""
    if _missing(value):
        return "n/a"
    value = float(value)
    return f"{value:,.0f}" if abs(value) >= whole_from else f"{value:,.2f}"


def money_short(value: float) -> str:
    """An amount in thousands or millions for tight labels: `1.6M`, `12.3k`, `950`."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:,.1f}{suffix}"
    return f"{value:,.0f}"


def pct(value: Any, digits: int = 1) -> str:
    """A share as a percentage; small non-zero shares get more decimals than would show 0.0%."""
    if _missing(value):
        return "n/a"
    value = float(value)
    while digits < 3 and value != 0 and abs(100 * value) < 10**-digits:
        digits += 1
    return f"{100 * value:.{digits}f}%"


def count(value: Any) -> str:
    return "n/a" if _missing(value) else f"{int(value):,}"


def ratio(value: Any) -> str:
    return "n/a" if _missing(value) else f"{float(value):.2f}x"


def _date(value: Any) -> str:
    if _missing(value):
        return "n/a"
    return pd.Timestamp(value).date().isoformat()


def skew_words(skewness: float) -> str:
    """Conventional reading of a skewness value (|g| < 0.5 roughly symmetric, < 1 moderate)."""
    size = abs(skewness)
    if size < 0.5:
        return "roughly symmetric"
    side = "right" if skewness > 0 else "left"
    return f"{'moderately' if size < 1 else 'strongly'} {side}-skewed"


GENDER_WORDS = {"M": "Men", "F": "Women"}


def describe_segment(row: Mapping[str, Any]) -> str:
    """Plain-language description of a behavioural segment, e.g. `Men aged 26-35 in Occ_High
    occupations buying mostly Price_High categories`."""
    gender = GENDER_WORDS.get(str(row["gender"]), "Customers of unknown gender")
    age = str(row["age_band"])
    age_text = "of unknown age" if age == "Unknown" else f"aged {age}"
    occ = str(row["occupation_group"])
    occ_text = (
        "in rare or unknown occupations (Occ_Other)"
        if occ == OCC_OTHER
        else f"in {occ} occupations"
    )
    if row["price_segment"] == PRICE_UNKNOWN:
        return f"{gender} {age_text} {occ_text} buying only products without a category"
    return f"{gender} {age_text} {occ_text} buying mostly {row['price_segment']} categories"


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(none)_"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join(str(v).replace("|", "/") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def _label(value: Any, kind: str) -> str:
    text = str(value)
    return f"{kind} {text}" if text.isdigit() else text


def _figure(name: str, caption: str, embed_images: bool) -> str:
    if embed_images:
        return f"![{caption}]({name})"
    return f"_Figure: {caption} (`{name}`, next to this report and in the figures assets)._"


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def render_report(inputs: ReportInputs, *, embed_images: bool = True) -> str:
    """The Markdown report. `embed_images=False` replaces the image links by captions (for
    places where relative links cannot resolve, e.g. the Dagster UI metadata)."""
    figures = dict(REPORT_FIGURES)
    parts: list[str] = ["# Customer insights report", ""]
    parts += _headline_section(inputs)
    parts += _distribution_section(inputs, figures, embed_images)
    parts += _segments_section(inputs, figures, embed_images)
    parts += _strategy_section(inputs, figures, embed_images)
    parts += _rfm_section(inputs)
    parts += _clv_section(inputs, embed_images)
    parts += _dynamics_section(inputs, embed_images)
    parts += _method_section(inputs)
    return "\n".join(parts).rstrip() + "\n"


def _headline_section(inputs: ReportInputs) -> list[str]:
    h = inputs.headline
    orders = h.get("orders")
    aov = float(h["revenue"]) / float(orders) if not _missing(orders) and orders else None
    rows = pd.DataFrame(
        [
            (
                "Period",
                f"{_date(h.get('first_day'))} to {_date(h.get('last_day'))} "
                f"({count(h.get('sales_days'))} "
                f"{'day' if h.get('sales_days') == 1 else 'days'} with sales)",
            ),
            ("Customers with a sale", count(h.get("customers"))),
            ("Orders", count(orders)),
            ("Sale lines", count(h.get("lines"))),
            ("Gross sales", money(h.get("revenue"))),
            ("Average order value", money(aov)),
            ("Products / categories", f"{count(h.get('products'))} / {count(h.get('categories'))}"),
        ],
        columns=["", "value"],
    )
    out = ["## Headline numbers", "", _md_table(rows), ""]
    notes = _data_notes(inputs)
    if notes:
        out += ["**Data notes**", "", *[f"- {n}" for n in notes], ""]
    return out


def _data_notes(inputs: ReportInputs) -> list[str]:
    notes = []
    d = inputs.demographics
    unknown = int(d.get("unknown_customers") or 0)
    customers = int(d.get("customers") or 0)
    if unknown:
        no_profile = int(d.get("no_profile_customers") or 0)
        notes.append(
            f"{count(unknown)} of {count(customers)} customers "
            f"({pct(unknown / customers if customers else None)}; "
            f"{pct(d.get('unknown_revenue_share'))} of gross sales) have an Unknown age band, "
            f"gender or occupation ({count(no_profile)} have no profile at all). They stay in "
            "the analysis, in segments labelled Unknown; the Unknown occupation is grouped as "
            "Occ_Other."
        )
    else:
        notes.append(
            f"All {count(customers)} customers have complete demographics (no "
            "Unknown age band, gender or occupation)."
        )
    unpriced = _unpriced_note(inputs)
    if unpriced:
        notes.append(unpriced)
    h = inputs.headline
    if not _missing(h.get("orders")) and h.get("orders") == h.get("lines"):
        notes.append(
            "Every order has exactly one line (the data has no order ids, or only "
            "single-line orders), so AOV here is the average line amount."
        )
    if inputs.last_purchase_days == 1:
        notes.append(
            f"Every customer's last purchase is on the same day ({_date(h.get('last_day'))}), "
            "so recency is identical for all customers: RFM segments can only differ by "
            "purchase frequency, and this report reads no recency differences into them."
        )
    return notes


def _unpriced_note(inputs: ReportInputs) -> str | None:
    """What the lines without a category hold, and who bought nothing else (None without such
    lines)."""
    prices = inputs.price_segments
    part = prices[prices["price_segment"] == PRICE_UNKNOWN]
    if part.empty:
        return None
    revenue = inputs.headline.get("revenue")
    sales = part["gross_sales"].sum() if "gross_sales" in part else None
    share = sales / revenue if not _missing(sales) and not _missing(revenue) and revenue else None
    seg = inputs.segments
    only = int(seg.loc[seg["price_segment"] == PRICE_UNKNOWN, "customers"].sum())
    who = (
        "no customer bought only such lines"
        if only == 0
        else f"{count(only)} customer{'s' if only > 1 else ''} bought only such lines and "
        f"{'have' if only > 1 else 'has'} the price segment Unknown"
    )
    return (
        f"{pct(share)} of gross sales is on lines without a category (Unknown): they take no "
        f"price tier and do not decide a customer's price segment; {who}."
    )


def _distribution_section(inputs: ReportInputs, figures: dict[str, str], embed: bool) -> list[str]:
    dist = inputs.distribution

    def stat(measure: str, name: str) -> Any:
        hit = dist[(dist["measure"] == measure) & (dist["name"] == name)]
        return None if hit.empty else hit["value"].iloc[0]

    clusters = dist[dist["measure"] == "cluster"].sort_values("log1p_value")
    cluster_text = ", ".join(
        f"≈{money(c['value'])} ({pct(c['share'], 0)} of lines, {money(c['lower'])} to "
        f"{money(c['upper'])})"
        for _, c in clusters.iterrows()
    )
    out = ["## Purchase amounts", ""]
    skew_raw, skew_log = stat("skewness", "raw"), stat("skewness", "log1p")
    if _missing(skew_raw) or _missing(skew_log):
        out.append("Too few sale lines to describe the distribution.")
    else:
        out.append(
            f"Line amounts are {skew_words(skew_raw)} (skewness {skew_raw:.2f}); after log1p "
            f"the skewness is {skew_log:.2f}. The median line is "
            f"{money(stat('quantile', 'p50'))}, the 90th percentile "
            f"{money(stat('quantile', 'p90'))} and the 99th {money(stat('quantile', 'p99'))} "
            f"(mean {money(stat('summary', 'mean'))}). Large purchases are treated as real "
            "behaviour, not outliers: segments use spend as it is, and log1p wherever amounts "
            "are averaged (occupation groups)."
        )
    out.append("")
    if not clusters.empty:
        out.append(
            f"A Gaussian mixture on log1p(amount) (components chosen by BIC) finds "
            f"{len(clusters)} price cluster(s), each given by its centre: {cluster_text}."
        )
        out.append("")
    out += [
        _figure(png(names.PURCHASE_DISTRIBUTION), figures[png(names.PURCHASE_DISTRIBUTION)], embed),
        "",
    ]
    return out


def _segments_section(inputs: ReportInputs, figures: dict[str, str], embed: bool) -> list[str]:
    seg = inputs.segments
    out = ["## Behavioural segments: where the revenue is", ""]
    if seg.empty:
        return [*out, "No behavioural segments (no sale lines).", ""]
    top = seg.sort_values("sales_rank").iloc[0]
    out.append(
        f"**{describe_segment(top)} produce {pct(top['revenue_share'])} of gross sales** "
        f"({money(top['gross_sales'])}) from {pct(top['customer_share'])} of customers "
        f"({count(top['customers'])}): {ratio(top['value_index'])} their share of customers, "
        f"with an AOV of {money(top['aov'])}. It is the largest of {count(len(seg))} "
        f"behavioural segments (age band x gender x occupation group x price segment) and a "
        f"**{top['strategy_class']}** segment."
    )
    out.append("")
    n = min(inputs.top_n, len(seg))
    head = seg.sort_values("sales_rank").head(n)
    out.append(
        f"The top {n} segments hold {pct(head['revenue_share'].sum())} of gross sales "
        f"with {pct(head['customer_share'].sum())} of customers:"
    )
    out.append("")
    table = pd.DataFrame(
        {
            "#": head["sales_rank"].map(count),
            "age band": head["age_band"],
            "gender": head["gender"],
            "occupation group": head["occupation_group"],
            "price segment": head["price_segment"],
            "class": head["strategy_class"],
            "customers": head["customers"].map(count),
            "customer share": head["customer_share"].map(pct),
            "gross sales": head["gross_sales"].map(money),
            "revenue share": head["revenue_share"].map(pct),
            "AOV": head["aov"].map(money),
            "revenue / customer share": head["value_index"].map(ratio),
        }
    )
    out += [_md_table(table), ""]
    out += _groups_text(inputs)
    out += [
        _figure(png(names.SEGMENT_VALUE_MAP), figures[png(names.SEGMENT_VALUE_MAP)], embed),
        "",
        _figure(png(names.OCCUPATION_GROUPS), figures[png(names.OCCUPATION_GROUPS)], embed),
        "",
        _figure(png(names.PRICE_SEGMENTS), figures[png(names.PRICE_SEGMENTS)], embed),
        "",
    ]
    return out


def _groups_text(inputs: ReportInputs) -> list[str]:
    occ = inputs.occupation_groups
    prices = inputs.price_segments
    out = ["**How the dimensions were built**", ""]
    for group in OCCUPATION_GROUPS:
        part = occ[occ["occupation_group"] == group].sort_values(
            ["mean_log1p_amount", "occupation"]
        )
        if part.empty:
            continue
        codes = ", ".join(str(o) for o in part["occupation"])
        if group == OCC_OTHER:
            out.append(
                f"- {group}: occupation code(s) {codes} ({count(part['customers'].sum())} "
                f"customers; fewer than {inputs.min_customers_per_occupation} customers "
                "per code, or Unknown)."
            )
        else:
            lo, hi = part["typical_line_amount"].min(), part["typical_line_amount"].max()
            out.append(
                f"- {group}: occupation codes {codes} ({count(part['customers'].sum())} "
                f"customers; typical line amount {money(lo)} to {money(hi)})."
            )
    for segment in reversed(PRICE_SEGMENTS):
        part = prices[prices["price_segment"] == segment].sort_values(
            ["median_line_amount", "category"], ascending=[False, True]
        )
        if part.empty:
            continue
        names = ", ".join(_label(c, "Category") for c in part["category"])
        out.append(
            f"- {segment}: {names} (median line amount "
            f"{money(part['median_line_amount'].min())} to "
            f"{money(part['median_line_amount'].max())})."
        )
    if (prices["price_segment"] == PRICE_UNKNOWN).any():
        out.append("- Unknown (lines without a category): no price tier; not part of the terciles.")
    out.append("")
    return out


def _strategy_section(inputs: ReportInputs, figures: dict[str, str], embed: bool) -> list[str]:
    summary = inputs.strategy_summary.sort_values("class_order")
    seg = inputs.segments
    out = ["## Strategy: Defend, Grow, Expand", ""]
    table = pd.DataFrame(
        {
            "class": summary["strategy_class"],
            "segments": summary["segments"].map(count),
            "customers": summary["customers"].map(count),
            "customer share": summary["customer_share"].map(pct),
            "gross sales": summary["gross_sales"].map(money),
            "revenue share": summary["revenue_share"].map(pct),
            "AOV": summary["aov"].map(money),
            "revenue / customer share": summary["value_index"].map(ratio),
        }
    )
    out += [
        _md_table(table),
        "",
        _figure(png(names.STRATEGY_SUMMARY), figures[png(names.STRATEGY_SUMMARY)], embed),
        "",
    ]
    for _, cls in summary.iterrows():
        name = cls["strategy_class"]
        members = seg[seg["strategy_class"] == name].sort_values("sales_rank")
        out += [f"### {name}", "", f"**Goal:** {cls['goal']}", ""]
        if cls.get("description"):
            out += [str(cls["description"]), ""]
        if members.empty:
            out += ["No segment falls in this class on this data.", ""]
        else:
            shown = members.head(5)
            out.append(
                f"{count(len(members))} segment(s), {count(cls['customers'])} "
                f"{'customer' if int(cls['customers']) == 1 else 'customers'}, "
                f"{pct(cls['revenue_share'])} of gross sales. Largest by gross sales:"
            )
            out.append("")
            for _, m in shown.iterrows():
                out.append(
                    f"- {m['segment']}: {count(m['customers'])} "
                    f"{'customer' if int(m['customers']) == 1 else 'customers'}, "
                    f"{pct(m['revenue_share'])} of gross sales, AOV {money(m['aov'])}"
                )
            if len(members) > len(shown):
                out.append(
                    f"- … and {count(len(members) - len(shown))} more (see marts.segment_strategy)"
                )
            out.append("")
        actions = [a for a in str(cls.get("actions") or "").split(ACTION_SEPARATOR) if a]
        if actions:
            out += ["**Playbook:**", "", *[f"- {a}" for a in actions], ""]
    return out


def _preferred_categories(prefs: pd.DataFrame, segment: str, k: int = 3) -> str:
    """The segment's top categories by (shrunk, when available) preference index above 1,
    ignoring low-support cells."""
    part = prefs[prefs["segment"] == segment]
    if "low_support" in part:
        part = part[~part["low_support"].fillna(False).astype(bool)]
    index_col = "shrunk_index" if "shrunk_index" in part else "preference_index"
    part = (
        part[part[index_col] > 1]
        .sort_values([index_col, "category"], ascending=[False, True])
        .head(k)
    )
    if part.empty:
        return "no category above average"
    return ", ".join(
        f"{_label(r['category'], 'Category')} ({float(r[index_col]):.2f})"
        for _, r in part.iterrows()
    )


def _rfm_section(inputs: ReportInputs) -> list[str]:
    out = ["## RFM segments: preferred categories and actions", ""]
    if inputs.rfm_summary is None or inputs.rfm_preferences is None:
        missing = ", ".join(inputs.missing_rfm_tables) or "the RFM tables"
        return [
            *out,
            f"The RFM tables are not in the warehouse ({missing}); materialize the "
            "RFM and segment preference assets to add this section.",
            "",
        ]
    degenerate = inputs.last_purchase_days == 1
    if degenerate:
        out += [
            "Recency is the same for every customer in this data (one purchase day), so "
            "the RFM segments below differ only by purchase frequency. Their names (At "
            "Risk, Hibernating, ...) describe recency this data does not have: read them "
            "as frequency groups, not as recent versus lapsed customers. Recency-based "
            "actions are therefore not recommended here; use the strategy classes above.",
            "",
        ]
    prefs = inputs.rfm_preferences
    index_col = "shrunk index" if "shrunk_index" in prefs else "preference index"
    populated = inputs.rfm_summary[inputs.rfm_summary["customers"].fillna(0) > 0]
    empty = inputs.rfm_summary.loc[inputs.rfm_summary["customers"].fillna(0) <= 0, "segment"]
    rows = []
    for _, s in populated.iterrows():
        row = {
            "segment": s["segment"],
            "customers": count(s["customers"]),
            "customer share": pct(s["customer_share"]),
            "revenue share": pct(s["revenue_share"]),
            "AOV": money(s["aov"]) if "aov" in s else "n/a",
            f"preferred categories ({index_col})": _preferred_categories(prefs, s["segment"]),
        }
        if not degenerate:
            row["recommended action"] = inputs.rfm_actions.get(str(s["segment"]), "—")
        rows.append(row)
    out += [
        f"Preferred categories: the segment's top three categories by {index_col} above 1 "
        "(its share of spend in the category over the category's share of all spend; "
        "cells with too few customers are left out).",
        "",
        _md_table(pd.DataFrame(rows)),
        "",
    ]
    if len(empty):
        out += [f"No customers in: {', '.join(str(e) for e in empty)}.", ""]
    return out


def _clv_table(frame: pd.DataFrame, dimension: str, label: str, top: int | None) -> str:
    rows = frame[frame["dimension"] == dimension]
    if top is None:
        rows = rows.sort_values(["segment_order", "segment"])
    else:
        rows = rows.sort_values(["total_clv", "segment"], ascending=[False, True]).head(top)
    table = pd.DataFrame(
        {
            label: rows["segment"],
            "customers": rows["customers"].map(count),
            "predicted CLV": rows["total_clv"].map(money),
            "CLV share": rows["clv_share"].map(pct),
            "CLV / customer": rows["mean_clv"].map(money),
            "mean P(alive)": rows["mean_p_alive"].map(pct),
        }
    )
    return _md_table(table)


def _clv_section(inputs: ReportInputs, embed: bool) -> list[str]:
    """Predicted value per strategy class, RFM segment and top behavioural segments; nothing
    when the CLV tables do not exist, the reason when the models could not be fitted."""
    frame = inputs.clv_by_segment
    not_fitted = dict(inputs.clv_not_fitted)
    if frame is None or (frame.empty and not not_fitted):
        return []
    notes = list(not_fitted.values())  # each reason names its model
    if frame.empty:
        return [
            "## Value by segment and class",
            "",
            "CLV not available: the model was not fitted, so there are no predictions "
            "(docs/clv.md).",
            "",
            *[f"- {note}" for note in notes],
            "",
        ]
    months = inputs.clv_horizon_months
    horizon = f"the next {months} months" if months else "the prediction horizon"
    total = frame.loc[frame["dimension"] == "strategy_class", "total_clv"].sum()
    customers = frame.loc[frame["dimension"] == "strategy_class", "customers"].sum()
    spend = "Gamma-Gamma spend per purchase day"
    caveat: list[str] = []
    if "Gamma-Gamma" in not_fitted:
        spend = "each customer's own mean spend per purchase day"
        caveat = [
            f"Note: Gamma-Gamma was not fitted ({not_fitted['Gamma-Gamma']}); the expected "
            "spend per purchase day is therefore the customer's own mean in the window (no "
            "shrinkage towards the population mean).",
            "",
        ]
    return [
        "## Value by segment and class",
        "",
        f"Predicted customer lifetime value (CLV) over {horizon}: {money(total)} from "
        f"{count(customers)} customers (BG/NBD purchase days x {spend}, discounted monthly; "
        "docs/clv.md). P(alive) is the probability that a customer is still active at the "
        "end of the data.",
        "",
        *caveat,
        "**By strategy class**",
        "",
        _clv_table(frame, "strategy_class", "class", None),
        "",
        "**By RFM segment**",
        "",
        _clv_table(frame, "rfm_segment", "segment", None),
        "",
        "**Most valuable behavioural segments**",
        "",
        _clv_table(frame, "behavioural_segment", "segment", inputs.top_n),
        "",
        _figure(*CLV_FIGURE, embed),
        "",
    ]


def _month(value: Any) -> str:
    return "n/a" if _missing(value) else pd.Timestamp(value).strftime("%b %Y")


def _sizing_table(sizing: pd.DataFrame) -> str:
    per_class = sizing.drop_duplicates("strategy_class")
    actions = sizing.groupby("strategy_class")["action"].count()
    table = pd.DataFrame(
        {
            "class": per_class["strategy_class"],
            "actions": [int(actions.get(c, 0)) for c in per_class["strategy_class"]],
            "outcome (monthly)": per_class["outcome"].fillna("n/a"),
            "customers available": per_class["customers_available"].map(count),
            "baseline rate": per_class["baseline_rate"].map(pct),
            "target rate": per_class["target_rate"].map(pct),
            "per arm": per_class["n_per_arm"].map(count),
            "verdict": per_class["verdict"],
        }
    )
    return _md_table(table)


def _dynamics_section(inputs: ReportInputs, embed: bool) -> list[str]:
    """What changed between the last two monthly snapshots, and the experiment table; nothing
    without the dynamics tables."""
    dyn = inputs.dynamics
    if dyn is None:
        return []
    out = ["## What changed since last month", ""]
    months = list(dyn.months)
    if not months:
        return [*out, "No monthly snapshot yet (docs/dynamics.md).", ""]
    span = f"{_month(months[0])} to {_month(months[-1])}" if len(months) > 1 else _month(months[0])
    out += [
        f"Monthly snapshots: {span} ({len(months)} month{'s' if len(months) != 1 else ''}; "
        "each customer's RFM segment and price tier as of the month's end, docs/dynamics.md).",
        "",
    ]
    pair = dyn.last_pair
    if pair.empty:
        lead = (
            f"Only one monthly snapshot ({_month(months[-1])})"
            if len(months) == 1
            else "No two consecutive monthly snapshots"
        )
        out += [
            f"{lead}: the month-to-month comparison starts when the next month's snapshot exists.",
            "",
        ]
    else:
        out += _changes(pair, dyn.tier_changes)
        for name, caption in DYNAMICS_FIGURES:
            out += [_figure(name, caption, embed), ""]
    sizing = dyn.sizing
    if not sizing.empty:
        first = sizing.iloc[0]
        pooled = int(sizing["baseline_months"].max() or 0)
        baseline = (
            f"baselines pooled over the latest {pooled} month-to-month "
            f"transition{'s' if pooled != 1 else ''}"
            if pooled
            else "no baseline yet: it needs the snapshots of two consecutive months"
        )
        out += [
            "**Experiment sizing**",
            "",
            f"Customers per arm (one playbook action against a control group) to detect a "
            f"{pct(first['relative_uplift'], 0)} relative uplift of the monthly outcome rate "
            f"with {pct(first['power'], 0)} power at a two-sided {pct(first['alpha'], 0)} "
            f"level (two-proportion z-test on Cohen's h); {baseline}. For "
            "staying active the uplift is a relative cut of the lapse rate. Each action of a "
            "class is sized the same (marts.experiment_sizing has one row per action).",
            "",
            _sizing_table(sizing),
            "",
        ]
    return out


def _changes(pair: pd.DataFrame, tier_changes: pd.DataFrame) -> list[str]:
    """The bullet points and the largest moves of the last month-to-month transition."""
    from_month, to_month = pair["from_month"].iloc[0], pair["to_month"].iloc[0]
    rfm = pair[pair["dimension"] == "rfm_segment"]
    tiers = pair[pair["dimension"] == "price_tier"]
    activity = pair[pair["dimension"] == "activity"]

    def total(rows: pd.DataFrame, **where: str) -> int:
        for column, value in where.items():
            rows = rows[rows[column] == value]
        return int(rows["customers"].sum())

    before = int(rfm.loc[rfm["from_state"] != "(entered)", "customers"].sum())
    after = int(rfm.loc[rfm["to_state"] != "(left)", "customers"].sum())
    moved = rfm[rfm["direction"] == "moved"]
    lapse_days = int(pair["lapse_days"].iloc[0])
    active = int(activity.loc[activity["to_state"] == "active", "customers"].sum())
    lines = [
        f"From the end of {_month(from_month)} to the end of {_month(to_month)}:",
        "",
        f"- Customers: {count(before)} -> {count(after)}; {count(total(rfm, direction='entered'))}"
        f" entered (first purchase in the window), {count(total(rfm, direction='left'))} left "
        "the RFM window.",
        f"- Activity (lapsed = no purchase in the last {lapse_days} days): "
        f"{count(total(activity, direction='lapsed'))} lapsed, "
        f"{count(total(activity, direction='reactivated'))} came back; {count(active)} of "
        f"{count(after)} are active.",
        f"- RFM segments: {count(moved['customers'].sum())} of {count(before)} customers "
        f"({pct(moved['customers'].sum() / before if before else None)}) changed segment; "
        f"they spent {money(moved['revenue_from_month'].sum())} in {_month(from_month)} and "
        f"{money(moved['revenue_to_month'].sum())} in {_month(to_month)}.",
        f"- Price tiers: {count(total(tiers, direction='up'))} moved up a tier, "
        f"{count(total(tiers, direction='down'))} moved down.",
    ]
    if not tier_changes.empty:
        retiered = "; ".join(
            f"{r.category} {r.from_tier} -> {r.to_tier}" for r in tier_changes.itertuples()
        )
        lines.append(
            f"- Categories that changed tier this month (their buyers move with them, without "
            f"buying anything different): {retiered}."
        )
    top = moved.sort_values(["customers", "from_state", "to_state"], ascending=[False, True, True])
    table = pd.DataFrame(
        {
            "from": top["from_state"],
            "to": top["to_state"],
            "customers": top["customers"].map(count),
            "share of from": top["row_share"].map(pct),
            f"spend {_month(from_month)}": top["revenue_from_month"].map(money),
            f"spend {_month(to_month)}": top["revenue_to_month"].map(money),
        }
    ).head(8)
    return [*lines, "", "**Largest segment moves**", "", _md_table(table), ""]


def _method_section(inputs: ReportInputs) -> list[str]:
    return [
        "## Method",
        "",
        "- Occupation groups: occupation codes with at least "
        f"{inputs.min_customers_per_occupation} customers are ranked by mean log1p(line amount) "
        "and split into terciles (tier = 1 + floor(3 (rank - 1) / n), equal means share the "
        "lower tier); the rest, and Unknown, are Occ_Other.",
        "- Price segments: categories split into terciles of their median line amount (same "
        "rule); lines without a category (Unknown) take no tier. A customer's price segment is "
        "the one holding most of their spend in tiered categories; on an exact tie the higher "
        "tier wins; a customer with no such spend is Unknown.",
        "- Behavioural segment = age band x gender x occupation group x price segment; AOV = "
        "gross sales / distinct orders; revenue share sums to 1.",
        "- Strategy classes come from the rule table (occupation group x price segment; every "
        "cell exactly one class). Details: docs/behaviour_and_strategy.md.",
        "- Sources: staging.sales_lines (headline numbers) and marts.purchase_distribution, "
        "occupation_groups, category_price_segments, customer_behaviour, segment_strategy, "
        "strategy_summary, rfm_summary, segment_category_preference.",
        "",
    ]


def report_sha256(markdown: str) -> str:
    return hashlib.sha256(markdown.encode("utf-8")).hexdigest()
