"""Figures drawn ahead of the figure step (`figures.DrawingAhead`): a figure whose inputs a run
has written is drawn while the later steps run, and the figure step takes that picture only
when it would draw the same one; the project's heaviest figures' inputs run first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from matplotlib.figure import Figure

from segment_pipeline.assets import rfm
from segment_pipeline.figures import call_digest
from segment_pipeline_tests.test_figures import bars


def noted_bars(values: list[float], title: str, notes: str) -> Figure:
    """`bars`, noting in the folder `notes` which process drew which picture, and when."""
    note = {"title": title, "values": values, "pid": os.getpid(), "at": time.time()}
    Path(notes, f"{title}-{time.time_ns()}.json").write_text(json.dumps(note))
    return bars(values, title)


_AHEAD_SCRIPT = """
import json, os, sys, time
from pathlib import Path
import dagster as dg
import duckdb
from segment_pipeline import drawing, figures
from segment_pipeline.figures import (
    FigureLayer, FigureSpec, PlotCall, _draw, figure_assets, with_drawing_ahead
)
from segment_pipeline.resources import DuckDBWarehouse

folder = Path(sys.argv[1])
notes = folder / "notes"
notes.mkdir()
db = str(folder / "w.duckdb")
noted = drawing.PlotFunction("segment_pipeline_tests.test_drawing_ahead", "noted_bars")

def notes_of(title):
    return [json.loads(p.read_text()) for p in sorted(notes.glob(f"{title}-*.json"))]

@dg.asset(required_resource_keys={"warehouse"})
def first(context):
    with context.resources.warehouse.connect() as conn:
        conn.execute("CREATE OR REPLACE TABLE t1 AS SELECT unnest([1.0, 2.0]::DOUBLE[]) AS v")
        conn.execute("CREATE OR REPLACE TABLE t2 AS SELECT unnest([3.0, 4.0]::DOUBLE[]) AS v")

@dg.asset(deps=[first], required_resource_keys={"warehouse"})
def second(context):
    # "ahead", then "changed" are drawn while this step runs: it waits for them to start (a
    # minute at most) when the run has them
    planned = figures.planned_assets(context.instance, context.run)
    wanted = [t for t in ("ahead", "changed") if dg.AssetKey(["figures", t]) in planned]
    for _ in range(600 if wanted else 0):
        if all(notes_of(t) for t in wanted):
            break
        time.sleep(0.1)
    with context.resources.warehouse.connect() as conn:
        conn.execute("UPDATE t2 SET v = v * 10")  # what "changed" reads, undeclared
        conn.execute("CREATE OR REPLACE TABLE t3 AS SELECT 5.0::DOUBLE AS v")
    return dg.MaterializeResult(metadata={"saw_ahead": bool(notes_of("ahead"))})

def reading(table, title):
    def prepare(conn, settings, context):
        values = [v for (v,) in conn.execute(f"SELECT v FROM {table} ORDER BY v").fetchall()]
        return PlotCall(noted, (values, title, str(notes)), {})
    return prepare

first_key = dg.AssetKey("first")
specs = [
    FigureSpec("ahead", (first_key,), "Drawn ahead.", reading("t1", "ahead")),
    # drawn ahead too, from t2 as `first` wrote it; `second` changes t2 before the figure step
    FigureSpec("changed", (first_key,), "Its data changes.", reading("t2", "changed")),
    # t3 does not exist yet when `first` is written: prepared (and drawn) by the step only
    FigureSpec("late", (first_key,), "Prepared late.", reading("t3", "late")),
    # drawn from what `second` writes (so the figure step runs after it): prepared once it is
    FigureSpec("after", (dg.AssetKey("second"),), "After the second.", reading("t2", "after")),
]
layer = FigureLayer("numbers", specs)
assets = [*with_drawing_ahead([first, second], [layer]),
          figure_assets("figures", [layer], folder / "figures")]
resources = {"warehouse": DuckDBWarehouse(path=db), "numbers": 0}

