"""Python's cyclic garbage collector during start-up: paused while modules load, then kept off them.

A CLI start makes tens of thousands of objects that live as long as the process (modules, classes,
functions, wasmtime's ctypes bindings). With the collector on, Python walks them again and again
while importing and once more at exit: about 20 ms of ``run`` hello (bench/run.py) and of
``build`` (bench/build.py). :func:`loading` pauses the collector around imports; in a process of
its own (:func:`own_process`, called by ``main()`` from the console script) what was loaded is then
frozen (``gc.freeze``), so no later pass walks it. What is made afterwards (a workload run's
objects, a server's requests) is collected as usual. An in-process caller (a test calling
``main(argv)``) keeps its collector as it was: nothing is frozen there.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_own_process = False


def own_process() -> None:
    """This process is enarx-pkg's own: what :func:`loading` loads may be frozen."""
    global _own_process
    _own_process = True


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Run the block (imports) with the collector paused; in our own process, freeze what it loaded."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _own_process:
            gc.freeze()
        if enabled:
            gc.enable()
