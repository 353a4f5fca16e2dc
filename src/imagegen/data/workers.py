"""An order-preserving, memory-bounded parallel map over worker processes.

``multiprocessing.Pool.imap`` reads its whole input ahead in a feeder thread, so an
input of a million encoded images would sit in memory. :func:`ordered_map` instead keeps
at most ``ahead`` chunks (and about ``max_pending_bytes`` of payload) in flight and
yields results in input order, so the output is the same with any number of workers.

Workers are forked where the platform allows it (Linux: no re-import of the caller's
script, so ``import_images`` works from a script without a ``__main__`` guard, and
workers start in milliseconds), and :func:`worker_pool` forks them all at once, before
the caller starts any thread (downloads, progress bars). Elsewhere they are spawned.
Workers ignore Ctrl-C: the main process handles it and stops them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections import deque
from multiprocessing.pool import AsyncResult, Pool
from typing import Any, Callable, Iterable, Iterator, TypeVar

MAX_PENDING_BYTES = 256 * 2**20  # encoded input bytes queued for the workers, at most

R = TypeVar("R")


def default_workers() -> int:
    """Worker processes to use: the CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = "1"


def _run_chunk(fn: Callable[..., R], chunk: list[Any], args: tuple[Any, ...]) -> list[R]:
    return [fn(*item, *args) for item in chunk]


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Pool | None]:
    """A pool of ``workers`` processes (None when ``workers <= 1``: work in-process)."""
    if workers <= 1:
        yield None
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = multiprocessing.get_context(method).Pool(workers, initializer=_init_worker)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def _payload_bytes(item: tuple[Any, ...]) -> int:
    return sum(len(x) for x in item if isinstance(x, (bytes, bytearray)))


def ordered_map(fn: Callable[..., R], items: Iterable[tuple[Any, ...]], *, pool: Pool | None,
                args: tuple[Any, ...] = (), chunk: int = 32, ahead: int | None = None,
                max_pending_bytes: int = MAX_PENDING_BYTES) -> Iterator[R]:
    """Yield ``fn(*item, *args)`` for each item, in order, on ``pool`` (or in-process).

    ``fn`` must be a module-level function and items picklable. At most ``ahead`` chunks
    (default 4 per worker) and about ``max_pending_bytes`` of ``bytes`` payloads are
    pending (always at least one chunk).

    Example:
        >>> list(ordered_map(pow, [(2, 3), (3, 2)], pool=None))
        [8, 9]
    """
    iterator = iter(items)
    if pool is None:
        for item in iterator:
            yield fn(*item, *args)
        return
    ahead = ahead or 4 * pool._processes  # type: ignore[attr-defined]
    chunk_bytes = max(1, max_pending_bytes // ahead)
    pending: deque[tuple[AsyncResult[list[R]], int]] = deque()
    pending_bytes = 0
    while True:
        while len(pending) < ahead and (not pending or pending_bytes < max_pending_bytes):
            batch, size = [], 0
            for item in iterator:
                batch.append(item)
                size += _payload_bytes(item)
                if len(batch) >= chunk or size >= chunk_bytes:
                    break
            if not batch:
                break
            pending.append((pool.apply_async(_run_chunk, (fn, batch, args)), size))
            pending_bytes += size
        if not pending:
            return
        result, size = pending.popleft()
        pending_bytes -= size
        yield from result.get()
