"""The shared figure factory: parallel drawing gives the same bytes as drawing in-process, and
one figure of a layer can be materialized alone."""

from __future__ import annotations

import gc
import io
import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from PIL import Image

from segment_pipeline import drawing
from segment_pipeline.figures import (
    FIGURE_DPI,
    PNG_COMPRESS_LEVEL,
    FigureLayer,
    FigureSpec,
    PlotCall,
    draw_all,
    figure_assets,
    render_png,
)
from segment_pipeline.logic import behaviour_figures
from segment_pipeline.logic.figure_style import finish
from segment_pipeline.logic.palette import OKABE_ITO
from segment_pipeline.resources import DuckDBWarehouse


def bars(values: list[float], title: str) -> Figure:
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.bar(range(len(values)), values)
    ax.set_title(title)
    return fig


def test_parallel_drawing_gives_the_same_png_bytes_as_serial(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(drawing, "_server_context", None)  # workers forked from here
    calls = [PlotCall(bars, ([1.0, 2.0, float(i)],), {"title": f"figure {i}"}) for i in range(5)]
    serial = draw_all(calls, workers=1)
    parallel = draw_all(calls, workers=2)
    assert [png for png, _, _ in parallel] == [png for png, _, _ in serial]
    assert len({png for png, _, _ in serial}) == 5  # five different pictures, in order
    assert all((w, h) == (440, 330) for _, w, h in serial)  # 4 x 3 inches at 110 dpi


def bars_crashing_in_a_worker(values: list[float], title: str) -> Figure:
    """`bars`, but a worker process (forked from the run's process or from the drawing
    server) dies of a segfault drawing it."""
    if multiprocessing.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGSEGV)
    return bars(values, title)


def bars_failing_in_a_worker(values: list[float], title: str) -> Figure:
    """`bars`, but it raises in a worker process."""
    if multiprocessing.parent_process() is not None:
        raise RuntimeError("only in a worker")
    return bars(values, title)


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")
def test_a_worker_that_dies_costs_time_not_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forked worker killed by a segfault (as one was in CI) breaks the pool: every figure
    is then drawn in the run's process, the same bytes, and the garbage collector, frozen for
    the pool, works again afterwards. (Workers forked from this process: no drawing server;
    `test_the_drawing_server_draws_without_matplotlib_in_the_run` covers the server's.)"""
    monkeypatch.setattr(drawing, "_server_context", None)
    calls = [PlotCall(bars, ([1.0, float(i)],), {"title": f"figure {i}"}) for i in range(3)]
    crashing = [*calls, PlotCall(bars_crashing_in_a_worker, ([2.0, 1.0],), {"title": "x"})]
    drawn = draw_all(crashing, workers=2)
    serial = draw_all([*calls, PlotCall(bars, ([2.0, 1.0],), {"title": "x"})], workers=1)
    assert [png for png, _, _ in drawn] == [png for png, _, _ in serial]
    assert gc.get_freeze_count() == 0


def _legend_outside_and_rotated_labels() -> Figure:
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    for i in range(3):
        ax.plot(range(8), np.arange(8) * (i + 1), label=f"series {i}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beyond the axes' right edge
    ax.set_xticks(range(8), [f"a long label {i}" for i in range(8)], rotation=40, ha="right")
    finish(fig, "Title", "A subtitle\non two lines", "A footnote")
    return fig


def _heatmap_with_colorbar_and_text_past_the_edge() -> Figure:
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    image = ax.imshow(np.arange(20.0).reshape(4, 5))
    fig.colorbar(image, ax=ax, label="value")
    ax.annotate("far left", xy=(0, 0), xytext=(-1.5, 0.5), textcoords="axes fraction")
    finish(fig, "Heatmap")
    return fig


def _best_legend_and_percent_axis() -> Figure:
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.bar(["x", "y", "z"], [0.1, 0.5, 0.25], label="share")
    ax.legend(loc="best")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:g}%")
    finish(fig, "Best legend", footnote="note")
    return fig


def _savefig_tight(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(
        buffer,
        format="png",
        dpi=FIGURE_DPI,
        bbox_inches="tight",
        metadata={"Software": None},
        pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL},
    )
    return buffer.getvalue()


@pytest.mark.parametrize(
    "build",
    [
        _legend_outside_and_rotated_labels,
        _heatmap_with_colorbar_and_text_past_the_edge,
        _best_legend_and_percent_axis,
        lambda: bars([1.0, 3.0, 2.0], "no layout engine"),  # never laid out: savefig's "tight"
        lambda: behaviour_figures.plot_segment_value_map(
            _segments(40, np.random.default_rng(3)),
            ["Defend", "Grow", "Expand", "Maintain"],
            dict(zip(["Defend", "Grow", "Expand", "Maintain"], OKABE_ITO, strict=False)),
        ),
    ],
    ids=["legend-outside", "heatmap-colorbar", "best-legend", "no-layout", "value-map"],
)
def test_render_png_gives_the_bytes_of_savefig_tight(build: Callable[[], Figure]) -> None:
    """render_png skips savefig's extra layout pass; the picture, crop included, must not
    change (the content past the figure's edge too)."""
    expected = _savefig_tight(build())
    assert render_png(build()) == expected


def test_the_png_compression_level_changes_bytes_not_pixels() -> None:
    def pixels(png: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))

    ours = render_png(_legend_outside_and_rotated_labels())
    buffer = io.BytesIO()
    _legend_outside_and_rotated_labels().savefig(
        buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight", metadata={"Software": None}
    )
    default = buffer.getvalue()
    assert ours != default  # the level is applied
    assert np.array_equal(pixels(ours), pixels(default))


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


