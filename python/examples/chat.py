"""A line chat on the local network: run it on two or more machines (or twice on one); Ctrl-C leaves."""

import multipeer


class Chat(multipeer.MultipeerConnectivity):
    def receive(self, message, from_peer):
        print(f"{from_peer.display_name}: {message}")


with Chat(display_name=input("Name: "), service_type="py-chat") as chat:
    try:
        while True:
            chat.send(input())
    except (KeyboardInterrupt, EOFError):
        pass
