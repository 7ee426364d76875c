"""The examples run for real, on an in-process network instead of the local network."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from helpers import run

import multipeer

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
pytestmark = pytest.mark.skipif(not os.path.isdir(EXAMPLES), reason="the examples are not here")


def test_chat(tmp_path: Any) -> None:
    harness = textwrap.dedent(
        """
        import queue, runpy, sys
        import multipeer

        network = multipeer.InProcessNetwork()
        start = multipeer.MultipeerConnectivity.__init__

        def on_network(self, *args, **kwargs):
            kwargs.setdefault("network", network)
            start(self, *args, **kwargs)

        multipeer.MultipeerConnectivity.__init__ = on_network

        class Bot(multipeer.MultipeerConnectivity):
            def __init__(self):
                self.heard = queue.Queue()
                super().__init__("bot", "py-chat")

            def peer_added(self, peer_id):
                pass

            def receive(self, message, from_peer):
                self.heard.put((from_peer.display_name, message))

        bot = Bot()
        runpy.run_path(sys.argv[1], run_name="__main__")
        print("bot heard", bot.heard.get(timeout=10))
        """
    )
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(multipeer.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    child = subprocess.Popen(
        [sys.executable, "-u", "-c", harness, os.path.join(EXAMPLES, "chat.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write("alice\n")
        child.stdin.flush()
        # Type the message once the bot joined (a message sent before reaches nobody).
        seen = ""
        while "Added peer bot" not in seen:
            line = child.stdout.readline()
            assert line, "the chat ended before the bot joined"
            seen += line
        out, err = child.communicate("hello, bot\n", timeout=60)  # then end of input: the chat leaves
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert "bot heard ('alice', 'hello, bot')" in out


def test_send_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("send_file_example", os.path.join(EXAMPLES, "send_file.py"))
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    network = multipeer.InProcessNetwork()
    start = multipeer.Session.start.__func__  # type: ignore[attr-defined]

    def on_network(cls: type, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("network", network)
        return start(cls, *args, **kwargs)

    monkeypatch.setattr(multipeer.Session, "start", classmethod(on_network))
    files = []
    for name, size in (("big.bin", 3_000_000), ("small.txt", 12)):
        path = tmp_path / name
        path.write_bytes(os.urandom(size))
        files.append(path)
    inbox = tmp_path / "inbox"

    async def main() -> None:
        receiving = asyncio.ensure_future(example.receive("receiver", "send-file", str(inbox), len(files)))
        assert await example.send("sender", "send-file", [str(f) for f in files], "receiver") == 0
        assert await asyncio.wait_for(receiving, 30) == 0

    run(main())
    for path in files:
        received = inbox / path.name
        assert hashlib.sha256(received.read_bytes()).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
