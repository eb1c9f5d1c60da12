#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""Make a restore_reader fuzz seed from a real migration stream (e.g. the stock saver's
stream.bin a C test leaves in its XENSIM_DIR).

Every record is kept byte for byte, except PAGE_DATA: of each run of PAGE_DATA records
between two other records only the first is kept, cut to its first `--pages` entries and
re-framed, so the seed stays small (libFuzzer mutates best below ~64 KiB) while headers,
CPU policy, TSC, HVM context, params and CHECKPOINT records are the real ones. A cut record
at the end (a checkpointed stream stopped at failover) is dropped.

    fuzz/seeds_from_stream.py STREAM OUT --stream-type {0,1,2} [--pfn-limit N] [--pages K]
"""
import argparse
import struct

PAGE = 4096
PAGE_DATA = 0x01
NO_DATA = (0xD, 0xE, 0xF)  # BROKEN, XALLOC, XTAB


def pad(n):
    return (8 - n % 8) % 8


def records(buf, off):
    while off + 8 <= len(buf):
        rtype, length = struct.unpack_from("<II", buf, off)
        end = off + 8 + length + pad(length)
        if end > len(buf):
            return
        yield rtype, buf[off + 8:off + 8 + length]
        off = end


def frame(rtype, body):
    return struct.pack("<II", rtype, len(body)) + body + b"\0" * pad(len(body))


def cut_page_data(body, keep):
    count = struct.unpack_from("<I", body, 0)[0]
    entries = struct.unpack_from("<%dQ" % count, body, 8)
    data = 8 + 8 * count
    kept, pages = [], b""
    for e in entries:
        has_data = (e >> 60) not in NO_DATA
        if len(kept) < keep:
            kept.append(e)
            if has_data:
                pages += body[data:data + PAGE]
        if has_data:
            data += PAGE
    return struct.pack("<II", len(kept), 0) + struct.pack("<%dQ" % len(kept), *kept) + pages


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stream")
    ap.add_argument("out")
    ap.add_argument("--stream-type", type=int, required=True)
    ap.add_argument("--pfn-limit", type=int, default=1 << 20)
    ap.add_argument("--pages", type=int, default=1)
    a = ap.parse_args()
    buf = open(a.stream, "rb").read()
    out = bytearray(struct.pack("<I", a.pfn_limit) + bytes([a.stream_type, 0xFF]))
    out += buf[:40]  # image and domain headers
    last = None
    for rtype, body in records(buf, 40):
        if rtype == PAGE_DATA:
            if last != PAGE_DATA:
                out += frame(rtype, cut_page_data(body, a.pages))
        else:
            out += frame(rtype, body)
        last = rtype
    open(a.out, "wb").write(out)


if __name__ == "__main__":
    main()
