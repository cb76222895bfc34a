"""Coalescing reads that must not be stale: many callers, few database round trips."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class FreshRead(Generic[T]):
    """Runs ``read`` for concurrent callers at most once at a time, and gives every caller
    the result of a read that *began after it asked*: a caller arriving while a read runs
    waits for the next one, which all such callers share. So a surge of a thousand callers
    costs two or three reads, and nobody gets an answer older than their question (a cache
    or plain single-flight could hand out a read that began before a change they caused).
    """

    def __init__(self, read: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._read = read
        self._running: asyncio.Task[T] | None = None
        self._next: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        if self._running is None:
            self._running = self._start()
            return await asyncio.shield(self._running)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._next)

    def _start(self) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.get_running_loop().create_task(self._read())
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[T]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: the callers re-raise it
        waiting, self._next = self._next, None
        self._running = None
        if waiting is None:
            return
        self._running = self._start()
        self._running.add_done_callback(lambda done: _settle(waiting, done))


def _settle(future: asyncio.Future[T], task: asyncio.Task[T]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (error := task.exception()) is not None:
        future.set_exception(error)
        future.exception()  # retrieved: the callers re-raise it
    else:
        future.set_result(task.result())
