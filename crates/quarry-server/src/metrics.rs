//! Prometheus metrics in the text exposition format.
//!
//! Request metrics are recorded as requests finish; queue, batch and
//! collection figures are read when `/metrics` is scraped, so they are never
//! stale and cost nothing between scrapes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use quarry_embed::EmbedderStats;
use quarry_engine::CollectionInfo;
use quarry_engine::service::SourceStatus;

const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
}

#[derive(Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let h = m
            .latency
            .entry((route.to_string(), method.to_string()))
            .or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        let s = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += s;
        h.count += 1;
    }

    pub fn render(&self, embed: &EmbedderStats, collections: &[CollectionInfo]) -> String {
        let mut out = String::new();
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP quarry_http_requests_total HTTP requests by route, method and status."
        );
        let _ = writeln!(out, "# TYPE quarry_http_requests_total counter");
        for ((route, method, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "quarry_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                esc(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP quarry_http_request_duration_seconds HTTP request latency by route."
        );
        let _ = writeln!(out, "# TYPE quarry_http_request_duration_seconds histogram");
        for ((route, method), h) in &m.latency {
            let labels = format!("route=\"{}\",method=\"{method}\"", esc(route));
            for (b, c) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "quarry_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "quarry_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "quarry_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "quarry_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        drop(m);
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP quarry_embed_queue_depth Inputs waiting for the embedding worker."
        );
        let _ = writeln!(out, "# TYPE quarry_embed_queue_depth gauge");
        let _ = writeln!(
            out,
            "quarry_embed_queue_depth{{priority=\"interactive\"}} {}",
            embed.queued_interactive
        );
        let _ = writeln!(
            out,
            "quarry_embed_queue_depth{{priority=\"bulk\"}} {}",
            embed.queued_bulk
        );
        gauge(
            &mut out,
            "quarry_embed_batches_total",
            "Forward passes run.",
            "counter",
            embed.batches.to_string(),
        );
        gauge(
            &mut out,
            "quarry_embed_inputs_total",
            "Inputs embedded (batch size = inputs / batches).",
            "counter",
            embed.inputs.to_string(),
        );
        gauge(
            &mut out,
            "quarry_embed_tokens_total",
            "Real tokens embedded.",
            "counter",
            embed.tokens.to_string(),
        );
        gauge(
            &mut out,
            "quarry_embed_padded_tokens_total",
            "Tokens computed including padding.",
            "counter",
            embed.padded_tokens.to_string(),
        );
        gauge(
            &mut out,
            "quarry_embed_largest_batch",
            "Largest batch so far.",
            "gauge",
            embed.largest_batch.to_string(),
        );
        type Count = fn(&CollectionInfo) -> usize;
        let per_collection: [(&str, &str, Count); 2] = [
            ("documents", "Documents", |c| c.documents),
            ("points", "Points", |c| c.points),
        ];
        for (metric, what, count) in per_collection {
            let _ = writeln!(
                out,
                "# HELP quarry_collection_{metric} {what} per collection.\n# TYPE quarry_collection_{metric} gauge"
            );
            for c in collections {
                let _ = writeln!(
                    out,
                    "quarry_collection_{metric}{{collection=\"{}\"}} {}",
                    esc(&c.name),
                    count(c)
                );
            }
        }
        out
    }
}

/// Sync counters and seconds since each source's last successful sync.
pub(crate) fn render_sync(out: &mut String, sources: &[SourceStatus]) {
    let _ = writeln!(
        out,
        "# HELP quarry_sync_documents_total Documents processed by syncs, by source and outcome."
    );
    let _ = writeln!(out, "# TYPE quarry_sync_documents_total counter");
    for s in sources {
        let t = &s.totals;
        for (outcome, n) in [
            ("added", t.added),
            ("updated", t.updated),
            ("deleted", t.deleted),
            ("skipped", t.skipped),
            ("failed", t.failed),
        ] {
            let _ = writeln!(
                out,
                "quarry_sync_documents_total{{source=\"{}\",outcome=\"{outcome}\"}} {n}",
                esc(&s.source),
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP quarry_sync_chunks_embedded_total Chunks embedded by syncs.\n# TYPE quarry_sync_chunks_embedded_total counter"
    );
    for s in sources {
        let _ = writeln!(
            out,
            "quarry_sync_chunks_embedded_total{{source=\"{}\"}} {}",
            esc(&s.source),
            s.totals.chunks_embedded
        );
    }
    let _ = writeln!(
        out,
        "# HELP quarry_sync_seconds_since_success Seconds since the source's last successful sync."
    );
    let _ = writeln!(out, "# TYPE quarry_sync_seconds_since_success gauge");
    for s in sources {
        let Some(at) = s.last_success else { continue };
        let secs = at.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let _ = writeln!(
            out,
            "quarry_sync_seconds_since_success{{source=\"{}\"}} {secs:.1}",
            esc(&s.source)
        );
    }
}
