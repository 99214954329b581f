"""End to end: seed B's assets through real Dagster runs, on the bundled sample and on the Black
Friday extract (converted to the canonical format by a small test-only loader)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from segment_pipeline.assets.behaviour import (
    FIGURE_LAYER,
    FIGURE_NAMES,
    RESOURCE_KEY,
    STRATEGY_KEY,
    BehaviourSettings,
    build_assets,
)
from segment_pipeline.figures import figure_assets
from segment_pipeline.logic.report import REPORT_NAME
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline.runner import execute_pipeline
from segment_pipeline_tests.conftest import layer_context, settings_for

pytestmark = pytest.mark.e2e

BLACK_FRIDAY_FILE = "black_friday_first5000.csv"
BLACK_FRIDAY_DAY = "2024-11-29"  # PipelineSettings' default undated day


def _materialize(
    db: Path,
    instance: dg.DagsterInstance,
    behaviour: BehaviourSettings,
    selection: list[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    settings = settings_for(Path("unused"), db)
    assets = [
        *build_assets(layer_context(settings)),
        figure_assets("figures", [FIGURE_LAYER], settings.figures_dir),
    ]
    return dg.materialize(
        assets,
        selection=selection,
        resources={"warehouse": DuckDBWarehouse(path=str(db)), RESOURCE_KEY: behaviour},
        instance=instance,
        raise_on_error=False,
    )


def test_sample_chain_report_and_figures(staged_sample_db, copy_db, instance) -> None:
    db = copy_db(staged_sample_db)
    figures_dir = db.parent / "figures"
    result = _materialize(db, instance, BehaviourSettings())
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 7  # occupation 1, customers 1, segments 2, strategy 1, summary 2
    assert all(c.passed for c in checks), [(c.check_name, c.passed) for c in checks]

    conn = duckdb.connect(str(db), read_only=True)
    try:
        customers = conn.execute(
            "SELECT count(DISTINCT customer_id) FROM staging.sales_lines"
        ).fetchall()[0][0]
        seg_customers, revenue_share, n_segments = conn.execute(
            "SELECT sum(customers), sum(revenue_share), count(*) FROM marts.behavioural_segments"
        ).fetchall()[0]
        assert seg_customers == customers
        assert revenue_share == pytest.approx(1)
        classes = dict(
            conn.execute("SELECT strategy_class, segments FROM marts.strategy_summary").fetchall()
        )
        assert set(classes) == {"Defend", "Grow", "Expand", "Maintain"}
        assert all(n > 0 for n in classes.values()), classes  # every class populated
        assert sum(classes.values()) == n_segments
        # docs/sample_data.md: occupation 8 has 7 customers -> Occ_Other with the default 10
        assert conn.execute(
            "SELECT occupation_group, customers FROM marts.occupation_groups WHERE occupation = '8'"
        ).fetchall() == [("Occ_Other", 7)]
        # ... and the seed B headline holds on the sample (men 26-35, high-tier occupations,
        # high-price categories have the largest gross sales)
        top = conn.execute(
            "SELECT segment, strategy_class FROM marts.segment_strategy WHERE sales_rank = 1"
        ).fetchall()
        assert top == [("26-35 | M | Occ_High | Price_High", "Defend")]
        stored = conn.execute(
            "SELECT name, sha256, file_path, markdown FROM marts.insights_report"
        ).fetchall()
        figure_rows = dict(
            conn.execute(
                "SELECT name, sha256 FROM figures.figures WHERE name LIKE 'bsa_%'"
            ).fetchall()
        )
    finally:
        conn.close()

    report_path = figures_dir / REPORT_NAME
    text = report_path.read_text(encoding="utf-8")
    assert stored == [
        (REPORT_NAME, hashlib.sha256(text.encode()).hexdigest(), str(report_path), text)
    ]
    assert (
        "Men aged 26-35 in Occ_High occupations buying mostly Price_High categories produce"
    ) in text
    for cls in classes:
        assert f"### {cls}" in text
    assert "No segment falls in this class" not in text
    assert f"All {customers:,} customers have complete demographics" in text
    # the RFM tables were not materialized in this run: the section says so
    assert "The RFM tables are not in the warehouse" in text

    for stem in FIGURE_NAMES.values():
        png = figures_dir / f"{stem}.png"
        assert png.is_file(), png
        assert f"]({stem}.png)" in text  # embedded by a relative link
        assert figure_rows[f"{stem}.png"] == hashlib.sha256(png.read_bytes()).hexdigest()

    report_meta = result.asset_materializations_for_node("report__insights_report")[0].metadata
    assert "Men aged 26-35" in report_meta["report"].value

    # An invalid rule table stops the strategy step with a message naming the cell.
    bad = db.parent / "bad_rules.yaml"
    bad.write_text(
        "classes:\n  - {name: A, goal: g, actions: [a]}\n"
        "rules:\n  - {class: A, price_segment: [Price_Low, Price_Mid]}\n",
        encoding="utf-8",
    )
    failed = _materialize(
        db, instance, BehaviourSettings(strategy_rules_path=str(bad)), selection=[STRATEGY_KEY]
    )
    assert not failed.success
    failure = failed.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "cell Occ_Low x Price_High is matched by no rule" in failure.description


def write_black_friday_dataset(csv_path: Path, out: Path) -> Path:
    """Test-only loader: Black Friday rows -> the canonical format, one day file, one order per
    line, quantity 1, unit_price = Purchase, customers from the demographics, products with
    category = Product_Category_1."""
    (out / "transactions").mkdir(parents=True)
    conn = duckdb.connect()
    src = f"read_csv('{csv_path}', all_varchar = true)"
    conn.execute(f"""
        COPY (SELECT 'BF' || lpad(CAST(row_number() OVER () AS VARCHAR), 6, '0') AS order_id,
                     User_ID AS customer_id, '{BLACK_FRIDAY_DAY} 12:00:00' AS order_ts,
                     Product_ID AS product_id, 1 AS quantity, Purchase AS unit_price
              FROM {src})
        TO '{out / "transactions" / (BLACK_FRIDAY_DAY + ".csv")}' (HEADER)""")
    conn.execute(f"""
        COPY (SELECT User_ID AS customer_id, min(Gender) AS gender, min(Age) AS age_band,
                     min(Occupation) AS occupation, min(Marital_Status) AS marital_status,
                     min(City_Category) AS city_category
              FROM {src} GROUP BY User_ID ORDER BY User_ID)
        TO '{out / "customers.csv"}' (HEADER)""")
    conn.execute(f"""
        COPY (SELECT Product_ID AS product_id, Product_ID AS product_name,
                     min(Product_Category_1) AS category
              FROM {src} GROUP BY Product_ID ORDER BY Product_ID)
        TO '{out / "products.csv"}' (HEADER)""")
    conn.close()
    return out


def test_black_friday_whole_chain(shared_data_dir, tmp_path, instance) -> None:
    csv_path = shared_data_dir / BLACK_FRIDAY_FILE
    if not csv_path.is_file():
        pytest.skip(f"{csv_path} not present")
    data = write_black_friday_dataset(csv_path, tmp_path / "black_friday")
    db = tmp_path / "warehouse" / "segments.duckdb"
    outcome = execute_pipeline(settings_for(data, db), instance=instance, echo=False)
    assert outcome.success, outcome.messages + outcome.failed_checks

    raw = duckdb.connect()
    customers, revenue, rare = raw.execute(
        f"SELECT count(DISTINCT User_ID), sum(CAST(Purchase AS BIGINT)), "
        f"(SELECT count(*) FROM (SELECT Occupation FROM read_csv('{csv_path}') "
        f"GROUP BY Occupation HAVING count(DISTINCT User_ID) < 10)) "
        f"FROM read_csv('{csv_path}')"
    ).fetchall()[0]
    raw.close()

    conn = duckdb.connect(str(db), read_only=True)
    try:
        assert (
            conn.execute("SELECT sum(customers) FROM marts.behavioural_segments").fetchall()[0][0]
            == customers
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM marts.occupation_groups WHERE occupation_group = 'Occ_Other'"
            ).fetchall()[0][0]
            == rare
        )
        rfm_present = (
            conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' "
                "AND table_name IN ('rfm_summary', 'segment_category_preference')"
            ).fetchall()[0][0]
            == 2
        )
        top = conn.execute(
            "SELECT gender, age_band, occupation_group, price_segment "
            "FROM marts.behavioural_segments WHERE sales_rank = 1"
        ).fetchall()[0]
    finally:
        conn.close()

    text = (db.parent / "figures" / REPORT_NAME).read_text(encoding="utf-8")
    assert f"| Customers with a sale | {customers:,} |" in text
    assert f"| Gross sales | {revenue:,} |" in text
    assert f"| Orders | {5000:,} |" in text
    assert f"| Period | {BLACK_FRIDAY_DAY} to {BLACK_FRIDAY_DAY} (1 day with sales) |" in text
    assert "AOV here is the average line amount" in text
    assert f"Every customer's last purchase is on the same day ({BLACK_FRIDAY_DAY})" in text
    gender = {"M": "Men", "F": "Women"}[top[0]]
    assert f"**{gender} aged {top[1]} in {top[2]} occupations buying mostly {top[3]}" in text
    # numeric category codes are labelled readably
    assert "- Price_High: Category " in text
    if rfm_present:
        rfm = text.split("## RFM segments")[1].split("## Method")[0]
        assert "differ only by purchase frequency" in rfm
        assert "recommended action" not in rfm
    for stem in FIGURE_NAMES.values():
        assert (db.parent / "figures" / f"{stem}.png").is_file()