# --------------------------------------------------------------------------------------------
# Readable figures (issue 11, item 9)
# --------------------------------------------------------------------------------------------


def test_label_slots_are_swapped_so_that_leader_lines_do_not_cross() -> None:
    """The shape of the bundled sample's value map: the two biggest segments far right, two
    slightly higher ones further left. In height order their lines cross; swapped, none do."""
    points = [(0.78, 0.80), (0.79, 0.74), (0.92, 0.73), (0.80, 0.68)]
    slots = [0.80, 0.70, 0.60, 0.50]
    assert behaviour_figures.leader_crossings(points, slots, 1.03) > 0
    chosen = behaviour_figures.assign_label_slots(points, slots, 1.03)
    assert sorted(chosen) == sorted(slots)
    assert behaviour_figures.leader_crossings(points, chosen, 1.03) == 0


def _segments(n: int, rng: np.random.Generator) -> pd.DataFrame:
    customers = rng.integers(1, 400, n)
    aov = np.exp(rng.normal(4.5, 1.0, n))
    gross = customers * aov * rng.uniform(1, 3, n)
    frame = pd.DataFrame(
        {
            "customers": customers,
            "aov": aov,
            "gross_sales": gross,
            "strategy_class": rng.choice(["Defend", "Grow", "Expand", "Maintain"], n),
            "gender": rng.choice(["M", "F"], n),
            "age_band": rng.choice(["18-25", "26-35", "36-45"], n),
            "occupation_group": rng.choice(["Occ_Low", "Occ_Mid", "Occ_High"], n),
            "price_segment": rng.choice(["Price_Low", "Price_Mid", "Price_High"], n),
        }
    )
    frame["sales_rank"] = frame["gross_sales"].rank(ascending=False, method="first").astype(int)
    frame["revenue_share"] = frame["gross_sales"] / frame["gross_sales"].sum()
    return frame


