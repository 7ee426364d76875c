"""Releasing a session from Python without shutdown() still says goodbye: the other peer sees "left" at once.

Run with the directory holding the generated Python bindings and the native library as the only argument.
"""

import gc
import queue
import sys
import threading
import time
import weakref

sys.path.insert(0, sys.argv[1])

import multipeer_ffi as mp  # noqa: E402


class Recorder(mp.SessionDelegate):
    """Puts (event, detail) pairs on a queue; everything else is ignored."""

    def __init__(self, seen):
        self.seen = seen

    def peer_found(self, peer): pass
    def peer_lost(self, peer): pass
    def invitation_received(self, invitation): pass
    def peer_added(self, peer): self.seen.put(("added", peer.display_name))
    def peer_removed(self, peer, reason): self.seen.put(("removed", reason))
    def received(self, peer, data, reliable): pass
    def stream_data(self, peer, name, data): pass
    def stream_finished(self, peer, name, error): pass
    def duplex_stream_received(self, stream): pass
    def connection_failed(self, peer, reason): pass
    def discovery_state_changed(self, state): pass
    def session_ended(self, reason): self.seen.put(("ended", reason))
    def resource_offered(self, offer): pass
    def resource_started(self, transfer): pass
    def resource_finished(self, transfer, path, error): pass


def wait_for(recorder, kind, limit):
    deadline = time.monotonic() + limit
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {kind!r} within {limit} s")
        event, detail = recorder.seen.get(timeout=left)
        if event == kind:
            return detail


def config(name):
    return mp.SessionConfig(service_type="pydrop", display_name=name, discovery_info={})


class Watched:
    """A recorder only the library holds: `released` is set once the library let go of it, after which it
    never calls into Python for that session again (so the interpreter may exit)."""

    def __init__(self):
        self.seen = queue.Queue()
        self.released = threading.Event()

    def delegate(self):
        recorder = Recorder(self.seen)
        weakref.finalize(recorder, self.released.set)
        return recorder


def main():
    network = mp.InProcessNetwork()
    alice, bob = Watched(), Watched()
    a = mp.Session.in_process(config("alice"), alice.delegate(), network)
    b = mp.Session.in_process(config("bob"), bob.delegate(), network)
    wait_for(bob, "added", 10)
    released = time.monotonic()
    del a
    gc.collect()
    reason = wait_for(bob, "removed", 1.0)
    elapsed = time.monotonic() - released
    assert reason == "left", f"alice's removal after release: {reason!r}"
    assert wait_for(alice, "ended", 5) == "shut down"
    print(f"python: a released session is seen as left after {elapsed * 1000:.0f} ms")
    del b
    gc.collect()
    assert wait_for(bob, "ended", 5) == "shut down"
    # The last callback ran on the library's thread, which may still be returning from it; the interpreter may
    # exit once the library released both delegates.
    for name, watched in (("alice", alice), ("bob", bob)):
        assert watched.released.wait(5), f"{name}'s delegate is still held 5 s after the session ended"


if __name__ == "__main__":
    main()
