"""Round trip of a 64-byte reliable message between two sessions in one process (in-process discovery), the
Python counterpart of the Rust benchmark's "reliable round trip 64 B". Prints p50 and p99 in microseconds.

Usage: python echo.py [rounds]
"""

import asyncio
import statistics
import sys
import time

import multipeer


async def main(rounds: int) -> None:
    network = multipeer.InProcessNetwork()
    async with multipeer.Session.start("ping", "echo-bench", network=network) as a, multipeer.Session.start(
        "pong", "echo-bench", network=network
    ) as b:

        async def joined(session: multipeer.Session) -> multipeer.Peer:
            async for event in session.events():
                if isinstance(event, multipeer.PeerAdded):
                    return event.peer
            raise RuntimeError("session ended before a peer joined")

        peer_b, _ = await asyncio.gather(joined(a), joined(b))

        async def echo() -> None:
            async for event in b.events():
                if isinstance(event, multipeer.Message):
                    await b.send(event.data, to=event.peer)

        echoing = asyncio.ensure_future(echo())
        payload = bytes(64)
        times = []
        for i in range(rounds + 100):
            started = time.perf_counter()
            await a.send(payload, to=peer_b.id)
            while not isinstance(await a.next_event(timeout=5), multipeer.Message):
                pass
            if i >= 100:
                times.append((time.perf_counter() - started) * 1e6)
        echoing.cancel()
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    print(f"python 64 B reliable round trip: p50 {statistics.median(times):.0f} us, p99 {p99:.0f} us ({rounds} rounds)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