@pytest.mark.parametrize("seed", range(12))
def test_value_map_leader_lines_never_cross(seed: int) -> None:
    classes = ["Defend", "Grow", "Expand", "Maintain"]
    colours = dict(zip(classes, OKABE_ITO, strict=False))
    fig = behaviour_figures.plot_segment_value_map(
        _segments(60, np.random.default_rng(seed)), classes, colours
    )
    ax = fig.axes[0]
    fig.canvas.draw()  # resolve the axes limits the annotations refer to
    to_axes = ax.transData + ax.transAxes.inverted()
    labels = [t for t in ax.texts if isinstance(t, Annotation)]
    assert len(labels) == 5
    points = [tuple(to_axes.transform(t.xy)) for t in labels]
    slots = [t.xyann[1] for t in labels]
    assert behaviour_figures.leader_crossings(points, slots, behaviour_figures.LABEL_X) == 0


def test_strategy_summary_legend_sits_outside_the_bars() -> None:
    summary = pd.DataFrame(
        {
            "strategy_class": ["Defend", "Grow", "Expand", "Maintain"],
            "class_order": [1, 2, 3, 4],
            "segments": [28, 27, 25, 47],
            "customers": [1538, 453, 289, 717],
            "customer_share": [0.513, 0.151, 0.096, 0.239],
            "revenue_share": [0.2, 0.1, 0.1, 0.6],
            "gross_sales": [20.0, 10.0, 10.0, 60.0],
        }
    )
    summary["value_index"] = summary["revenue_share"] / summary["customer_share"]
    fig = behaviour_figures.plot_strategy_summary(
        summary, {c: OKABE_ITO[i] for i, c in enumerate(summary["strategy_class"])}
    )
    fig.canvas.draw()
    ax = fig.axes[0]
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.y0 >= ax.get_window_extent().y1 - 1  # above the plotting area
    for text in ax.texts:
        assert not legend_box.overlaps(text.get_window_extent())


