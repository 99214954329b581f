"""End to end: seed A's assets through real Dagster runs on the bundled sample."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from segment_pipeline.assets.ingest import STAGED_KEY
from segment_pipeline.assets.rfm import (
    FIGURE_LAYER,
    PRODUCT_SUMMARY_KEY,
    PURCHASES_KEY,
    RESOURCE_KEY,
    RFM_KEY,
    RfmSettings,
    build_assets,
)
from segment_pipeline.definitions import build_definitions
from segment_pipeline.figures import figure_assets, render_png
from segment_pipeline.logic import preference as pref
from segment_pipeline.logic import rfm_figures as figs
from segment_pipeline.logic.rfm import SEGMENT_NAMES, load_segment_map
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline_tests.conftest import SAMPLE_DIR, layer_context, settings_for

pytestmark = pytest.mark.e2e

FIGURE_FILES = {
    "spa_segment_purchase_patterns.png",
    "spa_champions_vs_new_comparison.png",
    "spa_champions_vs_new_top_products.png",
    "spa_segment_top5_products.png",
    "spa_segment_product_heatmap.png",
}
TABLES = [
    "rfm_customer_segments",
    "rfm_summary",
    "segment_product_purchases",
    "segment_product_summary",
    "segment_category_preference",
    "segment_top_products",
    "champions_vs_new_products",
    "segment_purchase_patterns",
]


def _materialize(
    db: Path,
    instance: dg.DagsterInstance,
    selection: list[dg.AssetKey] | None = None,
    **config: object,
):
    settings = settings_for(SAMPLE_DIR, db)
    assets = [
        *build_assets(layer_context(settings)),
        figure_assets("figures", [FIGURE_LAYER], settings.figures_dir),
    ]
    result = dg.materialize(
        assets,
        instance=instance,
        selection=selection,
        raise_on_error=False,
        resources={"warehouse": DuckDBWarehouse(path=str(db)), RESOURCE_KEY: RfmSettings(**config)},
    )
    return settings, result


def _purchases_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == PURCHASES_KEY
    ]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_rfm_layer_on_the_bundled_sample(staged_sample_db, copy_db, instance) -> None:
    db = copy_db(staged_sample_db)
    settings, result = _materialize(db, instance)
    assert result.success
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert checks == {
        ("marts/rfm_customer_segments", "one_segment_per_customer"): True,
        ("marts/rfm_summary", "shares_sum_to_one"): True,
        ("marts/segment_product_purchases", "lines_match_staging"): True,
        ("marts/segment_product_summary", "shares_sum_to_one"): True,
        ("marts/segment_category_preference", "shares_sum_to_one"): True,
    }
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {f"marts/{t}" for t in TABLES} <= materialized
    purchases_written = _purchases_metadata(result)
    assert purchases_written["write_mode"] == "full"
    assert purchases_written["rows_written"] > 0
    # the same inputs again: segment_product_purchases keeps every row, writes none
    _, again = _materialize(db, instance)
    assert again.success
    assert {k: _purchases_metadata(again)[k] for k in ("write_mode", "rows_written")} == {
        "write_mode": "unchanged",
        "rows_written": 0,
    }
    # a warehouse without the summary's distinct counts (written by older code): the summary
    # step alone builds them from the purchase lines, and gives the same rows
    summary_sql = "SELECT * FROM marts.segment_product_summary ORDER BY ALL"
    with duckdb.connect(str(db)) as conn:
        summary_rows = conn.execute(summary_sql).fetchall()
        conn.execute(f"DROP TABLE {pref.SEGMENT_PRODUCT_SUMMARY_REACH.fqn}")
    _, summary_only = _materialize(db, instance, selection=[PRODUCT_SUMMARY_KEY])
    assert summary_only.success
    (event,) = summary_only.get_asset_materialization_events()
    assert event.materialization.metadata["cells_and_reach"].value.startswith("built whole")
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute(summary_sql).fetchall() == summary_rows

    with duckdb.connect(str(db), read_only=True) as conn:
        summary = dict(conn.execute("SELECT segment, customers FROM marts.rfm_summary").fetchall())
        # all ten segments are populated on the sample
        assert set(summary) == set(SEGMENT_NAMES)
        assert all(n > 0 for n in summary.values()), summary
        customers = conn.execute(
            "SELECT count(DISTINCT customer_id) FROM staging.sales_lines"
        ).fetchall()[0][0]
        assert sum(summary.values()) == customers
        # default window = all history: every staged sale line is in the analysis table
        staged, purchases = conn.execute(
            "SELECT (SELECT count(*) FROM staging.transactions), "
            "(SELECT count(*) FROM marts.segment_product_purchases)"
        ).fetchall()[0]
        assert staged == purchases > 0
        last_day = conn.execute(
            "SELECT max(CAST(order_ts AS DATE)) + 1 FROM staging.sales_lines"
        ).fetchall()[0][0]
        assert conn.execute(
            "SELECT DISTINCT as_of FROM marts.rfm_customer_segments"
        ).fetchall() == [(last_day,)]
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM marts.{table}").fetchall()[0][0] > 0
        stored = dict(
            conn.execute(
                "SELECT name, sha256 FROM figures.figures WHERE name LIKE 'spa_%'"
            ).fetchall()
        )
        preference = conn.execute("SELECT * FROM marts.segment_category_preference").df()
        window_note = conn.execute(
            "SELECT DISTINCT window_start, window_end, as_of FROM marts.rfm_customer_segments"
        ).fetchall()[0]

    # the five figures: files with the seed's names, also stored in DuckDB with their hash
    files = {p.name: p for p in Path(settings.figures_dir).glob("spa_*.png")}
    assert set(files) == FIGURE_FILES
    assert set(stored) == FIGURE_FILES
    for name, path in files.items():
        png = path.read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000, name
        assert hashlib.sha256(png).hexdigest() == stored[name]
    figure_events = {
        e.asset_key.path[-1]: e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[0] == "figures"
    }
    assert set(figure_events) == {n.removesuffix(".png") for n in FIGURE_FILES}
    for event in figure_events.values():
        metadata = event.materialization.metadata
        assert metadata["preview"].value.startswith("![")

    # rendering is deterministic: the same data gives the same bytes
    start, end, as_of = window_note
    fig = figs.plot_segment_category_heatmap(
        preference,
        load_segment_map().segments,
        note=f"Sales {start} to {end}; recency as of {as_of}",
        min_support_customers=10,
    )
    assert hashlib.sha256(render_png(fig)).hexdigest() == stored["spa_segment_product_heatmap.png"]


def test_lineage_staging_rfm_tables_figures(tmp_path: Path) -> None:
    defs = build_definitions(settings_for(SAMPLE_DIR, tmp_path / "segments.duckdb"))
    graph = defs.resolve_asset_graph()

    def parents(key: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(key.split("/"))).parent_keys}

    assert STAGED_KEY in graph.get(RFM_KEY).parent_keys
    assert RFM_KEY in graph.get(PURCHASES_KEY).parent_keys
    assert parents("marts/rfm_summary") == {"marts/rfm_customer_segments"}
    assert "marts/segment_product_purchases" in parents("marts/segment_category_preference")
    assert parents("figures/spa_segment_product_heatmap") == {"marts/segment_category_preference"}
    assert parents("figures/spa_champions_vs_new_top_products") == {
        "marts/champions_vs_new_products"
    }
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["marts/rfm_customer_segments"] == groups["marts/rfm_summary"] == "rfm"
    assert groups["marts/segment_category_preference"] == "preference"
    assert all(groups[f"figures/{n.removesuffix('.png')}"] == "figures" for n in FIGURE_FILES)


def test_malformed_segment_map_stops_the_run_before_any_work(
    staged_sample_db, copy_db, instance, tmp_path: Path
) -> None:
    bad = tmp_path / "bad_map.yaml"
    bad.write_text(
        "segments:\n  - name: Champions\n    r: [5]\n    f: [1, 2, 3, 4, 5]\n", encoding="utf-8"
    )
    db = copy_db(staged_sample_db)
    _, result = _materialize(db, instance, segment_map_path=str(bad))
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["marts__rfm_customer_segments"]
    description = failures[0].step_failure_data.user_failure_data.description
    assert "Invalid segment map" in description and "not covered" in description
    with duckdb.connect(str(db), read_only=True) as conn:
        marts = conn.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts' "
            "AND table_name IN (SELECT unnest(?::VARCHAR[]))",
            [TABLES],
        ).fetchall()[0][0]
    assert marts == 0
