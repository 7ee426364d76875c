"""Send files to a nearby device with progress bars; the receiver checks each file's SHA-256 before keeping it.

    python send_file.py receive [--dir DIR] [--count N]
    python send_file.py send FILE... [--to NAME]

The receiver saves into --dir (default ./received) and stops after --count files (default: never; Ctrl-C
stops it). The sender waits for a receiver (the first peer found, or the one called --to NAME), sends every
FILE to it at once and exits when all are delivered. --service picks another service type (default
send-file), --name the display name. It speaks the same protocol as the Rust example of the same name, so
either end may be the other program.

Progress bars use tqdm when it is installed (pip install "multipeer[progress]"); plain lines otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
from typing import List, Optional

import multipeer

try:
    from tqdm import tqdm
except ImportError:  # the optional extra is not installed
    tqdm = None


async def follow(transfer: multipeer.ResourceTransfer, position: int = 0) -> None:
    """Shows the transfer's progress until it finished."""
    if tqdm is not None:
        with tqdm(
            total=transfer.size,
            desc=transfer.name[:20],
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            position=position,
        ) as bar:
            async for progress in transfer:
                bar.update(progress.transferred - bar.n)
    else:
        async for progress in transfer.updates(interval=1.0):
            rate = progress.bytes_per_second / 1e6
            print(f"{transfer.name}: {progress.fraction:6.1%} {rate:8.1f} MB/s", file=sys.stderr)


async def receive(name: str, service: str, directory: str, count: Optional[int]) -> int:
    async with multipeer.Session.start(name, service, resource_directory=directory) as session:
        print(f"{name!r} receives into {os.path.abspath(directory)}; Ctrl-C stops")
        following = set()
        received = 0
        async for event in session.events():
            if isinstance(event, multipeer.PeerAdded):
                print(f"{event.peer.display_name} is here")
            elif isinstance(event, multipeer.ResourceStarted):
                task = asyncio.ensure_future(follow(event.transfer))
                following.add(task)
                task.add_done_callback(following.discard)
            elif isinstance(event, multipeer.ResourceFinished):
                sender = event.transfer.peer.display_name
                if event.error is not None:
                    print(f"{event.transfer.name} from {sender} failed: {event.error}")
                    continue
                result = await event.transfer  # finished already: the result at once
                print(f"{event.transfer.name} from {sender}: {event.path} (sha256 {result.sha256})")
                received += 1
                if count is not None and received >= count:
                    break
        await asyncio.gather(*following)
    return 0


async def send(name: str, service: str, files: List[str], to: Optional[str]) -> int:
    for path in files:
        if not os.path.isfile(path):
            print(f"no such file: {path}", file=sys.stderr)
            return 2
    async with multipeer.Session.start(name, service) as session:
        print(f"looking for {to!r}..." if to else "looking for a receiver...")
        peer = None
        async for event in session.events():
            if isinstance(event, multipeer.PeerAdded) and to in (None, event.peer.display_name):
                peer = event.peer
                break
        assert peer is not None
        print(f"sending {len(files)} file(s) to {peer.display_name}")
        transfers = [await session.send_file(path, peer) for path in files]
        await asyncio.gather(*(follow(t, i) for i, t in enumerate(transfers)))
        failed = 0
        for transfer in transfers:
            try:
                result = await transfer
            except multipeer.MultipeerError as e:
                print(f"{transfer.name}: {e}")
                failed += 1
            else:
                print(f"{transfer.name}: delivered ({result.size} bytes, sha256 {result.sha256})")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", default="send-file", help="service type (default: send-file)")
    parser.add_argument("--name", default=(platform.node() or "python")[:40], help="display name")
    commands = parser.add_subparsers(dest="command", required=True)
    receiving = commands.add_parser("receive", help="receive files")
    receiving.add_argument("--dir", default="received", help="where to save them (default: ./received)")
    receiving.add_argument("--count", type=int, help="stop after this many files")
    sending = commands.add_parser("send", help="send files")
    sending.add_argument("files", nargs="+", metavar="FILE")
    sending.add_argument("--to", help="the receiver's display name (default: the first peer found)")
    args = parser.parse_args()
    try:
        if args.command == "receive":
            return asyncio.run(receive(args.name, args.service, args.dir, args.count))
        return asyncio.run(send(args.name, args.service, args.files, args.to))
    except KeyboardInterrupt:
        return 130
    except multipeer.InvalidConfig as e:
        parser.error(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
