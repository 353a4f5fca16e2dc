"""An order-preserving, memory-bounded parallel map over worker processes.

``multiprocessing.Pool.imap`` reads its whole input ahead in a feeder thread, so an
input of a million encoded images would sit in memory. :func:`ordered_map` instead keeps
at most ``ahead`` chunks in flight and yields results in input order, so the output is
the same with any number of workers. Workers are started with ``spawn`` (no fork of a
process that may hold threads, e.g. downloads) and run one thread each.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Worker processes to use: the CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def _run_chunk(fn: Callable[..., R], chunk: list[Any], args: tuple[Any, ...]) -> list[R]:
    return [fn(*item, *args) for item in chunk]


def ordered_map(fn: Callable[..., R], items: Iterable[tuple[Any, ...]], *, args: tuple[Any, ...] = (),
                workers: int = 1, chunk: int = 32, ahead: int | None = None) -> Iterator[R]:
    """Yield ``fn(*item, *args)`` for each item, in order, using ``workers`` processes.

    ``workers <= 1`` runs in this process. ``fn`` must be a module-level function and
    items picklable. At most ``ahead`` chunks (default ``4 * workers``) are pending.

    Example:
        >>> list(ordered_map(pow, [(2, 3), (3, 2)]))
        [8, 9]
    """
    iterator = iter(items)
    if workers <= 1:
        for item in iterator:
            yield fn(*item, *args)
        return
    ahead = ahead or 4 * workers
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        pending: deque[Future[list[R]]] = deque()
        try:
            while True:
                while len(pending) < ahead:
                    batch = list(itertools.islice(iterator, chunk))
                    if not batch:
                        break
                    pending.append(pool.submit(_run_chunk, fn, batch, args))
                if not pending:
                    return
                yield from pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
