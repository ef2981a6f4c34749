#!/usr/bin/env python3
"""Split a libpcap capture of TCP connections into the bytes each side sent.

usage: extract.py CAPTURE.pcap OUTDIR NAME...

The Nth NAME names the Nth connection (in order of SYN); "-" skips one. Writes
NAME.client.bin (bytes from the connecting side) and NAME.server.bin, reassembled by
sequence number, retransmissions dropped, and NAME.timeline: one line per TCP segment with
data, in capture order, "c|s MICROSECONDS LENGTH" (side, time since the SYN, bytes) or
"c|s MICROSECONDS fin" (that side closed), for replaying both sides in time order. Handles
Ethernet (lo) and Linux cooked frames.
"""
import struct
import sys


def packets(path):
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
        if linktype == 1:  # Ethernet
            ethertype, ip = struct.unpack(">H", frame[12:14])[0], frame[14:]
        elif linktype == 113:  # Linux cooked (SLL)
            ethertype, ip = struct.unpack(">H", frame[14:16])[0], frame[16:]
        else:
            raise SystemExit(f"unsupported link type {linktype}")
        if ethertype != 0x0800 or ip[9] != 6:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:total]
        src, dst = ip[12:16], ip[16:20]
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        flags = tcp[13]
        doff = (tcp[12] >> 4) * 4
        yield sec * 1_000_000 + usec, (src, sport), (dst, dport), seq, flags, tcp[doff:]


def side_of(stream, addr):
    return "c" if addr == stream["client"] else "s"


def main():
    path, outdir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    streams = []  # in SYN order: client address, ISNs, segments by offset, timeline
    by_key = {}
    for us, src, dst, seq, flags, payload in packets(path):
        syn, ack = flags & 0x02, flags & 0x10
        key = frozenset((src, dst))
        if syn and not ack:
            stream = {"client": src, "isn": {src: seq + 1}, "segs": {src: {}, dst: {}},
                      "t0": us, "timeline": [], "next": {src: 0, dst: 0}}
            streams.append(stream)
            by_key[key] = stream
            continue
        stream = by_key.get(key)
        if stream is None:
            continue
        if syn and ack:
            stream["isn"][src] = seq + 1
            continue
        if payload:
            rel = (seq - stream["isn"][src]) & 0xFFFFFFFF
            stream["segs"][src].setdefault(rel, payload)
            # In-order new data only: loopback does not reorder; retransmissions are dropped.
            if rel == stream["next"][src]:
                stream["timeline"].append(f"{side_of(stream, src)} {us - stream['t0']} {len(payload)}")
                stream["next"][src] = rel + len(payload)
        if flags & 0x01 and not stream.setdefault("fin", {}).get(src):
            stream["fin"][src] = True
            stream["timeline"].append(f"{side_of(stream, src)} {us - stream['t0']} fin")
    for s in streams:
        first = b"".join(v for _, v in sorted(s["segs"][s["client"]].items()))[:60]
        print("connection", s["client"][1], first.split(b"\r\n")[0].decode("latin-1"), file=sys.stderr)
    if len(streams) != len(names):
        raise SystemExit(f"{len(streams)} connections captured, {len(names)} names given")
    for stream, name in zip(streams, names):
        if name == "-":
            continue
        for side, addr in (("client", stream["client"]), ("server", None)):
            if addr is None:
                addr = next(a for a in stream["segs"] if a != stream["client"])
            out = bytearray()
            for rel in sorted(stream["segs"][addr]):
                seg = stream["segs"][addr][rel]
                if rel + len(seg) <= len(out):
                    continue  # retransmission
                out += seg[len(out) - rel:] if rel < len(out) else seg
            open(f"{outdir}/{name}.{side}.bin", "wb").write(out)
        with open(f"{outdir}/{name}.timeline", "w") as f:
            f.write("\n".join(stream["timeline"]) + "\n")
        print(f"{name}: client {len(open(f'{outdir}/{name}.client.bin','rb').read())} B, "
              f"server {len(open(f'{outdir}/{name}.server.bin','rb').read())} B")


if __name__ == "__main__":
    main()
