#!/usr/bin/env bash
# Records the DNS fixtures in this folder from real traffic: our own dnsmasq (not a system
# service) on 127.0.0.1:15353, and a second one on 127.0.0.2:53 for glibc's resolver (which
# only speaks to port 53), driven by dig, by glibc's getaddrinfo (python3 in a private mount
# namespace whose /etc/resolv.conf names 127.0.0.2) and by raw Python sockets; captured with
# tshark on lo, then split by extract.py (UDP datagrams → <case>.datagrams) and by
# ../http1/extract.py (TCP connections → <case>.client.bin/.server.bin/.timeline); see README.md.
# Needs root (capture on lo, port 53, unshare), dnsmasq, dnsutils (dig), python3 and tshark.
# Re-running changes ids, ports and timings, so the baselines (<case>.expected) must then be
# regenerated: WIRELENS_BLESS=1 cargo test -p wirelens-parsers dns.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=15353
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_PCAP:-}" ]; then cp "$work"/*.pcap "$KEEP_PCAP"/ || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Names dnsmasq answers: A/AAAA from a hosts file, a CNAME, MX, TXT, SRV; blocked.test is
# answered NXDOMAIN (--address=/blocked.test/); fail.test is forwarded to a closed port
# (SERVFAIL); anything else is REFUSED (--no-resolv, no upstream).
cat >"$work/hosts" <<'H'
192.0.2.10 host.test
2001:db8::10 host.test
192.0.2.11 mail.test
H
for i in $(seq 1 40); do echo "198.51.100.$i big.test" >>"$work/hosts"; done
dns_args=(--no-daemon --bind-interfaces --no-resolv --no-hosts --addn-hosts="$work/hosts"
    --log-queries --cname=alias.test,host.test --mx-host=host.test,mail.test,10
    --txt-record=txt.test,"v=spf1 -all","second string" --srv-host=_ldap._tcp.host.test,mail.test,389,0,100
    --address=/blocked.test/ --server=/fail.test/127.0.0.1#9 --pid-file= --user=root)

tshark -i lo -f "udp port $port or tcp port $port or (host 127.0.0.2 and port 53)" -F pcap \
    -w "$work/capture.pcap" -q 2>"$work/tshark.log" &
pids+=($!)
dnsmasq "${dns_args[@]}" --port="$port" --listen-address=127.0.0.1 >"$work/dnsmasq1.log" 2>&1 &
pids+=($!)
dnsmasq "${dns_args[@]}" --port=53 --listen-address=127.0.0.2 >"$work/dnsmasq2.log" 2>&1 &
pids+=($!)
sleep 2

d() { dig @127.0.0.1 -p "$port" +tries=1 +time=2 "$@" >/dev/null || true; }
# UDP: each dig query uses its own socket (source port).
# udp_dig: one dig call, many queries.
d host.test A host.test AAAA alias.test A host.test MX txt.test TXT _ldap._tcp.host.test SRV \
    blocked.test A unknown.test A fail.test A host.test TYPE65 host.test TYPE65400
sleep 3
# udp_truncated: 40 A records without EDNS: TC set over UDP, dig retries over TCP (tcp_retry).
d +noedns +ignore big.test A
d +noedns big.test A
sleep 3
# tcp_keepopen: several queries on one TCP connection.
d +tcp +keepopen host.test A alias.test A blocked.test A txt.test TXT
sleep 3
# glibc: getaddrinfo (A and AAAA on one socket with sendmmsg, answers read with recvfrom).
printf 'nameserver 127.0.0.2\n' >"$work/resolv.conf"
unshare -m sh -c "mount --bind '$work/resolv.conf' /etc/resolv.conf && python3 -c '
import socket
for name in (\"host.test\", \"alias.test\", \"blocked.test\"):
    try: socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    except socket.gaierror: pass
'"
sleep 3
# python: one socket, odd cases: a retransmitted query (same id twice), two queries with the
# same id from a second socket, a query sent while another is pending, a query with a
# compressed name the server must answer, and a TCP connection with three pipelined queries.
python3 - "$port" <<'PY'
import socket, struct, sys, time
port = int(sys.argv[1])
def q(qid, name, qtype=1, flags=0x0100):
    body = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 0) + body + struct.pack(">HH", qtype, 1)
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.settimeout(1)
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.settimeout(1)
srv = ("127.0.0.1", port)
a.sendto(q(0x1111, "host.test"), srv); time.sleep(0.05)
a.sendto(q(0x1111, "host.test"), srv)          # retransmission
b.sendto(q(0x1111, "mail.test"), srv)           # same id, other peer
a.sendto(q(0x2222, "host.test", 28), srv)       # back to back with the next
a.sendto(q(0x3333, "alias.test"), srv)
for s in (a, a, a, a, b):
    try: s.recvfrom(4096)
    except socket.timeout: pass
a.sendto(b"\x12\x34\x01", srv)                  # garbage: dnsmasq ignores it
time.sleep(0.05)
t = socket.create_connection(srv)
t.sendall(b"".join(struct.pack(">H", len(m)) + m for m in
                   (q(0x4444, "host.test"), q(0x5555, "txt.test", 16), q(0x6666, "blocked.test"))))
buf = b""; t.settimeout(2)
while buf.count(b"") and len(buf) < 3 * 30:
    try:
        chunk = t.recv(4096)
    except socket.timeout:
        break
    if not chunk: break
    buf += chunk
time.sleep(0.2)
t.close()
PY

sleep 2
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
python3 "$here/extract.py" "$work/capture.pcap" "$here" udp_dig udp_truncated udp_glibc udp_python
python3 "$here/../http1/extract.py" "$work/capture.pcap" "$here" tcp_retry tcp_keepopen tcp_pipelined
echo "dnsmasq: $(dnsmasq --version | head -1)"; echo "dig: $(dig -v 2>&1)"
echo "python: $(python3 --version)"; echo "tshark: $(tshark --version | head -1)"
