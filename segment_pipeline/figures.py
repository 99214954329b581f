"""Shared plumbing for figure assets: render headless, write the PNG, store it in DuckDB and
preview it inline in the Dagster UI.

Figures are deterministic for the same data: the Agg backend, a fixed DPI, and PNG metadata
without the matplotlib version or a timestamp, so the bytes (and their hash) only change when
the picture does.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import gc
import hashlib
import io
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import dagster as dg
import duckdb

from segment_pipeline import drawing
from segment_pipeline.jobs import planned_asset_outputs
from segment_pipeline.resources import WAREHOUSE_POOL
from segment_pipeline.tables import Column, TableDef, ensure_table

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from matplotlib.figure import Figure

FIGURE_DPI = 110
#: zlib level of the PNG encoder. Measured on the 15 figures (2.4 MB): level 3 encodes in
#: 0.49 s of CPU against 0.82 s at PIL's default 6, and the files come out 3% smaller; the
#: pixels are the same at every level.
PNG_COMPRESS_LEVEL = 3

#: The first part of every figure asset's key (`figures/<stem>`).
FIGURES_PREFIX = "figures"

#: At most this many figures are drawn at once (one process each, never more than the cores).
MAX_FIGURE_WORKERS = 4

FIGURES_TABLE = TableDef(
    schema="figures",
    name="figures",
    description="Every rendered figure: its file name, the PNG bytes and their SHA-256.",
    columns=(
        Column(
            "name",
            "VARCHAR",
            "File name of the figure, e.g. spa_segment_top5_products.png",
            nullable=False,
        ),
        Column("asset_key", "VARCHAR", "The Dagster asset that renders it"),
        Column("png", "BLOB", "The PNG bytes"),
        Column("sha256", "VARCHAR", "SHA-256 of the PNG bytes"),
        Column("width_px", "INTEGER", "Width in pixels"),
        Column("height_px", "INTEGER", "Height in pixels"),
        Column("file_path", "VARCHAR", "Where the PNG file was written"),
    ),
    primary_key=("name",),
)


def render_png(fig: Figure) -> bytes:
    """Render a matplotlib figure to deterministic PNG bytes, cropped to what it draws.

    The same bytes as `savefig(bbox_inches="tight")`, one layout pass fewer. For "tight",
    savefig first draws the whole figure without rendering (a pass of text layout over every
    label, about a fifth of a figure's drawing) whenever the figure has a layout engine, and
    `tight_layout()` leaves a placeholder engine behind. A figure with nothing left to lay
    out (that placeholder, or no engine) needs no such pass: its bounds come from
    `get_tightbbox` at the output resolution, and savefig is handed that box with the
    engine cleared. test_figures checks the bytes against savefig's own "tight".
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.layout_engine import PlaceHolderLayoutEngine
    from matplotlib.transforms import Bbox

    buffer = io.BytesIO()
    bounds: Bbox | str = "tight"
    engine = fig.get_layout_engine()
    if engine is None or isinstance(engine, PlaceHolderLayoutEngine):
        fig.set_dpi(FIGURE_DPI)
        renderer = FigureCanvasAgg(fig).get_renderer()
        bounds = fig.get_tightbbox(renderer).padded(matplotlib.rcParams["savefig.pad_inches"])
        fig.set_layout_engine(None)
    fig.savefig(
        buffer,
        format="png",
        dpi=FIGURE_DPI,
        bbox_inches=bounds,
        metadata={"Software": None},
        pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL},
    )
    return buffer.getvalue()