def test_loading_the_definitions_does_not_import_matplotlib(tmp_path: Path) -> None:
    """The asset modules name their plotting functions (`drawing.PlotFunctions`) without
    importing them: building the definitions (the UI's code location, every `dagster`
    command) leaves matplotlib out, and a named function resolves to the real one."""
    import subprocess

    code = (
        "import sys\n"
        "from segment_pipeline.definitions import defs\n"
        "defs()\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported by the definitions'\n"
        "from segment_pipeline.assets.rfm import figures\n"
        "plot = figures.figs.plot_segment_purchase_patterns\n"
        "assert 'matplotlib' not in sys.modules\n"
        "from segment_pipeline.logic import rfm_figures\n"
        "assert plot.resolve() is rfm_figures.plot_segment_purchase_patterns\n"
    )
    env = {
        **os.environ,
        "SEGMENT_PIPELINE_DB": str(tmp_path / "w.duckdb"),
        "DAGSTER_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_plot_function_is_named_not_imported() -> None:
    """`PlotFunctions(module).name` is a `PlotFunction`: two strings to pickle for a worker,
    the real function once called."""
    figs = drawing.PlotFunctions("segment_pipeline.logic.figure_style")
    empty = figs.empty_figure
    assert empty == drawing.PlotFunction("segment_pipeline.logic.figure_style", "empty_figure")
    assert pickle.loads(pickle.dumps(empty)) == empty
    assert len(pickle.dumps(empty)) < 200  # names, not a module
    assert render_png(empty("Title", "message")) == render_png(finish_empty("Title", "message"))
    with pytest.raises(AttributeError):
        figs._private  # noqa: B018  (dunder and private lookups stay real attribute errors)


def finish_empty(title: str, message: str) -> Figure:
    from segment_pipeline.logic.figure_style import empty_figure

    return empty_figure(title, message)


_SERVER_SCRIPT = """
import multiprocessing.forkserver, sys
from pathlib import Path
import dagster as dg
from segment_pipeline import drawing
from segment_pipeline.figures import (
    FigureLayer, FigureSpec, PlotCall, _draw, draw_all, draw_as_prepared, figure_assets
)
from segment_pipeline.resources import DuckDBWarehouse

empty = drawing.PlotFunction("segment_pipeline.logic.figure_style", "empty_figure")
# A run with a figure step starts the server when it initializes its resources.
assert drawing.server_context() is None
specs = [
    FigureSpec(name, (), "A figure.", lambda conn, s, c: PlotCall(empty, ("t", "m"), {}))
    for name in ("one", "two")  # two: drawn by workers (one figure is drawn in-process)
]
step = figure_assets("figures", [FigureLayer("numbers", specs)], Path(sys.argv[1], "figures"))
with dg.instance_for_test() as instance:
    assert dg.materialize(
        [step], instance=instance,
        resources={"warehouse": DuckDBWarehouse(path=sys.argv[1] + "/w.duckdb"), "numbers": 0},
    ).success
assert drawing.server_context() is not None, "no drawing server started by the run"
calls = [PlotCall(empty, (f"figure {i}", "nothing to draw"), {}) for i in range(4)]
drawn = draw_all(calls, workers=2)
prepared = []
def preparing():
    for call in calls:
        prepared.append(call)
        yield call
lazily = draw_as_prepared(preparing(), len(calls))
first = next(lazily)
assert len(prepared) == 4, "every call handed out before the first picture is taken"
lazily = [first, *lazily]
assert "matplotlib" not in sys.modules, "the run's process imported matplotlib"
crash = drawing.PlotFunction("segment_pipeline_tests.test_figures", "bars_crashing_in_a_worker")
with_crash = draw_all([*calls, PlotCall(crash, ([2.0, 1.0],), {"title": "x"})], workers=2)
serial = [_draw(call) for call in calls]
assert [png for png, _, _ in drawn] == [png for png, _, _ in serial], "different bytes"
assert [png for png, _, _ in lazily] == [png for png, _, _ in serial], "lazily: other bytes"
assert [png for png, _, _ in with_crash[:4]] == [png for png, _, _ in serial]
assert len(with_crash) == 5 and len({png for png, _, _ in serial}) == 4
failing = drawing.PlotFunction("segment_pipeline_tests.test_figures", "bars_failing_in_a_worker")
mixed = draw_all([*calls[:2], PlotCall(failing, ([2.0, 1.0],), {"title": "x"})], workers=2)
assert [png for png, _, _ in mixed[:2]] == [png for png, _, _ in serial[:2]]
assert mixed[2][0] == with_crash[4][0]  # the same picture, drawn here
print(multiprocessing.forkserver._forkserver._forkserver_pid)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the drawing server is Linux only")
def test_the_drawing_server_draws_without_matplotlib_in_the_run(tmp_path: Path) -> None:
    """A run with a figure step starts the drawing server (its `FigureDrawing` resource), and
    the workers fork from the server: the run's process never imports matplotlib, the bytes
    are those drawn in-process, a worker that dies or fails costs time, not figures, and the
    server ends with the process that started it."""
    import subprocess
    import time

    done = subprocess.run(
        [sys.executable, "-c", _SERVER_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    status = Path(f"/proc/{int(done.stdout.split()[-1])}/status")

    def ended() -> bool:  # gone, or a zombie where nothing reaps orphans (a container)
        try:
            return "State:\tZ" in status.read_text()
        except FileNotFoundError:
            return True

    for _ in range(50):  # the server notices its parent's exit (a pipe closing)
        if ended():
            break
        time.sleep(0.1)
    assert ended(), "the drawing server outlived its run"


_CTRL_C_SCRIPT = """
import multiprocessing.forkserver, os, signal, time
from segment_pipeline import drawing

drawing.start_server()
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored here
server = multiprocessing.forkserver._forkserver._forkserver_pid
time.sleep(0.3)
os.kill(server, signal.SIGINT)  # as a Ctrl-C in the terminal, while the server imports
time.sleep(4)
status = open(f"/proc/{server}/status").read()
assert "State:\tZ" not in status, "the drawing server died of the Ctrl-C"
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the drawing server is Linux only")
def test_a_ctrl_c_does_not_kill_the_drawing_server_while_it_imports() -> None:
    """Ctrl-C reaches the whole process group; the run's process handles it. The drawing
    server, started with SIGINT ignored, neither dies of it nor prints a traceback."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
