"""Helpers for the tests: every wait is bounded, and nothing sleeps to synchronise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import time
from typing import Any, AsyncIterator, Awaitable, Callable, List, Optional, Type, TypeVar

import multipeer

T = TypeVar("T")
E = TypeVar("E", bound=multipeer.Event)

SERVICE = "pytest-mp"
WAIT = 10.0
"""How long a test waits for something that happens within milliseconds on a healthy machine."""


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    """Runs an async test body on a fresh event loop, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class Recorder:
    """Reads a session's events as they come and lets the test wait for the ones it expects.

    Each event is returned by :meth:`next` once, in order among the events of its kind."""

    def __init__(self, session: multipeer.Session) -> None:
        self.session = session
        self.events: List[multipeer.Event] = []
        self._taken: set = set()
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        async for event in self.session.events():
            self.events.append(event)
            self._changed.set()

    def of(self, kind: Type[E]) -> List[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def next(
        self,
        kind: Type[E],
        where: Optional[Callable[[E], bool]] = None,
        timeout: float = WAIT,
    ) -> E:
        """The next event of ``kind`` (matching ``where``) not returned before, waiting at most ``timeout``."""
        return await self._find(kind, where, timeout, take=True)

    async def seen(
        self,
        kind: Type[E],
        where: Optional[Callable[[E], bool]] = None,
        timeout: float = WAIT,
    ) -> E:
        """The first event of ``kind`` (matching ``where``), returned before or not, waiting at most ``timeout``."""
        return await self._find(kind, where, timeout, take=False)

    async def _find(self, kind: Type[E], where: Optional[Callable[[E], bool]], timeout: float, take: bool) -> E:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, event in enumerate(self.events):
                if (not take or i not in self._taken) and isinstance(event, kind) and (where is None or where(event)):
                    if take:
                        self._taken.add(i)
                    return event  # type: ignore[return-value]
            remaining = deadline - loop.time()
            if remaining <= 0 or self._task.done():
                raise AssertionError(
                    f"{self.session.local_peer.display_name}: no {kind.__name__} within {timeout} s; "
                    f"saw {[type(e).__name__ for e in self.events]}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


class Mesh:
    """Sessions on one in-process network, all shut down at the end."""

    def __init__(self, stack: contextlib.AsyncExitStack, tmp: str) -> None:
        self.network = multipeer.InProcessNetwork()
        self._stack = stack
        self._tmp = tmp

    async def start(self, name: str, **options: Any) -> "tuple[multipeer.Session, Recorder]":
        options.setdefault("resource_directory", os.path.join(self._tmp, f"received-{name}"))
        session = await multipeer.Session.start(name, SERVICE, network=self.network, **options)
        await self._stack.enter_async_context(session)
        return session, Recorder(session)


@contextlib.asynccontextmanager
async def mesh(tmp_path: Any) -> AsyncIterator[Mesh]:
    async with contextlib.AsyncExitStack() as stack:
        yield Mesh(stack, str(tmp_path))


async def joined(*recorders: Recorder) -> None:
    """Waits until every session has seen every other one join (events seen before count too)."""
    for rec in recorders:
        for other in recorders:
            if other is not rec:
                other_id = other.session.local_peer.id
                await rec.seen(multipeer.PeerAdded, where=lambda e, other_id=other_id: e.peer.id == other_id)


def get(q: "queue.Queue[T]", timeout: float = WAIT) -> T:
    """The next item of a thread queue, waiting at most ``timeout`` seconds."""
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"nothing arrived within {timeout} s") from None


def get_matching(q: "queue.Queue[Any]", match: Callable[[Any], bool], timeout: float = WAIT) -> Any:
    """The next item of a thread queue that ``match`` accepts (skipping others), within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"nothing matching arrived within {timeout} s")
        try:
            item = q.get(timeout=remaining)
        except queue.Empty:
            continue
        if match(item):
            return item


def poll(condition: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    """Polls ``condition`` until it holds, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        time.sleep(0.005)
