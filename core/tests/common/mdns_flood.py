# Floods one LAN segment with forged DNS-SD services of one type: most with garbage TXT records, some
# well-formed but pointing at a port where nothing listens. Usage: mdns_flood.py TYPE ADDR COUNT VALID SECONDS
# (sent from ADDR to the mDNS group; run it only inside a test network namespace).
import random, socket, struct, sys, time, json
from zeroconf import DNSOutgoing, DNSPointer, DNSService, DNSText, DNSAddress, const
stype, addr, count, valid, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
rng = random.Random(6762)
def entry(b):
    b = b[:255]
    return bytes([len(b)]) + b
def garbage_txt(i):
    k = i % 10
    hexid = "".join(rng.choice("0123456789abcdef") for _ in range(64))
    if k == 0: return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 400)))  # raw noise
    if k == 1: return b"\xff" + b"x" * 10                                             # length overruns
    if k == 2: return entry(b"id=" + hexid[:40].encode()) + entry(b"pv=1") + entry(b"dn=short id")
    if k == 3: return entry(b"id=" + b"zz" * 32) + entry(b"pv=1") + entry(b"dn=not hex")
    if k == 4: return entry(b"id=" + hexid.encode()) + entry(b"pv=999") + entry(b"dn=future")
    if k == 5: return entry(b"id=" + hexid.encode()) + entry(b"pv=1") + entry(b"dn=")
    if k == 6: return entry(b"id") + entry(b"=") + entry(b"") + entry(b"pv") + entry(b"dn=\xc3\x28\xff")
    if k == 7: return b"".join(entry(("k%d=%s" % (j, "v" * 200)).encode()) for j in range(40))
    if k == 8: return entry(b"id=" + hexid.encode() + b"00") + entry(b"id=" + hexid.encode()) + entry(b"pv=1")
    return b""
services = []
for i in range(count):
    label = "fake %d %s" % (i, "".join(rng.choice("abc\\.()\u00e9") for _ in range(rng.randrange(0, 30))))
    name = "%s.%s" % (label, stype)
    host = "fake-%d.local." % i
    if i < valid:
        hexid = "".join(rng.choice("0123456789abcdef") for _ in range(64))
        txt = entry(("id=" + hexid).encode()) + entry(b"pv=3") + entry(("dn=forged %d" % i).encode())
    else:
        txt = garbage_txt(i)
    services.append((name, host, txt, rng.randrange(1024, 65535)))
def packet(name, host, txt, port):
    out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
    out.add_answer_at_time(DNSPointer(stype, const._TYPE_PTR, const._CLASS_IN, 120, name), 0)
    out.add_answer_at_time(DNSService(name, const._TYPE_SRV, const._CLASS_IN | const._CLASS_UNIQUE, 120, 0, 0, port, host), 0)
    out.add_answer_at_time(DNSText(name, const._TYPE_TXT, const._CLASS_IN | const._CLASS_UNIQUE, 120, txt), 0)
    out.add_answer_at_time(DNSAddress(host, const._TYPE_A, const._CLASS_IN | const._CLASS_UNIQUE, 120, socket.inet_aton(addr)), 0)
    return out.packets()
packets = [p for s in services for p in packet(*s)]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
deadline = time.monotonic() + seconds
rounds = 0
while time.monotonic() < deadline:
    for p in packets:
        sock.sendto(p, ("224.0.0.251", 5353))
    rounds += 1
    if rounds == 1:
        print(json.dumps({"event": "flooding", "services": count, "valid": valid, "packets": len(packets)}), flush=True)
    time.sleep(1.0)
print(json.dumps({"event": "flood_done", "rounds": rounds}), flush=True)
