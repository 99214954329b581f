"""The shared figure factory: parallel drawing gives the same bytes as drawing in-process, and
one figure of a layer can be materialized alone."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from matplotlib.figure import Figure

from segment_pipeline.figures import FigureLayer, FigureSpec, PlotCall, draw_all, figure_assets
from segment_pipeline.resources import DuckDBWarehouse


def bars(values: list[float], title: str) -> Figure:
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.bar(range(len(values)), values)
    ax.set_title(title)
    return fig


def test_parallel_drawing_gives_the_same_png_bytes_as_serial() -> None:
    calls = [PlotCall(bars, ([1.0, 2.0, float(i)],), {"title": f"figure {i}"}) for i in range(5)]
    serial = draw_all(calls, workers=1)
    parallel = draw_all(calls, workers=2)
    assert [png for png, _, _ in parallel] == [png for png, _, _ in serial]
    assert len({png for png, _, _ in serial}) == 5  # five different pictures, in order
    assert all((w, h) == (440, 330) for _, w, h in serial)  # 4 x 3 inches at 110 dpi


class Numbers(dg.ConfigurableResource):
    scale: float = 1.0


def _plot_from_table(conn: duckdb.DuckDBPyConnection, settings: Numbers, _context) -> PlotCall:
    values = conn.execute("SELECT v FROM t ORDER BY v").df()["v"] * settings.scale
    return PlotCall(bars, (list(values),), {"title": "from the warehouse"})


def test_one_figure_of_a_layer_is_materialized_alone(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1.0), (3.0)) AS v(v)")
    specs = (
        FigureSpec("first", (), "The first figure.", _plot_from_table),
        FigureSpec("second", (), "The second figure.", _plot_from_table),
    )
    layer = FigureLayer("numbers", specs, ["team:x"])
    figures = figure_assets("test_figures", [layer], tmp_path / "figures")
    assert {k.to_user_string() for k in figures.keys} == {"figures/first", "figures/second"}
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [figures],
            selection=[dg.AssetKey(["figures", "second"])],
            instance=instance,
            resources={"warehouse": DuckDBWarehouse(path=str(db)), "numbers": Numbers()},
        )
    assert result.success
    done = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
    assert done == ["figures/second"]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["second.png"]
    with duckdb.connect(str(db), read_only=True) as conn:
        stored = conn.execute("SELECT name, asset_key, width_px FROM figures.figures").df()
    pd.testing.assert_frame_equal(
        stored,
        pd.DataFrame({"name": ["second.png"], "asset_key": ["figures/second"], "width_px": [440]}),
        check_dtype=False,
    )
