"""Releasing a session from Python without shutdown() still says goodbye: the other peer sees "left" at once.

Run with the directory holding the generated Python bindings and the native library as the only argument.
"""

import gc
import queue
import sys
import time

sys.path.insert(0, sys.argv[1])

import multipeer_ffi as mp  # noqa: E402


class Recorder(mp.SessionDelegate):
    """Puts (event, detail) pairs on a queue; everything else is ignored."""

    def __init__(self):
        self.seen = queue.Queue()

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


def main():
    network = mp.InProcessNetwork()
    alice, bob = Recorder(), Recorder()
    a = mp.Session.in_process(config("alice"), alice, network)
    b = mp.Session.in_process(config("bob"), bob, network)
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
    # The last callback: nothing calls into Python after it, so the interpreter may exit.
    assert wait_for(bob, "ended", 5) == "shut down"


if __name__ == "__main__":
    main()