def store_figure(
    conn: duckdb.DuckDBPyConnection,
    png: bytes,
    width: int,
    height: int,
    name: str,
    figures_dir: Path,
    asset_key: str,
) -> dict[str, Any]:
    """Write the PNG bytes as `figures_dir/name` and upsert them into `figures.figures`;
    return the asset metadata (path, hash, size and an inline preview)."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    path = figures_dir / name
    path.write_bytes(png)
    digest = hashlib.sha256(png).hexdigest()

    ensure_table(conn, FIGURES_TABLE)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"DELETE FROM {FIGURES_TABLE.fqn} WHERE name = ?", [name])
        conn.execute(
            f"INSERT INTO {FIGURES_TABLE.fqn} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [name, asset_key, png, digest, width, height, str(path)],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return figure_metadata(png, path, digest)


def figure_metadata(png: bytes, path: Path, digest: str) -> dict[str, Any]:
    encoded = base64.b64encode(png).decode("ascii")
    return {
        "path": dg.MetadataValue.path(str(path)),
        "sha256": dg.MetadataValue.text(digest),
        "size_bytes": dg.MetadataValue.int(len(png)),
        "preview": dg.MetadataValue.md(f"![{path.name}](data:image/png;base64,{encoded})"),
    }


# --------------------------------------------------------------------------------------------
# One factory for every layer's figure assets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlotCall:
    """A plot to draw: a module-level plotting function and its (picklable) arguments, so the
    drawing can happen in a worker process."""

    plot: Callable[..., Figure]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class FigureContext(Protocol):
    """What a figure's `prepare` may use of its context: the figure step's, or the hook's that
    prepares the figure ahead of that step (`draw_ahead_hook`)."""

    @property
    def run_id(self) -> str: ...

    @property
    def instance(self) -> dg.DagsterInstance: ...

    @property
    def log(self) -> dg.DagsterLogManager: ...


@dataclass(frozen=True)
class FigureSpec:
    """One figure asset: `figures/<stem>`, drawn from what `prepare` reads (in the run's
    process, with the warehouse connection and the layer's settings resource). `prepare`
    reads what `deps` hold: once they are written, a run may prepare and draw the figure
    before its figure step (`draw_ahead_hook`)."""

    stem: str
    deps: tuple[dg.AssetKey, ...]
    description: str
    prepare: Callable[[duckdb.DuckDBPyConnection, Any, FigureContext], PlotCall]

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([FIGURES_PREFIX, self.stem])

    @property
    def file_name(self) -> str:
        return f"{self.stem}.png"


def _draw(call: PlotCall) -> tuple[bytes, int, int]:
    """Draw one figure to PNG bytes (in a worker process or in the run's own)."""
    import matplotlib.pyplot as plt

    fig = call.plot(*call.args, **call.kwargs)
    try:
        png = render_png(fig)
        width, height = (int(v) for v in fig.get_size_inches() * FIGURE_DPI)
    finally:
        plt.close(fig)
    return png, width, height


def draw_all(calls: Sequence[PlotCall], workers: int | None = None) -> list[tuple[bytes, int, int]]:
    """Draw `calls` to PNG, in parallel worker processes where the platform forks cheaply.

    Drawing is matplotlib text layout and rasterisation: CPU-bound Python that holds the GIL,
    so threads do not help, and it is most of the pipeline's fixed cost (0.1-1.4 s of CPU a
    figure). The workers fork from the drawing server when the run started one
    (`drawing.start_server`: matplotlib is imported there, never in the run's process), else
    from the run's process. The PNG bytes are the same whoever draws them.
    """
    if workers is None:
        workers = min(len(calls), os.cpu_count() or 1, MAX_FIGURE_WORKERS)
    if workers <= 1 or sys.platform != "linux":
        return [_draw(call) for call in calls]
    if drawing.server_context() is not None:
        return list(draw_as_prepared(calls, len(calls), workers))
    return _draw_in_forked_workers(calls, workers)


def draw_as_prepared(
    calls: Iterable[PlotCall],
    count: int,
    workers: int | None = None,
    ahead: DrawingAhead | None = None,
) -> Iterator[tuple[bytes, int, int]]:
    """`draw_all` for the drawing server's workers, lazily: each of the `count` `calls` is
    handed to a worker as soon as the iterable yields it (the caller prepares the next
    figure's data while the first ones are drawn) and each picture is yielded as soon as it
    and those before it are drawn (the caller stores it while the later ones are drawn).
    In the order of `calls`; a worker that dies costs time, not figures. With the run's
    `ahead`, its pictures drawn ahead are taken and its workers draw the rest."""
    if ahead is not None:
        yield from ahead.draw(calls)
        return
    server = drawing.server_context()
    if workers is None:
        workers = min(count, os.cpu_count() or 1, MAX_FIGURE_WORKERS)
    if server is None or workers <= 1:
        yield from (_draw(call) for call in calls)
        return
    submitted: list[tuple[PlotCall, Future | None]] = []
    with ProcessPoolExecutor(workers, mp_context=server) as pool:
        for call in calls:
            try:
                submitted.append((call, pool.submit(_draw, call)))
            except BrokenProcessPool:
                submitted.append((call, None))
        yield from _pictures(submitted)


def _pictures(
    submitted: Iterable[tuple[PlotCall, Future | None]],
) -> Iterator[tuple[bytes, int, int]]:
    """Each call's picture from its worker, in order; drawn here when the call never reached
    a worker, or its worker died or failed (the server is another interpreter than this one,
    started from the same environment): never lost. A figure that fails here too fails the
    step, with its own error."""
    for call, future in submitted:
        picture = None
        if future is not None:
            with contextlib.suppress(Exception):
                picture = future.result()
        yield picture if picture is not None else _draw(call)


def _draw_in_forked_workers(
    calls: Sequence[PlotCall], workers: int
) -> list[tuple[bytes, int, int]]:
    """`draw_all` in workers forked from this process (no drawing server)."""
    # The plotting modules imported once, here, rather than once in every worker.
    for call in calls:
        if isinstance(call.plot, drawing.PlotFunction):
            call.plot.resolve()
    # matplotlib drops its cached font files in a forked child (os.register_at_fork), so
    # siblings never share a file offset.
    context = multiprocessing.get_context("fork")
    # The run's process has other threads (DuckDB's, the runner's) and objects whose C state
    # a forked child does not own: a worker's garbage collector once traversed them and
    # crashed (a segfault in CI, stop 24). Frozen, the parent's objects are never collected
    # in a child (nor in the parent until the pool is done); a worker collects nothing, it
    # draws a few figures and exits.
    gc.freeze()
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=gc.disable) as pool:
            return list(pool.map(_draw, calls))
    except BrokenProcessPool:
        # a worker died anyway: the figures are drawn here instead, never lost
        return [_draw(call) for call in calls]
    finally:
        gc.unfreeze()


# --------------------------------------------------------------------------------------------
# Figures drawn ahead of the figure step, while the table steps run
# --------------------------------------------------------------------------------------------

#: Figures drawn at once while the run's table steps go on: one worker, on the core the run's
#: own process leaves idle (the steps are one thread of Python, or DuckDB's threads on larger
#: data, which a second worker would slow down).
AHEAD_WORKERS = 1


def call_digest(call: PlotCall) -> str:
    """What a picture is drawn from, as a hash: the plotting function's name and its
    arguments, pickled. The same digest draws the same bytes (the figures are deterministic),
    so a picture drawn ahead is the figure step's picture when their calls' digests match."""
    return hashlib.sha256(pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()


class DrawingAhead:
    """One run's figures drawn ahead of its figure step, in workers forked from the drawing
    server, while the table steps still run.

    The run's process runs one step at a time and leaves the second core idle until the
    figure step, which then draws every figure at once. A figure whose inputs are written
    (`draw_ahead_hook`, after each step) is offered here and drawn by one worker
    (`AHEAD_WORKERS`) while the later steps run; the figure step takes a picture drawn ahead
    when its own call has the same digest (`call_digest`), and draws the rest itself, with
    every worker. A picture drawn ahead from data that changed afterwards is never used: its
    digest differs. A worker that dies or fails costs the figure step time, not figures.
    """

    def __init__(self, server: BaseContext, workers: int) -> None:
        self._pool = ProcessPoolExecutor(workers, mp_context=server)
        self._lock = threading.Condition()
        self._waiting: dict[str, PlotCall] = {}  # offered, not yet handed to a worker
        self._drawing: dict[str, Future] = {}  # handed to a worker (drawn, or being drawn)
        self._ahead = True  # until the figure step: at most AHEAD_WORKERS at once
        self._closed = False
        self.written: set[dg.AssetKey] = set()  # the run's assets written so far
        self.offered: set[dg.AssetKey] = set()  # the figures prepared so far
        self._feeder = threading.Thread(target=self._feed, name="drawing-ahead", daemon=True)
        self._feeder.start()

    def offer(self, call: PlotCall) -> None:
        """Draw `call` when a worker is free (at once if one is)."""
        digest = call_digest(call)
        with self._lock:
            if self._closed or digest in self._drawing or digest in self._waiting:
                return
            self._waiting[digest] = call
            self._lock.notify_all()

    def _feed(self) -> None:
        """The feeder thread: hands offered calls to the pool, one at a time before the figure
        step (the pool's own queue would hand a busy worker more, which nothing could take
        back)."""
        with self._lock:
            while True:
                while not self._closed and not (self._ahead and self._waiting and self._room()):
                    self._lock.wait()
                if self._closed:
                    return
                digest = next(iter(self._waiting))
                call = self._waiting.pop(digest)
                try:
                    future = self._pool.submit(_draw, call)
                except (BrokenProcessPool, RuntimeError):
                    continue  # the figure step draws it
                future.add_done_callback(self._wake)
                self._drawing[digest] = future

    def _room(self) -> bool:
        return sum(not f.done() for f in self._drawing.values()) < AHEAD_WORKERS

    def _wake(self, _future: Future) -> None:
        with self._lock:
            self._lock.notify_all()

    def draw(self, calls: Iterable[PlotCall]) -> Iterator[tuple[bytes, int, int]]:
        """The figure step's `draw_as_prepared`: each of `calls` taken from the pictures drawn
        ahead when its digest is there, else handed to a worker (every worker now); in order,
        each as soon as it and those before it are drawn."""
        with self._lock:
            self._ahead = False  # the feeder hands out nothing more
            self._waiting.clear()
        submitted: list[tuple[PlotCall, Future | None]] = []
        for call in calls:
            with self._lock:
                future = self._drawing.get(call_digest(call))
            if future is None:
                try:
                    future = self._pool.submit(_draw, call)
                except (BrokenProcessPool, RuntimeError):
                    future = None
            submitted.append((call, future))
        yield from _pictures(submitted)

    def close(self) -> None:
        """Stop the feeder and the workers: what is not drawn yet is dropped, a picture being
        drawn is waited for (a second or two), and the workers have exited on return. They
        must have: the CLI ends with `atexit` handlers and `os._exit` (`cli.entry`), where
        multiprocessing's handler would wait forever for a worker nobody told to stop."""
        with self._lock:
            self._closed = True
            self._waiting.clear()
            self._lock.notify_all()
        self._feeder.join()
        self._pool.shutdown(wait=True, cancel_futures=True)


#: Runs with a figure step, by run id: the assets they write (None: unknown, then every asset
#: counts), registered by the step's resource when the run starts (`FigureDrawing`).
_FIGURE_RUNS: dict[str, Set[dg.AssetKey] | None] = {}
#: Their drawing ahead, started by the first figure a run can draw early.
_AHEAD: dict[str, DrawingAhead] = {}
_AHEAD_LOCK = threading.Lock()


def drawing_ahead(run_id: str) -> DrawingAhead | None:
    """The run's drawing ahead, if it has started."""
    with _AHEAD_LOCK:
        return _AHEAD.get(run_id)


def _start_drawing_ahead(run_id: str) -> DrawingAhead | None:
    server = drawing.server_context()
    if server is None:
        return None
    with _AHEAD_LOCK:
        if run_id not in _FIGURE_RUNS:  # not a figure run, or ended
            return None
        ahead = _AHEAD.get(run_id)
        if ahead is None:
            workers = min(os.cpu_count() or 1, MAX_FIGURE_WORKERS)
            ahead = _AHEAD[run_id] = DrawingAhead(server, workers)
        return ahead


def planned_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Set[dg.AssetKey] | None:
    """The assets `run` writes (the selected figures of the figure step among them); None
    when its plan cannot be read."""
    outputs = planned_asset_outputs(instance, run)
    return None if outputs is None else frozenset(o.asset_key for o in outputs)


def _end_run(run_id: str) -> None:
    with _AHEAD_LOCK:
        _FIGURE_RUNS.pop(run_id, None)
        ahead = _AHEAD.pop(run_id, None)
    if ahead is not None:
        ahead.close()


@atexit.register  # after multiprocessing's own handler, so it runs before it
def _end_every_run() -> None:
    """Close what a run that never tore down its resources left open (a Ctrl-C stops the
    run's thread where it is)."""
    with _AHEAD_LOCK:
        run_ids = [*_AHEAD, *_FIGURE_RUNS]
    for run_id in run_ids:
        _end_run(run_id)


def draw_ahead_hook(
    assets: Sequence[dg.AssetsDefinition], layers: Sequence[FigureLayer]
) -> dg.HookDefinition:
    """A success hook for the steps of `assets` that figures are drawn from: after each, the
    figures of `layers` whose inputs this run has now written (or does not write) are
    prepared and offered to the run's `DrawingAhead`. A run without a figure step, or without
    the drawing server, does nothing here. Preparing ahead never fails the run: a figure that
    cannot be prepared here is prepared, and fails if it must, in the figure step."""
    keys_by_op = {asset.node_def.name: set(asset.keys) for asset in assets}
    specs = [(spec, layer) for layer in layers for spec in layer.specs]
    settings_keys = {layer.settings_key for layer in layers}

    @dg.success_hook(
        name="draw_figures_ahead", required_resource_keys={"warehouse", *settings_keys}
    )
    def _draw_figures_ahead(context: dg.HookContext) -> None:
        with _AHEAD_LOCK:
            if context.run_id not in _FIGURE_RUNS:
                return
            planned = _FIGURE_RUNS[context.run_id]
        ahead = _start_drawing_ahead(context.run_id)
        if ahead is None:
            return
        ahead.written |= keys_by_op.get(context.op.name, set())

        def ready(spec: FigureSpec) -> bool:
            if spec.key in ahead.offered or (planned is not None and spec.key not in planned):
                return False
            pending = [d for d in spec.deps if planned is None or d in planned]
            return all(d in ahead.written for d in pending)

        chosen = [(spec, layer) for spec, layer in specs if ready(spec)]
        if not chosen:
            return
        with context.resources.warehouse.connect() as conn:
            for spec, layer in chosen:
                ahead.offered.add(spec.key)
                settings = getattr(context.resources, layer.settings_key)
                try:  # caught here: an error leaving `connect()` would fail the run
                    call = spec.prepare(conn, settings, context)
                except Exception as exc:
                    context.log.debug(f"{spec.key.to_user_string()} not drawn ahead: {exc!r}")
                    continue
                ahead.offer(call)

    return _draw_figures_ahead


def with_drawing_ahead(
    assets: Sequence[dg.AssetsDefinition], layers: Sequence[FigureLayer]
) -> list[dg.AssetsDefinition]:
    """`assets`, those that a figure of `layers` is drawn from with `draw_ahead_hook`."""
    inputs = {dep for layer in layers for spec in layer.specs for dep in spec.deps}
    feeding = [a for a in assets if not a.keys.isdisjoint(inputs)]
    hook = draw_ahead_hook(feeding, layers)
    return [a.with_hooks({hook}) if a in feeding else a for a in assets]


class FigureDrawing(dg.ConfigurableResource):
    """Starts the drawing server (`drawing.start_server`) when a run whose steps draw figures
    initializes its resources: at the run's start, however it was launched (the CLI, the UI,
    the schedule, the sensor, `dagster asset materialize`), so matplotlib is imported on the
    idle core while the other steps run. `server: false` draws in workers forked from the
    run's process instead (the same pictures)."""

    server: bool = True

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.server:
            drawing.start_server()
            run, instance = context.dagster_run, context.instance
            if run is not None and instance is not None:
                # the steps' hooks may now draw this run's figures ahead (draw_ahead_hook)
                planned = planned_assets(instance, run)
                with _AHEAD_LOCK:
                    _FIGURE_RUNS[run.run_id] = planned

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if context.run_id is not None:
            _end_run(context.run_id)


#: The figure step's own resource key (bound by the step itself: no Definitions entry).
DRAWING_RESOURCE_KEY = "figure_drawing"


@dataclass(frozen=True)
class FigureLayer:
    """A layer's figures and the settings resource their `prepare` functions read."""

    settings_key: str
    specs: Sequence[FigureSpec]
    owners: Sequence[str] = ()


def figure_assets(
    name: str, layers: Sequence[FigureLayer], figures_dir: Path
) -> dg.AssetsDefinition:
    """One multi-asset for every layer's figures: each figure is its own asset (own lineage,
    own materializations, selectable alone), and the selected ones are drawn in parallel in
    one step (one step for all of them: drawing is most of a run's fixed cost, and four
    steps of two to five figures left a core idle). The folder is bound here, not resource
    config (a partial run-config override of a resource would reset it)."""
    by_key = {spec.key: (spec, layer) for layer in layers for spec in layer.specs}

    @dg.multi_asset(
        name=name,
        specs=[
            dg.AssetSpec(
                key=spec.key,
                deps=spec.deps,
                description=spec.description,
                group_name="figures",
                kinds={"matplotlib", "png"},
                owners=list(layer.owners),
                metadata={"file_name": spec.file_name},
            )
            for spec, layer in by_key.values()
        ],
        can_subset=True,
        required_resource_keys={
            "warehouse",
            DRAWING_RESOURCE_KEY,
            *(layer.settings_key for layer in layers),
        },
        resource_defs={DRAWING_RESOURCE_KEY: FigureDrawing()},
        backfill_policy=dg.BackfillPolicy.single_run(),  # ranges run as one run
        pool=WAREHOUSE_POOL,
    )
    # `context` unannotated: this module's string annotations are refused by Dagster.
    def _figures(context) -> Iterator[dg.MaterializeResult]:
        chosen = [by_key[key] for key in by_key if key in context.selected_asset_keys]

        def stored(conn: duckdb.DuckDBPyConnection, spec: FigureSpec, drawn: tuple) -> dict:
            png, width, height = drawn
            metadata = store_figure(
                conn, png, width, height, spec.file_name, figures_dir, spec.key.to_user_string()
            )
            context.log.info(f"wrote {figures_dir / spec.file_name}")
            return metadata

        if drawing.server_context() is not None:
            # The server's workers draw while this process prepares the next figures' data
            # and stores the drawn ones.
            ahead = drawing_ahead(context.run_id)
            with context.resources.warehouse.connect() as conn:
                prepared = (
                    spec.prepare(conn, getattr(context.resources, layer.settings_key), context)
                    for spec, layer in chosen
                )
                drawn = draw_as_prepared(prepared, len(chosen), ahead=ahead)
                for (spec, _layer), picture in zip(chosen, drawn, strict=True):
                    metadata = stored(conn, spec, picture)
                    yield dg.MaterializeResult(asset_key=spec.key, metadata=metadata)
            return
        with context.resources.warehouse.connect() as conn:
            calls = [
                spec.prepare(conn, getattr(context.resources, layer.settings_key), context)
                for spec, layer in chosen
            ]
        # Forked workers draw; they never touch the warehouse (nor close the run's
        # connection: a forked worker ends with os._exit, no finalizers).
        drawn = draw_all(calls)
        with context.resources.warehouse.connect() as conn:
            for (spec, _layer), picture in zip(chosen, drawn, strict=True):
                metadata = stored(conn, spec, picture)
                yield dg.MaterializeResult(asset_key=spec.key, metadata=metadata)

    return _figures
