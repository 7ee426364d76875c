# Forges well-formed multipeer adverts (protocol version 3) on one LAN segment, then withdraws them with goodbyes.
# Run it only inside a test network namespace. Prints one JSON line per phase.
#
#   mdns_forge.py stray TYPE ADDR SECONDS ID...   one advert per ID ("stray N"), at ADDR and a port where nothing
#                                                 listens, kept SECONDS (re-announced each second), then withdrawn
#   mdns_forge.py churn TYPE ADDR COUNT           one instance name re-announced COUNT times, each time with a
#                                                 fresh random id, then withdrawn
import json, random, socket, sys, time
from zeroconf import DNSOutgoing, DNSPointer, DNSService, DNSText, DNSAddress, const

mode, stype, addr = sys.argv[1], sys.argv[2], sys.argv[3]
rng = random.Random(6763)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)


def entry(b):
    return bytes([len(b)]) + b


def advert(label, peer_id, port, ttl):
    name = "%s.%s" % (label, stype)
    host = "%s.local." % label.replace(" ", "-")
    txt = entry(("id=" + peer_id).encode()) + entry(b"pv=3") + entry(("dn=" + label).encode())
    unique = const._CLASS_IN | const._CLASS_UNIQUE
    out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
    out.add_answer_at_time(DNSPointer(stype, const._TYPE_PTR, const._CLASS_IN, ttl, name), 0)
    out.add_answer_at_time(DNSService(name, const._TYPE_SRV, unique, ttl, 0, 0, port, host), 0)
    out.add_answer_at_time(DNSText(name, const._TYPE_TXT, unique, ttl, txt), 0)
    out.add_answer_at_time(DNSAddress(host, const._TYPE_A, unique, ttl, socket.inet_aton(addr)), 0)
    return out.packets()


def send(packets):
    for p in packets:
        sock.sendto(p, ("224.0.0.251", 5353))


def say(**event):
    print(json.dumps(event), flush=True)


if mode == "stray":
    seconds, ids = float(sys.argv[4]), sys.argv[5:]
    adverts = [("stray %d" % i, peer_id, 9) for i, peer_id in enumerate(ids)]
    deadline = time.monotonic() + seconds
    rounds = 0
    while rounds == 0 or time.monotonic() < deadline:
        for a in adverts:
            send(advert(*a, ttl=120))
        rounds += 1
        if rounds == 1:
            say(event="announced", adverts=len(adverts))
        time.sleep(1.0)
    for _ in range(2):
        for a in adverts:
            send(advert(*a, ttl=0))
        time.sleep(0.25)
    say(event="withdrawn", rounds=rounds)
elif mode == "churn":
    count = int(sys.argv[4])
    peer_id = None
    for i in range(count):
        peer_id = "%064x" % rng.getrandbits(256)
        send(advert("churner", peer_id, 9, ttl=120))
        if i == 0:
            say(event="churning", count=count)
        if i % 50 == 49:
            time.sleep(0.05)
    say(event="churned", count=count)
    for _ in range(2):
        send(advert("churner", peer_id, 9, ttl=0))
        time.sleep(0.25)
    say(event="withdrawn")
else:
    sys.exit("unknown mode " + mode)
