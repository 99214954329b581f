"""The insights report: Markdown from hand-built frames. Every number checked below is one of
the inputs (or a hand-computed ratio of them), never the report's own output."""

from __future__ import annotations

import pandas as pd
import pytest

from segment_pipeline.logic.report import (
    HEADLINE_SQL,
    REPORT_FIGURES,
    ReportInputs,
    describe_segment,
    money,
    pct,
    render_report,
    skew_words,
)
from segment_pipeline.logic.strategy import load_rule_table
from segment_pipeline_tests.test_rfm import make_staging


def _segment(
    rank, age, gender, occ, price, cls, customers, orders, sales, total_sales, total_customers
) -> dict:
    return {
        "segment": f"{age} | {gender} | {occ} | {price}",
        "age_band": age,
        "gender": gender,
        "occupation_group": occ,
        "price_segment": price,
        "customers": customers,
        "transactions": orders,
        "orders": orders,
        "gross_sales": sales,
        "aov": sales / orders,
        "revenue_share": sales / total_sales,
        "customer_share": customers / total_customers,
        "value_index": (sales / total_sales) / (customers / total_customers),
        "sales_rank": rank,
        "strategy_class": cls,
    }


def make_inputs(**overrides) -> ReportInputs:
    table = load_rule_table()
    # 3 segments: gross 600 + 300 + 100 = 1,000; customers 20 + 30 + 50 = 100
    segments = pd.DataFrame(
        [
            _segment(1, "26-35", "M", "Occ_High", "Price_High", "Defend", 20, 30, 600.0, 1000, 100),
            _segment(2, "18-25", "F", "Occ_Mid", "Price_Mid", "Grow", 30, 40, 300.0, 1000, 100),
            _segment(3, "55+", "F", "Occ_Low", "Price_Low", "Maintain", 50, 50, 100.0, 1000, 100),
        ]
    )
    summary = pd.DataFrame(
        [
            {
                "strategy_class": c.name,
                "class_order": i,
                "segments": n,
                "customers": cu,
                "transactions": o,
                "orders": o,
                "gross_sales": g,
                "aov": g / o if o else None,
                "revenue_share": g / 1000,
                "customer_share": cu / 100,
                "value_index": (g / 1000) / (cu / 100) if cu else None,
                "goal": c.goal,
                "actions": "; ".join(c.actions),
                "description": c.description,
            }
            for i, (c, (n, cu, o, g)) in enumerate(
                zip(
                    table.classes,
                    [(1, 20, 30, 600.0), (1, 30, 40, 300.0), (0, 0, 0, 0.0), (1, 50, 50, 100.0)],
                    strict=True,
                ),
                start=1,
            )
        ]
    )
    dist = pd.DataFrame(
        [
            {"measure": "skewness", "name": "raw", "value": 3.5},
            {"measure": "skewness", "name": "log1p", "value": 0.25},
            {"measure": "quantile", "name": "p50", "value": 24.0},
            {"measure": "quantile", "name": "p90", "value": 270.0},
            {"measure": "quantile", "name": "p99", "value": 1300.0},
            {"measure": "summary", "name": "mean", "value": 110.0},
            {
                "measure": "cluster",
                "name": "cluster_1",
                "value": 18.5,
                "log1p_value": 2.97,
                "lower": 1.0,
                "upper": 50.0,
                "share": 0.66,
            },
            {
                "measure": "cluster",
                "name": "cluster_2",
                "value": 680.0,
                "log1p_value": 6.52,
                "lower": 50.0,
                "upper": 1800.0,
                "share": 0.34,
            },
        ]
    )
    occupation = pd.DataFrame(
        [
            {
                "occupation": "12",
                "customers": 20,
                "mean_log1p_amount": 4.1,
                "typical_line_amount": 59.3,
                "occupation_group": "Occ_High",
            },
            {
                "occupation": "4",
                "customers": 30,
                "mean_log1p_amount": 3.4,
                "typical_line_amount": 29.0,
                "occupation_group": "Occ_Mid",
            },
            {
                "occupation": "20",
                "customers": 45,
                "mean_log1p_amount": 2.5,
                "typical_line_amount": 11.2,
                "occupation_group": "Occ_Low",
            },
            {
                "occupation": "8",
                "customers": 5,
                "mean_log1p_amount": 4.5,
                "typical_line_amount": 89.0,
                "occupation_group": "Occ_Other",
            },
        ]
    )
    prices = pd.DataFrame(
        [
            {"category": "Jewelry", "median_line_amount": 697.0, "price_segment": "Price_High"},
            {"category": "Clothing", "median_line_amount": 37.0, "price_segment": "Price_Mid"},
            {"category": "5", "median_line_amount": 6.0, "price_segment": "Price_Low"},
        ]
    )
    values = {
        "headline": {
            "customers": 100,
            "orders": 120,
            "lines": 300,
            "revenue": 1000.0,
            "first_day": pd.Timestamp("2025-11-01"),
            "last_day": pd.Timestamp("2026-10-31"),
            "sales_days": 365,
            "products": 50,
            "categories": 3,
        },
        "demographics": {
            "customers": 100,
            "unknown_customers": 4,
            "no_profile_customers": 3,
            "unknown_revenue_share": 0.02,
        },
        "distribution": dist,
        "occupation_groups": occupation,
        "price_segments": prices,
        "segments": segments,
        "strategy_summary": summary,
        "min_customers_per_occupation": 10,
        "top_n": 2,
        "last_purchase_days": 200,
        "rfm_actions": table.rfm_actions,
        "missing_rfm_tables": ["marts.rfm_summary", "marts.segment_category_preference"],
    }
    values.update(overrides)
    return ReportInputs(**values)