with dg.instance_for_test() as instance:
    result = dg.materialize(assets, instance=instance, resources=resources)
    assert result.success
    saw = result.asset_materializations_for_node("second")[0].metadata["saw_ahead"].value
    assert saw, "the figure was not drawn while the next step ran"
    assert figures._AHEAD == {} and figures._FIGURE_RUNS == {}, "left open after the run"
    assert "matplotlib" not in sys.modules, "the run's process imported matplotlib"
    bars = drawing.PlotFunction("segment_pipeline_tests.test_figures", "bars")
    expected = {
        "ahead": _draw(PlotCall(bars, ([1.0, 2.0], "ahead"), {}))[0],
        "changed": _draw(PlotCall(bars, ([30.0, 40.0], "changed"), {}))[0],
        "late": _draw(PlotCall(bars, ([5.0], "late"), {}))[0],
        "after": _draw(PlotCall(bars, ([30.0, 40.0], "after"), {}))[0],
    }
    drawn = {title: (folder / "figures" / f"{title}.png").read_bytes() for title in expected}
    assert drawn == expected, [t for t in expected if drawn[t] != expected[t]]
    # "changed": drawn ahead from the old values, then again from the new ones
    assert [n["values"] for n in notes_of("changed")] == [[3.0, 4.0], [30.0, 40.0]]
    assert len(notes_of("ahead")) == 1 and len(notes_of("late")) == 1
    assert [n["values"] for n in notes_of("after")] == [[30.0, 40.0]]

    # A run without the figure step draws nothing ahead.
    for p in notes.iterdir():
        p.unlink()
    assert dg.materialize(
        assets, instance=instance, resources=resources, selection=["first", "second"]
    ).success
    assert not list(notes.iterdir()), "figures drawn for a run that does not select them"

    # A run with one figure of the step draws that one ahead, not the others.
    assert dg.materialize(
        assets, instance=instance, resources=resources,
        selection=["first", "second", "figures/ahead"],
    ).success
    assert [p.name.split("-")[0] for p in notes.iterdir()] == ["ahead"]

# A run stopped where it was (a Ctrl-C) leaves its drawing open: the exit handlers close it.
# The CLI ends with them and os._exit, where multiprocessing's own would wait for the worker.
figures._FIGURE_RUNS["left-open"] = None
figures._start_drawing_ahead("left-open").offer(PlotCall(noted, ([1.0], "left", str(notes)), {}))
while not notes_of("left"):  # its worker is drawing
    time.sleep(0.05)
print("ok", flush=True)
import atexit
atexit._run_exitfuncs()
os._exit(0)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the drawing server is Linux only")
def test_figures_are_drawn_ahead_from_written_inputs_never_from_stale_data(
    tmp_path: Path,
) -> None:
    """In a run with the figure step: a figure is drawn as soon as its inputs are written,
    while the next step runs; the figure step takes that picture only when its own data
    would draw the same (a table changed since gives a new picture, not the old one); a
    figure that cannot be prepared early is drawn by the step; nothing is drawn for runs
    that do not select the figure; nothing is left running after the run, nor at the exit
    of a process whose run never ended. (In a fresh process: the drawing server started by
    the run stays with the process.)"""
    done = subprocess.run(
        [sys.executable, "-c", _AHEAD_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=150,  # a worker left running would hold the exit forever
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_the_digest_names_the_picture_to_draw() -> None:
    """Equal calls (data read twice) share a digest; any other value, title or function
    gives another."""
    from segment_pipeline.figures import PlotCall

    call = PlotCall(bars, ([1.0, 2.0],), {"title": "a"})
    assert call_digest(call) == call_digest(PlotCall(bars, ([1.0, 2.0],), {"title": "a"}))
    others = [
        PlotCall(bars, ([1.0, 2.5],), {"title": "a"}),
        PlotCall(bars, ([1.0, 2.0],), {"title": "b"}),
        PlotCall(noted_bars, ([1.0, 2.0],), {"title": "a"}),
    ]
    assert len({call_digest(c) for c in [call, *others]}) == 4


def test_the_heaviest_figures_inputs_run_first(tmp_path: Path) -> None:
    """In the project's graph, the RFM layer's figure inputs (its five figures are about half
    of a run's drawing) run before the other layers' steps that are ready with them, so that
    those figures are drawn while the other steps run."""
    from segment_pipeline.generator import generate
    from segment_pipeline.runner import execute_pipeline
    from segment_pipeline_tests.conftest import settings_for

    generate(tmp_path / "data", customers=60, days=5, seed=3)
    settings = settings_for(tmp_path / "data", tmp_path / "w" / "segments.duckdb")
    with dg.instance_for_test() as instance:
        outcome = execute_pipeline(settings, instance=instance, echo=False)
        assert outcome.success, outcome.messages
        events = [
            e.dagster_event
            for run_id in outcome.run_ids
            for e in instance.all_logs(run_id)
            if e.is_dagster_event
        ]
    started = [e.step_key for e in events if e.event_type_value == "STEP_START"]
    inputs = {dep.to_python_identifier() for spec in rfm.FIGURE_LAYER.specs for dep in spec.deps}
    assert inputs <= set(started)
    last_input = max(started.index(step) for step in inputs)
    # the snapshots and the behaviour layer are ready as soon as staging is, like the RFM layer
    for other in ("customer_snapshots", "marts__category_price_segments"):
        assert started.index(other) > last_input, started
