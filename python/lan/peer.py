"""A Python chat peer for the virtual-LAN test against the Rust chat example: plain text lines out, lines in.

Usage: python peer.py NAME SERVICE. Lines read from stdin are sent to everyone; "/quit" leaves.
"""

import asyncio
import sys
import threading

import multipeer


def say(text: str) -> None:
    print(text, flush=True)


async def main(name: str, service: str) -> None:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(lines.put_nowait, "/quit")

    threading.Thread(target=read, daemon=True).start()
    async with multipeer.Session.start(name, service) as session:
        say(f"* you are {name}")

        async def show() -> None:
            async for event in session.events():
                if isinstance(event, multipeer.PeerAdded):
                    say(f"* joined: {event.peer.display_name}")
                elif isinstance(event, multipeer.PeerRemoved):
                    say(f"* left: {event.peer.display_name} ({event.reason})")
                elif isinstance(event, multipeer.Message):
                    say(f"<{event.peer.display_name}> {event.data.decode(errors='replace')}")

        shown = asyncio.ensure_future(show())
        while (line := await lines.get()) != "/quit":
            await session.send(line.encode())
        shown.cancel()
    say("* bye")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
