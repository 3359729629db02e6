#!/usr/bin/env python3
"""Generate Quarry's hostile ingestion corpus at test time.

Usage: python3 scripts/hostile-corpus.py OUT_DIR

The sync robustness test needs files that are broken, huge, deeply nested,
binary, badly encoded or badly named, next to ordinary good files. None of
that is committed: this script builds it, deterministically (fixed seed,
Python 3.11 stdlib only), in well under five seconds and ~30 MB.

It writes:
  OUT_DIR/docs/            the source root to index
  OUT_DIR/outside/         a file outside the root, the target of a symlink
  OUT_DIR/manifest.json    {"files": [{"path", "outcome", "reason", "probe"}]}

outcome is "indexed", "skipped", "failed" or "listing" (a problem reported
while walking the tree, e.g. a symlink loop). reason is a lowercase substring
expected in the reported reason, or null. probe is a made-up word in the
file's text that search must find when the file is indexed, or null. For a
file name that is not valid UTF-8, "path_b64" holds the raw relative path
(base64) and "path" its lossy decoding, for display only.
"""

import base64
import io
import json
import os
import random
import shutil
import sys
import zipfile
import zlib

SEED = 0x0DD5EED
MIB = 1024 * 1024


class Corpus:
    def __init__(self, out_dir):
        self.out = os.fsencode(out_dir)
        self.root = os.path.join(self.out, b"docs")
        self.entries = []

    def path(self, rel):
        full = os.path.join(self.root, os.fsencode(rel))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    def record(self, rel, outcome, reason=None, probe=None):
        entry = {}
        if isinstance(rel, bytes):
            entry["path"] = rel.decode("utf-8", "replace")
            entry["path_b64"] = base64.b64encode(rel).decode("ascii")
        else:
            entry["path"] = rel
        entry.update(outcome=outcome, reason=reason, probe=probe)
        self.entries.append(entry)

    def add(self, rel, data, outcome, reason=None, probe=None):
        """Write data (bytes, str as UTF-8, or an iterable of byte chunks)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        with open(self.path(rel), "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
                assert probe is None or probe.encode() in data, rel
            else:
                for chunk in data:
                    f.write(chunk)
        self.record(rel, outcome, reason, probe)

    def write_manifest(self):
        with open(os.path.join(self.out, b"manifest.json"), "w") as f:
            json.dump({"files": self.entries}, f, indent=1)
            f.write("\n")


# ---------------------------------------------------------------- PDF

def pdf_stream(content, extra=b""):
    return b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(content), extra, content)


def build_pdf(objects, trailer_extra=b""):
    """Objects 1..n (bodies, without 'N 0 obj'); object 1 is the catalog.
    Byte offsets in the xref table are computed exactly."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, trailer_extra, xref)
    return bytes(out)


def page_pdf(content_obj, extra_objects=(), trailer_extra=b""):
    """One-page PDF: 1 catalog, 2 pages, 3 page, 4 content, 5 Helvetica."""
    return build_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
        b" /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        content_obj,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica"
        b" /Encoding /WinAnsiEncoding >>",
        *extra_objects,
    ], trailer_extra)


def text_pdf(lines, op=b"Tj"):
    """Lines shown one per text line; with op "'" all but the first use the
    ' operator (move to next line, then show)."""
    ops = [b"BT /F1 12 Tf 14 TL 72 720 Td", b"(%s) Tj" % lines[0].encode()]
    for line in lines[1:]:
        ops.append(b"(%s) '" % line.encode() if op == b"'" else b"T* (%s) Tj" % line.encode())
    ops.append(b"ET")
    return page_pdf(pdf_stream(b"\n".join(ops)))


