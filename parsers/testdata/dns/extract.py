#!/usr/bin/env python3
"""Split the UDP datagrams of a libpcap capture into recorded cases.

usage: extract.py CAPTURE.pcap OUTDIR NAME...

Datagrams are grouped into phases: a new phase starts after a silence of more than GAP
seconds (record.sh sleeps between its steps). The Nth NAME names the Nth phase ("-" skips
one). Writes NAME.datagrams: one line per UDP datagram, in capture order,
"MICROSECONDS SRC DST HEX" (time since the phase's first datagram, addresses as ip:port, the
UDP payload in hex). IPv4 on Ethernet (lo) or Linux cooked frames.
"""
import struct
import sys

GAP = 2.5


def datagrams(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        if linktype == 1:
            ethertype, ip = struct.unpack(">H", frame[12:14])[0], frame[14:]
        elif linktype == 113:
            ethertype, ip = struct.unpack(">H", frame[14:16])[0], frame[16:]
        else:
            raise SystemExit(f"unsupported link type {linktype}")
        if ethertype != 0x0800 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        udp = ip[ihl:total]
        sport, dport, length = struct.unpack(">HHH", udp[:6])
        src = ".".join(map(str, ip[12:16])) + f":{sport}"
        dst = ".".join(map(str, ip[16:20])) + f":{dport}"
        yield sec * 1_000_000 + usec, src, dst, udp[8:length]


def main():
    path, outdir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    phases, last = [], None
    for us, src, dst, payload in datagrams(path):
        if last is None or us - last > GAP * 1_000_000:
            phases.append((us, []))
        last = us
        t0, lines = phases[-1]
        lines.append(f"{us - t0} {src} {dst} {payload.hex()}")
    if len(phases) != len(names):
        for t0, lines in phases:
            print("phase:", len(lines), "datagrams, first", lines[0][:80], file=sys.stderr)
        raise SystemExit(f"{len(phases)} phases captured, {len(names)} names given")
    for (_, lines), name in zip(phases, names):
        if name == "-":
            continue
        with open(f"{outdir}/{name}.datagrams", "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} datagrams")


if __name__ == "__main__":
    main()