def rfm_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    summary = pd.DataFrame(
        [
            {
                "segment_order": 1,
                "segment": "Champions",
                "customers": 40,
                "customer_share": 0.4,
                "revenue_share": 0.7,
                "aov": 80.0,
            },
            {
                "segment_order": 2,
                "segment": "Hibernating",
                "customers": 60,
                "customer_share": 0.6,
                "revenue_share": 0.3,
                "aov": 20.0,
            },
            {
                "segment_order": 3,
                "segment": "New Customers",
                "customers": 0,
                "customer_share": 0.0,
                "revenue_share": 0.0,
                "aov": None,
            },
        ]
    )
    prefs = pd.DataFrame(
        [
            # Champions: Jewelry 1.9 (but low support: skipped), Electronics 1.4, Shoes 1.2,
            # Books 1.1, Snacks 1.05 (4th: cut), Groceries 0.5 (below 1)
            {
                "segment": "Champions",
                "category": "Jewelry",
                "shrunk_index": 1.9,
                "low_support": True,
            },
            {
                "segment": "Champions",
                "category": "Electronics",
                "shrunk_index": 1.4,
                "low_support": False,
            },
            {
                "segment": "Champions",
                "category": "Shoes",
                "shrunk_index": 1.2,
                "low_support": False,
            },
            {
                "segment": "Champions",
                "category": "Books",
                "shrunk_index": 1.1,
                "low_support": False,
            },
            {
                "segment": "Champions",
                "category": "Snacks",
                "shrunk_index": 1.05,
                "low_support": False,
            },
            {
                "segment": "Champions",
                "category": "Groceries",
                "shrunk_index": 0.5,
                "low_support": False,
            },
            {
                "segment": "Hibernating",
                "category": "Groceries",
                "shrunk_index": 0.9,
                "low_support": False,
            },
        ]
    )
    return summary, prefs


def test_headline_finding_is_the_top_segment() -> None:
    report = render_report(make_inputs())
    # segment 1: 600 / 1000 = 60.0% of sales, 20 / 100 = 20.0% of customers, index 3.00x,
    # AOV 600 / 30 = 20.00
    assert (
        "**Men aged 26-35 in Occ_High occupations buying mostly Price_High categories "
        "produce 60.0% of gross sales**"
    ) in report
    assert "from 20.0% of customers (20): 3.00x their share of customers" in report
    assert "AOV of 20.00" in report and "largest of 3 behavioural segments" in report
    # top_n = 2: 60% + 30% of sales, 20% + 30% of customers
    assert "The top 2 segments hold 90.0% of gross sales with 50.0% of customers" in report
    assert "| 3 | 55+ |" not in report  # only the top 2 rows in the table


def test_headline_numbers_and_notes() -> None:
    report = render_report(make_inputs())
    assert "| Period | 2025-11-01 to 2026-10-31 (365 days with sales) |" in report
    assert "| Customers with a sale | 100 |" in report
    assert "| Average order value | 8.33 |" in report  # 1000 / 120
    # 4 of 100 customers = 4.0%; 2.0% of gross sales; 3 without a profile
    assert "4 of 100 customers (4.0%; 2.0% of gross sales) have an Unknown" in report
    assert "(3 have no profile at all)" in report
    assert "recency is identical" not in report
    assert "AOV here is the average line amount" not in report


