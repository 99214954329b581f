"""The process figures are drawn from: a drawing server started at a run's start, with
matplotlib and the figure modules imported, that the figure step's workers fork from.

Drawing is matplotlib text layout and rasterisation: CPU-bound Python. The figure step draws
in worker processes, one per core. A run's own process is single-threaded Python for most of
its life and leaves the second core idle, so a run whose steps draw figures starts this server
when it initializes its resources (`figures.FigureDrawing`, however the run was launched): it
imports matplotlib and the four figure modules (about 3 s of CPU on this VM) on that idle core
while the other steps run, and the run's process never imports matplotlib. Without a server
(the resource configured with `server: false`, or a platform without fork),
`figures.draw_all` forks its workers from the run's process, or draws in it.

This module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import multiprocessing
import signal
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from matplotlib.figure import Figure

#: Where the plotting functions live: what the drawing server imports before its first fork.
FIGURE_MODULES = (
    "segment_pipeline.logic.rfm_figures",
    "segment_pipeline.logic.behaviour_figures",
    "segment_pipeline.logic.dynamics_figures",
    "segment_pipeline.logic.clv_figures",
)


@dataclass(frozen=True)
class PlotFunction:
    """A plotting function named by its module and name, imported where it is called: the run's
    process prepares a figure's data without importing matplotlib, and the call pickles as two
    strings for a worker."""

    module: str
    name: str

    def resolve(self) -> Any:
        """The function itself (importing its module)."""
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Figure:
        return self.resolve()(*args, **kwargs)


class PlotFunctions:
    """A figure module's plotting functions, by name, without importing the module."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> PlotFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        return PlotFunction(self._module, name)


_server_context: BaseContext | None = None


def start_server() -> None:
    """Start the drawing server in the background (Linux only; once per process). Returns at
    once: the server imports its modules while the caller goes on."""
    global _server_context
    if _server_context is not None or sys.platform != "linux":
        return
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["matplotlib.pyplot", *FIGURE_MODULES])
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C in a terminal reaches the whole process group: the server must not die of
        # it with a traceback while it imports (the run's process handles it, and the server
        # ends with that process). Started with SIGINT ignored, it keeps it ignored (exec
        # keeps an ignored signal, and Python then installs no handler of its own).
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)
    else:
        forkserver.ensure_running()
    _server_context = context


def server_context() -> BaseContext | None:
    """The multiprocessing context whose workers fork from the drawing server, if started."""
    return _server_context
