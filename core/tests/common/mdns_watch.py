# Watches one DNS-SD service type from a host of the virtual LAN and prints what it sees as JSON lines.
#   mdns_watch.py browse TYPE ADDR SECONDS  -- python-zeroconf's browser: {"event": "added"|"removed", "name"}
#   mdns_watch.py listen TYPE ADDR SECONDS  -- a passive listener on the mDNS group: one {"event": "ptr",
#                                              "alias", "ttl", "t"} per PTR record of TYPE in a packet
# Exits after SECONDS. Run it only inside a test network namespace.
import json, socket, struct, sys, time
from zeroconf import DNSIncoming, DNSPointer, IPVersion, ServiceBrowser, Zeroconf

mode, stype, addr, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline = time.monotonic() + seconds

def emit(value):
    print(json.dumps(value), flush=True)

def browse():
    zc = Zeroconf(interfaces=[addr], ip_version=IPVersion.V4Only)
    class Listener:
        def add_service(self, zc, type_, name): emit({"event": "added", "name": name})
        def update_service(self, zc, type_, name): pass
        def remove_service(self, zc, type_, name): emit({"event": "removed", "name": name})
    browser = ServiceBrowser(zc, stype, Listener())
    while time.monotonic() < deadline:
        time.sleep(0.05)
    browser.cancel()
    zc.close()

def listen():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("", 5353))
    mreq = socket.inet_aton("224.0.0.251") + socket.inet_aton(addr)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    emit({"event": "ready"})
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(9000)
        except socket.timeout:
            break
        now = time.monotonic()
        msg = DNSIncoming(data)
        if not msg.valid or not msg.is_response():
            continue
        for record in msg.answers():
            if isinstance(record, DNSPointer) and record.name.lower() == stype.lower():
                emit({"event": "ptr", "alias": record.alias, "ttl": record.ttl, "t": now})

browse() if mode == "browse" else listen()