def test_lines_without_a_category_are_said_and_take_no_tier() -> None:
    base = make_inputs()
    prices = pd.concat(
        [
            base.price_segments.assign(gross_sales=300.0),
            pd.DataFrame(
                [
                    {
                        "category": "Unknown",
                        "median_line_amount": 5000.0,
                        "price_segment": "Unknown",
                        "gross_sales": 100.0,
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    extra = _segment(4, "26-35", "M", "Occ_Mid", "Unknown", "Maintain", 2, 2, 40.0, 1000, 100)
    segments = pd.concat([base.segments, pd.DataFrame([extra])], ignore_index=True)
    report = render_report(make_inputs(price_segments=prices, segments=segments))
    # 100 of the headline's 1,000 = 10.0%; 2 customers bought nothing else
    assert (
        "10.0% of gross sales is on lines without a category (Unknown): they take no price "
        "tier and do not decide a customer's price segment; 2 customers bought only such "
        "lines and have the price segment Unknown."
    ) in report
    assert "- Unknown (lines without a category): no price tier" in report
    assert "- Price_High: Jewelry (" in report  # the tiers are listed as before
    # without such lines, nothing is said
    plain = render_report(base)
    assert "is on lines without a category" not in plain
    assert "- Unknown (lines without a category)" not in plain


def test_complete_demographics_and_single_line_orders_are_said() -> None:
    inputs = make_inputs(
        demographics={
            "customers": 100,
            "unknown_customers": 0,
            "no_profile_customers": 0,
            "unknown_revenue_share": 0.0,
        },
        headline={**make_inputs().headline, "orders": 300, "lines": 300, "sales_days": 1},
    )
    report = render_report(inputs)
    assert "All 100 customers have complete demographics" in report
    assert "AOV here is the average line amount" in report
    assert "(1 day with sales)" in report


def test_distribution_text_reads_the_table() -> None:
    report = render_report(make_inputs())
    assert "strongly right-skewed (skewness 3.50); after log1p the skewness is 0.25" in report
    assert "The median line is 24.00, the 90th percentile 270.00 and the 99th 1,300.00" in report
    assert (
        "(components chosen by BIC) finds 2 price cluster(s), each given by its centre: "
        "≈18.50 (66% of lines, 1.00 to 50.00), ≈680.00 (34% of lines, 50.00 to 1,800.00)." in report
    )


def test_dimensions_listed_with_codes_and_names() -> None:
    report = render_report(make_inputs())
    assert "- Occ_High: occupation codes 12 (20 customers; typical line amount 59.30 to" in report
    assert "- Occ_Other: occupation code(s) 8 (5 customers; fewer than 10 customers" in report
    assert "- Price_Low: Category 5 (median line amount 6.00 to 6.00)." in report
    assert "- Price_High: Jewelry" in report


def test_every_strategy_class_has_its_section_and_playbook() -> None:
    table = load_rule_table()
    report = render_report(make_inputs())
    for cls in table.classes:
        assert f"### {cls.name}" in report
        assert f"**Goal:** {cls.goal}" in report
        for action in cls.actions:
            assert f"- {action}" in report
    expand = report.split("### Expand")[1].split("###")[0]
    assert "No segment falls in this class on this data." in expand
    defend = report.split("### Defend")[1].split("###")[0]
    assert "- 26-35 | M | Occ_High | Price_High: 20 customers, 60.0% of gross sales" in defend
    # the summary table: Grow 30 customers (30.0%), 300 (30.0%), AOV 300 / 40 = 7.50
    assert "| Grow | 1 | 30 | 30.0% | 300.00 | 30.0% | 7.50 | 1.00x |" in report


def test_figures_are_embedded_by_relative_path_or_captioned() -> None:
    report = render_report(make_inputs())
    for name, caption in REPORT_FIGURES:
        assert f"![{caption}]({name})" in report
    plain = render_report(make_inputs(), embed_images=False)
    assert "![" not in plain
    for name, _ in REPORT_FIGURES:
        assert f"`{name}`" in plain


def test_rfm_section_absent_tables() -> None:
    report = render_report(make_inputs())
    assert (
        "The RFM tables are not in the warehouse (marts.rfm_summary, "
        "marts.segment_category_preference)"
    ) in report


def test_rfm_section_with_preferences_and_actions() -> None:
    summary, prefs = rfm_frames()
    report = render_report(
        make_inputs(rfm_summary=summary, rfm_preferences=prefs, missing_rfm_tables=[])
    )
    champions = next(line for line in report.splitlines() if line.startswith("| Champions"))
    # low-support Jewelry skipped; top three above 1 in index order; Snacks is 4th
    assert "Electronics (1.40), Shoes (1.20), Books (1.10)" in champions
    assert "Jewelry" not in champions and "Snacks" not in champions
    assert "| 40 | 40.0% | 70.0% | 80.00 |" in champions
    assert load_rule_table().rfm_actions["Champions"] in champions
    hibernating = next(line for line in report.splitlines() if line.startswith("| Hibernating"))
    assert "no category above average" in hibernating
    assert "| New Customers" not in report
    assert "No customers in: New Customers." in report
    assert "recommended action" in report


def test_degenerate_recency_is_said_instead_of_recency_actions() -> None:
    summary, prefs = rfm_frames()
    report = render_report(
        make_inputs(
            rfm_summary=summary, rfm_preferences=prefs, missing_rfm_tables=[], last_purchase_days=1
        )
    )
    assert "Every customer's last purchase is on the same day (2026-10-31)" in report
    assert "differ only by purchase frequency" in report
    assert "recommended action" not in report
    assert load_rule_table().rfm_actions["Hibernating"] not in report


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {
                "gender": "F",
                "age_band": "18-25",
                "occupation_group": "Occ_Mid",
                "price_segment": "Price_Low",
            },
            "Women aged 18-25 in Occ_Mid occupations buying mostly Price_Low categories",
        ),
        (
            {
                "gender": "Unknown",
                "age_band": "Unknown",
                "occupation_group": "Occ_Other",
                "price_segment": "Price_Mid",
            },
            "Customers of unknown gender of unknown age in rare or unknown occupations "
            "(Occ_Other) buying mostly Price_Mid categories",
        ),
        (
            {
                "gender": "M",
                "age_band": "26-35",
                "occupation_group": "Occ_High",
                "price_segment": "Unknown",
            },
            "Men aged 26-35 in Occ_High occupations buying only products without a category",
        ),
    ],
)
def test_describe_segment(row: dict, expected: str) -> None:
    assert describe_segment(row) == expected


def test_formatting_helpers() -> None:
    assert money(1234.5) == "1,234.50" and money(1_570_358.2) == "1,570,358"
    assert money(None) == "n/a"
    assert pct(0.256) == "25.6%" and pct(0.0004) == "0.04%" and pct(0) == "0.0%"
    assert skew_words(3.76) == "strongly right-skewed"
    assert skew_words(0.6) == "moderately right-skewed"
    assert skew_words(-1.07) == "strongly left-skewed"
    assert skew_words(0.2) == "roughly symmetric"


def test_headline_counts_the_lines_as_the_sales_lines_view_shows_them() -> None:
    """The headline reads staging.transactions, and the product master only for a line's
    category: a line without one takes its product's, else Unknown, as in the view."""
    conn = make_staging(
        [
            ("o1", "A", "2026-03-01 10:00:00", "P1", "", 1, "10.00"),  # master: Toys
            ("o1", "A", "2026-03-01 10:00:00", "P2", "Books", 2, "5.00"),
            ("o2", "B", "2026-03-03 09:00:00", "P1", "Games", 1, "12.00"),  # own category wins
            ("o3", "B", "2026-03-03 18:00:00", "P9", "", 3, "1.50"),  # not in master: Unknown
        ]
    )
    conn.execute(
        "INSERT INTO staging.products (product_id, product_name, category) "
        "VALUES ('P1', 'Kite', 'Toys'), ('P2', 'Atlas', 'Books')"
    )
    headline = conn.execute(HEADLINE_SQL).df().iloc[0].to_dict()
    assert {k: headline[k] for k in ("customers", "orders", "lines", "sales_days")} == {
        "customers": 2,
        "orders": 3,
        "lines": 4,
        "sales_days": 2,  # 03-01 and 03-03
    }
    assert headline["revenue"] == pytest.approx(10 + 10 + 12 + 4.5)
    assert (str(headline["first_day"])[:10], str(headline["last_day"])[:10]) == (
        "2026-03-01",
        "2026-03-03",
    )
    # Toys (P1 from the master), Books, Games, Unknown (P9)
    assert (headline["products"], headline["categories"]) == (3, 4)
    view = conn.execute(
        "SELECT count(DISTINCT category), count(DISTINCT customer_id) FROM staging.sales_lines"
    ).fetchone()
    assert view == (4, 2)


def test_headline_of_an_empty_staging_is_zero_counts() -> None:
    headline = make_staging([]).execute(HEADLINE_SQL).df().iloc[0].to_dict()
    assert (headline["lines"], headline["customers"], headline["categories"]) == (0, 0, 0)
