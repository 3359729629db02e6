#!/usr/bin/env python3
"""Fails unless a PNG screenshot shows real content: enough non-white pixels
and several colours (the chart palette). Standard library only."""
import struct, sys, zlib

def pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), f"unsupported PNG type {ctype}/{depth}"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, prev, out = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pr = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else (b if abs(p - b) <= abs(p - c) else c)
            line[i] = (line[i] + [0, a, b, (a + b) // 2, pr][f]) & 0xFF
        out.append(bytes(line)); prev = line
    return w, h, bpp, out

w, h, bpp, rows = pixels(sys.argv[1])
colours, ink = set(), 0
for row in rows[::4]:
    for x in range(0, w * bpp, bpp * 4):
        px = row[x:x + 3]
        colours.add(bytes(px))
        ink += px != b"\xff\xff\xff"
total = (h // 4 + 1) * (w // 4 + 1)
print(f"screenshot {w}x{h}: {len(colours)} colours, {100 * ink / total:.1f}% non-white")
if len(colours) < 8 or ink / total < 0.02:
    sys.exit("the screenshot looks blank")