def bomb_stream(total=1 << 30, chunk=MIB):
    """zlib stream inflating to `total` spaces, ~1 MB, built in milliseconds.
    After a sync flush the compressor state repeats, so every chunk after the
    first compresses to the same byte-aligned segment, which is repeated."""
    block = b" " * chunk
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH)
    seg = comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert seg == comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH)
    adler = 1
    for _ in range(total // chunk):
        adler = zlib.adler32(block, adler)
    return (b"\x78\xda" + head + seg * (total // chunk - 1)
            + b"\x03\x00" + adler.to_bytes(4, "big"))


# ---------------------------------------------------------------- generators

WORDS = ("quarry index search chunk token parser page chapter section render "
         "stream field value block table column search result query filter "
         "the of and to in is that for with on as by from this are be").split()


def ident(n):
    s = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(97 + r) + s
    return s


def minified_js(size):
    parts, n, total = [], 0, 0
    while total < size:
        a, b, c = ident(n), ident(n + 1), ident(n + 2)
        part = f"var {a}=function({b},{c}){{return {b}+{c}*{n % 97}}};"
        parts.append(part)
        total += len(part)
        n += 3
    return "".join(parts)


def minified_css(size):
    parts, n, total = [], 0, 0
    while total < size:
        part = f".c{n}{{margin:0;padding:{n % 17}px;color:#{n * 2654435761 % 0xFFFFFF:06x}}}"
        parts.append(part)
        total += len(part)
        n += 1
    return "".join(parts)


def one_line_json(rng, size):
    rows, total = [], 0
    while total < size:
        row = {"id": len(rows), "name": " ".join(rng.choices(WORDS, k=4)),
               "score": rng.randrange(1000), "tags": rng.choices(WORDS, k=3)}
        rows.append(row)
        total += len(json.dumps(row, separators=(",", ":"))) + 1
    return json.dumps(rows, separators=(",", ":"))


def source_map(rng):
    segs = ["AAAA", "SAASA", "CAAC", "IACA", "GAAG", "OAAO", "EAAE", "KAAK"]
    lines = [",".join(rng.choices(segs, k=40)) for _ in range(400)]
    return json.dumps({"version": 3, "file": "app.min.js",
                       "sources": [f"src/module{i}.js" for i in range(20)],
                       "names": [ident(i) for i in range(200)],
                       "mappings": ";".join(lines)}, separators=(",", ":"))


def search_index(rng, size):
    """One line shaped like mdBook's searchindex.js."""
    urls, docs, total, i = [], {}, 0, 0
    while total < size:
        body = " ".join(rng.choices(WORDS, k=300))
        docs[str(i)] = {"body": body, "breadcrumbs": f"Chapter {i} » Section",
                        "id": str(i), "title": f"Section {i}"}
        urls.append(f"chapter{i // 10}/section{i}.html#section-{i}")
        total += len(body) + 120
        i += 1
    root = {w: {"df": rng.randrange(1, 99), "docs": {str(d): {"tf": 1.0} for d in range(5)}}
            for w in WORDS}
    data = {"doc_urls": urls,
            "index": {"documentStore": {"docInfo": {k: {"body": 300, "title": 2} for k in docs},
                                        "docs": docs, "length": len(docs), "save": True},
                      "fields": ["title", "body", "breadcrumbs"],
                      "index": {"body": {"root": root}}, "ref": "id", "version": "0.9.5"},
            "results_options": {"limit_results": 30, "teaser_word_count": 30},
            "search_options": {"bool": "OR", "expand": True}}
    return "Object.assign(window.search, " + json.dumps(data, separators=(",", ":")) + ");"


def repeated(line, size):
    block = line * (MIB // len(line))
    left = size
    while left > 0:
        piece = block[:left]
        yield piece
        left -= len(piece)


# ---------------------------------------------------------------- corpus

def good_files(c):
    c.add("good/readme.md", "# Quarry notes\n\nThis readme mentions quintrelmd in a sentence.\n\n"
          "## Usage\n\nRun the indexer, then search.\n\n### Details\n\n- one\n- two\n",
          "indexed", probe="quintrelmd")
    c.add("good/page.html", "<!DOCTYPE html>\n<html><head><title>Page</title></head><body>\n"
          "<h1>Welcome</h1>\n<p>This page talks about vexhollow and nothing else.</p>\n"
          "</body></html>\n", "indexed", probe="vexhollow")
    c.add("good/code.py", '"""Helpers."""\n\n\ndef add(a, b):\n'
          '    # The drumblepy helper adds two numbers together.\n    return a + b\n',
          "indexed", probe="drumblepy")
    c.add("good/lib.rs", "//! The ferrowisp crate adds numbers.\n\n"
          "pub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n", "indexed", probe="ferrowisp")
    c.add("good/latin1.txt", "Au café, a naïve visitor felt déjà vu about glimmerfen.\n"
          .encode("latin-1"), "indexed", probe="glimmerfen")
    c.add("good/cp1252.txt", "She said \u201cbrackwillow costs \u20ac5\u201d and left.\n"
          .encode("cp1252"), "indexed", probe="brackwillow")
    c.add("good/apostrophe.pdf", text_pdf(
        ["The first line is plain.", "The word zorblaxpdf is on the second line.",
         "A third line ends the page."], op=b"'"), "indexed", probe="zorblaxpdf")
    c.add("good/plain.pdf", text_pdf(["This plain page mentions plumtrivet once."]),
          "indexed", probe="plumtrivet")
    # Two names that are not UTF-8 and both decode lossily to "caf\ufffd.txt".
    c.add(b"names/caf\xe9.txt", "The first name file holds snorkelbey.\n",
          "indexed", probe="snorkelbey")
    c.add(b"names/caf\xe8.txt", "The second name file holds wobbletarn.\n",
          "indexed", probe="wobbletarn")


def deep_files(c):
    c.add("deep/nested.html", "<html><body>\n<p>The top level mentions fathomquill.</p>\n"
          + "<div>" * 10000 + "The innermost div hides gnarlwhistle here." + "</div>" * 10000
          + "\n</body></html>\n", "indexed", probe="gnarlwhistle")
    filler = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(130))
    c.add("deep/parens.py", "# The crumplenook expression is deeply nested.\n\n" + filler
          + "x = " + "(" * 3000 + "1" + ")" * 3000 + "\n", "indexed", probe="crumplenook")
    c.add("deep/parens6k.py", "# The twistlebarrow expression is deeper still.\n\n"
          + "x = " + "(" * 6000 + "1" + ")" * 6000 + "\n", "indexed", probe="twistlebarrow")
    c.add("deep/braces.rs", "// The bracketfrond function nests many blocks.\n"
          + "fn f() {" + "{" * 3000 + "}" * 3000 + "}\n", "indexed", probe="bracketfrond")
    c.add("deep/frontmatter.md", "---\nx: " + "[" * 50000 + "\n---\n# Title\n\n"
          "The body after the front matter names mossyoctave.\n", "indexed", probe="mossyoctave")


def skipped_files(c, rng):
    c.add("gen/app.min.js", minified_js(137 * 1024), "skipped", "minified")
    c.add("gen/style.min.css", minified_css(60 * 1024), "skipped", "minified")
    c.add("gen/data.json", one_line_json(rng, 80 * 1024), "skipped", "minified")
    c.add("gen/app.js.map", source_map(rng), "skipped", "source map")
    c.add("gen/searchindex.js", search_index(rng, 4_700_000), "skipped", "generated")
    c.add("bin/random.txt", rng.randbytes(64 * 1024), "skipped", "binary")
    text = ("Plain ASCII text line that keeps going for a while. " * 200)[:10_000]
    c.add("bin/late-nul.txt", text + "\0" + text[:2000], "skipped", "nul")
    c.add("empty.txt", b"", "skipped", "empty")
    c.add("big.txt", repeated(b"Filler text that pushes this file over the size limit.\n",
                              21_000_000), "skipped", "over the limit")
    os.mkfifo(c.path("special/pipe.txt"))
    c.record("special/pipe.txt", "skipped", "not a regular file")
    secret = os.path.join(c.out, b"outside", b"secret.txt")
    os.makedirs(os.path.dirname(secret), exist_ok=True)
    with open(secret, "w") as f:
        f.write("This file lives outside the root: outsidesecret.\n")
    os.symlink("../../outside/secret.txt", c.path("links/outside.txt"))
    c.record("links/outside.txt", "skipped", "outside")


def failed_files(c, rng):
    valid = text_pdf([f"Line {i} of a document that will be cut short." for i in range(40)])
    c.add("pdf/truncated.pdf", valid[: len(valid) // 2], "failed", "corrupt")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("inner.txt", (2020, 1, 1, 0, 0, 0)), "not a pdf\n" * 100)
    c.add("pdf/zip.pdf", buf.getvalue(), "failed", "corrupt")
    c.add("pdf/garbage.pdf", b"%PDF-1.4\n" + rng.randbytes(32 * 1024), "failed", "corrupt")
    o, u, doc_id = (rng.randbytes(32).hex().upper() for _ in range(3))
    encrypt = (b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>"
               % (o.encode(), u.encode()))
    c.add("pdf/encrypted.pdf", page_pdf(pdf_stream(rng.randbytes(256)), [encrypt],
                                        b" /Encrypt 6 0 R /ID [<%s> <%s>]"
                                        % (doc_id[:32].encode(), doc_id[32:].encode())),
          "failed", "encrypted")
    c.add("pdf/bomb.pdf", page_pdf(pdf_stream(bomb_stream(), b" /Filter /FlateDecode")),
          "failed", "decompress")


def listing_problems(c):
    os.symlink(".", c.path("loop/a"))
    c.record("loop/a", "listing", "loop")


def main(argv):
    if len(argv) != 2:
        sys.exit(f"usage: {argv[0]} OUT_DIR")
    c = Corpus(argv[1])
    for sub in (b"docs", b"outside"):
        shutil.rmtree(os.path.join(c.out, sub), ignore_errors=True)
    os.makedirs(c.root, exist_ok=True)
    rng = random.Random(SEED)
    good_files(c)
    deep_files(c)
    skipped_files(c, rng)
    failed_files(c, rng)
    listing_problems(c)
    c.write_manifest()


if __name__ == "__main__":
    main(sys.argv)
