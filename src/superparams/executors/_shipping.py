"""Shipping a run's base to processes that are not the driver's, for every engine.

What several engines share on their way to a worker: the base pickled once, the
experiment's own module by value, with the source lines of the code it carries
(:func:`pickled`, :func:`loaded`), and helper processes started so that they leave
Ctrl-C to the run (:func:`no_ctrl_c`). It never starts, reaches or names an engine.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

    from superparams._space import Space


@contextlib.contextmanager
def no_ctrl_c() -> Iterator[None]:
    """Start processes that ignore Ctrl-C, which is the run's to handle, not theirs.

    A terminal sends SIGINT to its whole process group, which a local cluster's worker
    processes would otherwise share with the run.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def pickled(base: Space[Any]) -> bytes:
    """The base, pickled once, with the experiment's module by value, then the source
    lines of the code that travels with it.

    Workers then need only superparams and the libraries the experiment imports, not the
    user's file on their path; tracebacks still name that file, its lines and their text.
    """
    import io
    import linecache
    import marshal
    import pickle
    import sys
    import types
    from collections import ChainMap

    import cloudpickle

    files: set[str] = set()

    def code(obj: types.CodeType) -> tuple[Any, tuple[bytes]]:
        # As marshal keeps it, its file's name included: cloudpickle puts
        # <dynamic-code> there, to make its pickles the same wherever they are made.
        files.add(obj.co_filename)
        return marshal.loads, (marshal.dumps(obj),)

    class Pickler(cloudpickle.Pickler):  # type: ignore[misc]
        def __init__(self, file: Any) -> None:
            # Read by the C pickler when it is made, so set first.
            ours: dict[type, Callable[[Any], Any]] = {types.CodeType: code}
            # ChainMap writes only to its first map: the pickler's own table is only read.
            theirs = cast("MutableMapping[type, Callable[[Any], Any]]", super().dispatch_table)
            self.dispatch_table = ChainMap(ours, theirs)
            super().__init__(file)

    module = sys.modules.get(base.experiment_class.__module__)
    by_value = module is not None and module.__name__ not in ("__main__", "builtins")
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    out = io.BytesIO()
    try:
        Pickler(out).dump(base)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
    sources = {name: linecache.getlines(name) for name in sorted(files)}
    pickle.dump({name: lines for name, lines in sources.items() if lines}, out)
    return out.getvalue()


def loaded(blob: bytes) -> Any:
    """The base from :func:`pickled`, its code's source lines known to ``linecache``."""
    import io
    import linecache
    import pickle

    from superparams._environment import note_machinery

    note_machinery()  # what is loaded before the experiment is not its environment
    stream = io.BytesIO(blob)
    base = pickle.load(stream)
    for name, lines in pickle.load(stream).items():
        # No modification time: linecache keeps the entry, whatever is on this disk.
        linecache.cache[name] = (sum(map(len, lines)), None, lines, name)
    return base
