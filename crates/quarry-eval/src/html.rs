//! The self-contained HTML report: inline SVG charts, no scripts, no
//! external resources, so it opens anywhere (a CI artifact, an air-gapped
//! laptop) and cannot produce console errors.

use std::fmt::Write as _;

use crate::metrics::METRICS;
use crate::report::{Summary, metrics_table};

const COLORS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(s: &Summary) -> String {
    let d = &s.dataset;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Quarry eval: {name}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
svg {{ display: block; margin: 1em 0; }}
pre {{ background: #f4f4f4; padding: 8px; white-space: pre-wrap; overflow-wrap: anywhere; }}
.legend span {{ display: inline-block; margin-right: 1.5em; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }}
</style></head><body>
<h1>Evaluation: {name} <small>({split})</small></h1>
<p>{q} queries scored over {docs}.</p>
"#,
        name = esc(&d.name),
        split = esc(&d.split),
        q = d.queries_scored,
        docs = esc(&searched(s))
    );
    let modes: Vec<&String> = s.modes.keys().collect();
    out.push_str("<h2>Metrics per mode</h2>\n");
    out.push_str(&legend(&modes));
    out.push_str(&metric_bars(s, &modes));
    out.push_str(&html_table(&metrics_table(&s.modes)));
    if !s.chunk_modes.is_empty() {
        out.push_str("<h3>Chunk-level metrics</h3>\n");
        out.push_str(&html_table(&metrics_table(&s.chunk_modes)));
    }
    if modes.len() > 1 {
        out.push_str("<h2>Per-query nDCG@10 differences between modes</h2>\n<p>Each chart counts queries by how much the first mode beat (right) or lost to (left) the second.</p>\n");
        for (i, a) in modes.iter().enumerate() {
            for b in modes.iter().skip(i + 1) {
                out.push_str(&delta_histogram(s, b, a));
            }
        }
    }
    out.push_str(&per_query_table(s, &modes));
    out.push_str("<h2>Query latency</h2>\n");
    out.push_str(&latency_bars(s, &modes));
    let _ = write!(
        out,
        "<h2>Configuration</h2>\n<pre>{}</pre>\n<h2>Index</h2>\n<pre>{}</pre>\n",
        esc(&serde_json::to_string_pretty(&s.config).unwrap_or_default()),
        esc(&serde_json::to_string_pretty(&s.index).unwrap_or_default())
    );
    if !d.issues.is_empty() {
        let _ = writeln!(out, "<h2>Dataset issues ({})</h2>\n<ul>", d.issues.len());
        for i in d.issues.iter().take(500) {
            let _ = writeln!(out, "<li>{}</li>", esc(i));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// What the queries ran over: the collection's documents when the index
/// says (a server's collection need not hold the whole corpus), else the
/// corpus file's.
fn searched(s: &Summary) -> String {
    let collection = s.index.get("collection").and_then(|c| c.as_str());
    match (
        s.index.get("documents").and_then(|n| n.as_u64()),
        collection,
    ) {
        (Some(n), Some(c)) => format!(
            "the {n} documents of collection {c} (the corpus file lists {})",
            s.dataset.corpus_documents
        ),
        (Some(n), None) => format!("{n} indexed documents"),
        _ => format!("{} documents", s.dataset.corpus_documents),
    }
}

/// Every query's nDCG@10 and Recall@100 per mode, the worst answered first:
/// where to look for what the corpus or the retriever misses.
fn per_query_table(s: &Summary, modes: &[&String]) -> String {
    let Some(first) = modes.first().and_then(|m| s.per_query.get(*m)) else {
        return String::new();
    };
    let metric = |mode: &str, q: &str, m: &str| {
        s.per_query
            .get(mode)
            .and_then(|p| p.get(q))
            .and_then(|sc| sc.get(m))
            .copied()
    };
    let best = |q: &str| {
        modes
            .iter()
            .filter_map(|m| metric(m, q, "ndcg@10"))
            .fold(0.0f64, f64::max)
    };
    let mut queries: Vec<&String> = first.keys().collect();
    queries.sort_by(|a, b| best(a).total_cmp(&best(b)).then(a.cmp(b)));
    let mut out = String::from(
        "<h2>Per query</h2>\n<p>Worst first: the queries no mode answers well lead.</p>\n<table><tr><th>query</th>",
    );
    for m in modes {
        let _ = write!(out, "<th>{m} nDCG@10</th><th>{m} R@100</th>", m = esc(m));
    }
    out.push_str("</tr>\n");
    for q in queries {
        let _ = write!(out, "<tr><td>{}</td>", esc(q));
        for m in modes {
            for name in ["ndcg@10", "recall@100"] {
                match metric(m, q, name) {
                    Some(v) => {
                        let _ = write!(out, "<td>{v:.4}</td>");
                    }
                    None => out.push_str("<td>–</td>"),
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn legend(modes: &[&String]) -> String {
    let mut out = String::from("<p class=\"legend\">");
    for (i, m) in modes.iter().enumerate() {
        let _ = write!(
            out,
            "<span><span class=\"swatch\" style=\"background:{}\"></span>{}</span>",
            COLORS[i % COLORS.len()],
            esc(m)
        );
    }
    out.push_str("</p>\n");
    out
}

/// A Markdown table (as `metrics_table` writes it) as HTML.
fn html_table(md: &str) -> String {
    let mut out = String::from("<table>\n");
    for (i, line) in md.lines().enumerate() {
        if i == 1 {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let tag = if i == 0 { "th" } else { "td" };
        out.push_str("<tr>");
        for c in cells {
            let _ = write!(out, "<{tag}>{}</{tag}>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn metric_bars(s: &Summary, modes: &[&String]) -> String {
    let (w, h, left, bottom, top) = (900.0, 280.0, 40.0, 30.0, 10.0);
    let plot_h = h - bottom - top;
    let group_w = (w - left) / METRICS.len() as f64;
    let bar_w = (group_w * 0.8) / modes.len().max(1) as f64;
    let mut out = format!(
        r#"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="metrics per mode">"#
    );
    for tick in 0..=4 {
        let v = tick as f64 / 4.0;
        let y = top + plot_h * (1.0 - v);
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{w}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" font-size="11" text-anchor="end">{v:.2}</text>"##,
            left - 4.0,
            y + 4.0
        );
    }
    for (gi, metric) in METRICS.iter().enumerate() {
        let gx = left + group_w * gi as f64 + group_w * 0.1;
        for (mi, mode) in modes.iter().enumerate() {
            let v = s.modes[*mode]
                .get(*metric)
                .copied()
                .unwrap_or(0.0)
                .clamp(0.0, 1.0);
            let bh = plot_h * v;
            let x = gx + bar_w * mi as f64;
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} {metric}: {v:.4}</title></rect>"#,
                top + plot_h - bh,
                bar_w - 2.0,
                COLORS[mi % COLORS.len()],
                esc(mode)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" font-size="12" text-anchor="middle">{metric}</text>"#,
            gx + group_w * 0.4,
            h - 10.0
        );
    }
    out.push_str("</svg>\n");
    out
}

fn delta_histogram(s: &Summary, a: &str, b: &str) -> String {
    let (Some(pa), Some(pb)) = (s.per_query.get(a), s.per_query.get(b)) else {
        return String::new();
    };
    let deltas: Vec<f64> = pa
        .iter()
        .filter_map(|(q, sa)| Some(sa.get("ndcg@10")? - pb.get(q)?.get("ndcg@10")?))
        .collect();
    // 21 bins of 0.1 centred on -1.0 .. 1.0, so "no change" has its own bin.
    let mut bins = [0usize; 21];
    for d in &deltas {
        let i = ((d.clamp(-1.0, 1.0) + 1.0) * 10.0).round() as usize;
        bins[i.min(20)] += 1;
    }
    let (better, worse) = (
        deltas.iter().filter(|d| **d > 1e-9).count(),
        deltas.iter().filter(|d| **d < -1e-9).count(),
    );
    let max = bins.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (w, h, bottom, top) = (900.0, 200.0, 30.0, 20.0);
    let plot_h = h - bottom - top;
    let bw = w / 21.0;
    let mut out = format!(
        r#"<h3>{a} − {b}</h3><p>{better} queries better, {worse} worse, {} unchanged.</p><svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="delta histogram">"#,
        deltas.len() - better - worse,
        a = esc(a),
        b = esc(b)
    );
    for (i, n) in bins.iter().enumerate() {
        let center = i as f64 / 10.0 - 1.0;
        let bh = plot_h * *n as f64 / max;
        let color = if i < 10 {
            "#e15759"
        } else if i > 10 {
            "#59a14f"
        } else {
            "#999"
        };
        let x = bw * i as f64;
        let _ = write!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"><title>{center:+.1}: {n} queries</title></rect>"#,
            x + 1.0,
            top + plot_h - bh,
            bw - 2.0
        );
        if *n > 0 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{n}</text>"#,
                x + bw / 2.0,
                top + plot_h - bh - 3.0
            );
        }
        if i % 5 == 0 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{center:+.1}</text>"#,
                x + bw / 2.0,
                h - 10.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn latency_bars(s: &Summary, modes: &[&String]) -> String {
    let max = s
        .latency_ms
        .values()
        .map(|l| l.p99)
        .fold(0.0, f64::max)
        .max(1e-3);
    let (w, left, row) = (900.0, 150.0, 22.0);
    let h = row * 3.0 * modes.len() as f64 + 10.0;
    let mut out = format!(
        r#"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="latency">"#
    );
    let mut y = 5.0;
    for (mi, mode) in modes.iter().enumerate() {
        let Some(l) = s.latency_ms.get(*mode) else {
            continue;
        };
        for (label, v) in [("p50", l.p50), ("p95", l.p95), ("p99", l.p99)] {
            let bw = (w - left - 90.0) * v / max;
            let _ = write!(
                out,
                r#"<text x="{}" y="{:.1}" font-size="12" text-anchor="end">{} {label}</text><rect x="{left}" y="{y:.1}" width="{bw:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="12">{v:.2} ms</text>"#,
                left - 6.0,
                y + 14.0,
                esc(mode),
                row - 4.0,
                COLORS[mi % COLORS.len()],
                left + bw + 6.0,
                y + 14.0
            );
            y += row;
        }
    }
    out.push_str("</svg>\n");
    out.push_str("<table><tr><th>mode</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>mean ms</th><th>max ms</th></tr>\n");
    for (mode, l) in &s.latency_ms {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            esc(mode),
            l.p50,
            l.p95,
            l.p99,
            l.mean,
            l.max
        );
    }
    out.push_str("</table>\n");
    out
}
