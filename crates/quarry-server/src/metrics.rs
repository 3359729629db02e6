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
use quarry_engine::service::{RunOutcome, SourceStatus};

const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    by_key: BTreeMap<(String, u16), u64>,
    degraded: BTreeMap<String, u64>,
    latency: BTreeMap<(String, String), Histogram>,
}

#[derive(Debug, Default)]
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

    pub fn observe(&self, route: &str, method: &str, key: &str, status: u16, elapsed: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.by_key.entry((key.to_string(), status)).or_default() += 1;
        *m.requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let h = m
            .latency
            .entry((route.to_string(), method.to_string()))
            .or_default();
        let s = elapsed.as_secs_f64();
        fill(&mut h.counts, BUCKETS, s);
        h.sum += s;
        h.count += 1;
    }

    /// A search answered from BM25 alone, and why.
    pub fn degraded(&self, reason: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.degraded.entry(reason.to_string()).or_default() += 1;
    }

    pub fn render(&self, embed: &EmbedderStats, collections: &[CollectionInfo]) -> String {
        let mut out = String::new();
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        counter(
            &mut out,
            "quarry_degraded_responses_total",
            "Searches answered from BM25 alone, by reason.",
            m.degraded
                .iter()
                .map(|(reason, n)| (format!("reason=\"{}\"", esc(reason)), *n)),
        );
        counter(
            &mut out,
            "quarry_http_requests_total",
            "HTTP requests by route, method and status.",
            m.requests.iter().map(|((route, method, status), n)| {
                let labels = format!(
                    "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                    esc(route)
                );
                (labels, *n)
            }),
        );
        counter(
            &mut out,
            "quarry_http_requests_by_key_total",
            "HTTP requests by API key name (`anonymous` when the API is open) and status.",
            m.by_key.iter().map(|((key, status), n)| {
                (format!("key=\"{}\",status=\"{status}\"", esc(key)), *n)
            }),
        );
        let latency = "quarry_http_request_duration_seconds";
        header(
            &mut out,
            latency,
            "histogram",
            "HTTP request latency by route.",
        );
        for ((route, method), h) in &m.latency {
            let labels = format!("route=\"{}\",method=\"{method}\"", esc(route));
            let series = Series {
                name: latency,
                labels: &labels,
                bounds: BUCKETS,
            };
            histogram(&mut out, &series, &h.counts, h.sum, h.count);
        }
        drop(m);
        let queue = "quarry_embed_queue_depth";
        header(
            &mut out,
            queue,
            "gauge",
            "Inputs waiting for the embedding worker.",
        );
        sample(
            &mut out,
            queue,
            "priority=\"interactive\"",
            embed.queued_interactive,
        );
        sample(&mut out, queue, "priority=\"bulk\"", embed.queued_bulk);
        for (name, kind, help, value) in [
            (
                "quarry_embed_batches_total",
                "counter",
                "Forward passes run.",
                embed.batches,
            ),
            (
                "quarry_embed_inputs_total",
                "counter",
                "Inputs embedded (batch size = inputs / batches).",
                embed.inputs,
            ),
            (
                "quarry_embed_tokens_total",
                "counter",
                "Real tokens embedded.",
                embed.tokens,
            ),
            (
                "quarry_embed_padded_tokens_total",
                "counter",
                "Tokens computed including padding.",
                embed.padded_tokens,
            ),
            (
                "quarry_embed_largest_batch",
                "gauge",
                "Largest batch so far.",
                embed.largest_batch,
            ),
        ] {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        type Count = fn(&CollectionInfo) -> usize;
        let per_collection: [(&str, &str, Count); 2] = [
            ("documents", "Documents", |c| c.documents),
            ("points", "Points", |c| c.points),
        ];
        for (metric, what, count) in per_collection {
            let name = format!("quarry_collection_{metric}");
            header(&mut out, &name, "gauge", &format!("{what} per collection."));
            for c in collections {
                let labels = format!("collection=\"{}\"", esc(&c.name));
                sample(&mut out, &name, &labels, count(c));
            }
        }
        out
    }
}

/// `# HELP` and `# TYPE` of one metric.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line.
/// The result cache: hits, misses, evictions and bytes held.
pub(crate) fn render_cache(out: &mut String, s: &crate::cache::CacheStats) {
    for (name, kind, help, value) in [
        (
            "quarry_result_cache_hits_total",
            "counter",
            "Search and context answers served from the cache.",
            s.hits,
        ),
        (
            "quarry_result_cache_misses_total",
            "counter",
            "Cacheable answers computed afresh.",
            s.misses,
        ),
        (
            "quarry_result_cache_evictions_total",
            "counter",
            "Answers evicted to stay within server.cache_bytes.",
            s.evictions,
        ),
        (
            "quarry_result_cache_stale_total",
            "counter",
            "Stale answers served because the store was unavailable.",
            s.stale,
        ),
        (
            "quarry_result_cache_bytes",
            "gauge",
            "Bytes the cache holds.",
            s.bytes,
        ),
        (
            "quarry_result_cache_max_bytes",
            "gauge",
            "server.cache_bytes.",
            s.max_bytes,
        ),
    ] {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

/// Coverage: each collection's best-relevance histogram and low-score
/// counts, by mode.
pub(crate) fn render_coverage(out: &mut String, all: &[crate::coverage::CollectionStats]) {
    let hist = "quarry_query_best_relevance";
    header(
        out,
        hist,
        "histogram",
        "Each query's best hit relevance (0 to 1), by collection and mode.",
    );
    for c in all {
        for (mode, m) in &c.by_mode {
            let labels = format!("collection=\"{}\",mode=\"{mode}\"", esc(&c.collection));
            let series = Series {
                name: hist,
                labels: &labels,
                bounds: &c.bucket_bounds,
            };
            histogram(out, &series, &m.buckets, m.relevance_sum, m.queries);
        }
    }
    counter(
        out,
        "quarry_low_score_queries_total",
        "Queries whose best hit was under retrieval.low_score (or that found nothing).",
        all.iter().flat_map(|c| {
            c.by_mode.iter().map(|(mode, m)| {
                let labels = format!("collection=\"{}\",mode=\"{mode}\"", esc(&c.collection));
                (labels, m.low)
            })
        }),
    );
}

/// Counts `v` into cumulative `counts`, one per upper bound in `bounds`.
pub(crate) fn fill(counts: &mut Vec<u64>, bounds: &[f64], v: f64) {
    if counts.is_empty() {
        *counts = vec![0; bounds.len()];
    }
    for (c, bound) in counts.iter_mut().zip(bounds) {
        if v <= *bound {
            *c += 1;
        }
    }
}

/// One labelled series of a histogram.
struct Series<'a> {
    name: &'a str,
    labels: &'a str,
    bounds: &'a [f64],
}

/// A histogram series' samples: cumulative buckets, `+Inf`, sum, count.
fn histogram(out: &mut String, s: &Series<'_>, counts: &[u64], sum: f64, count: u64) {
    let (name, labels) = (s.name, s.labels);
    let bucket = format!("{name}_bucket");
    for (b, c) in s.bounds.iter().zip(counts) {
        sample(out, &bucket, &format!("{labels},le=\"{b}\""), c);
    }
    sample(out, &bucket, &format!("{labels},le=\"+Inf\""), count);
    sample(out, &format!("{name}_sum"), labels, sum);
    sample(out, &format!("{name}_count"), labels, count);
}

/// A counter's header and one sample per label set.
fn counter(out: &mut String, name: &str, help: &str, rows: impl Iterator<Item = (String, u64)>) {
    header(out, name, "counter", help);
    for (labels, n) in rows {
        sample(out, name, &labels, n);
    }
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

/// Sync counters and seconds since each source's last successful sync.
pub(crate) fn render_sync(out: &mut String, sources: &[SourceStatus]) {
    let docs = "quarry_sync_documents_total";
    header(
        out,
        docs,
        "counter",
        "Documents processed by syncs, by source and outcome.",
    );
    for s in sources {
        let t = &s.totals;
        for (outcome, n) in [
            ("added", t.added),
            ("updated", t.updated),
            ("deleted", t.deleted),
            ("renamed", t.renamed),
            ("skipped", t.skipped),
            ("failed", t.failed),
        ] {
            let labels = format!("source=\"{}\",outcome=\"{outcome}\"", esc(&s.source));
            sample(out, docs, &labels, n);
        }
    }
    let chunks = "quarry_sync_chunks_embedded_total";
    header(out, chunks, "counter", "Chunks embedded by syncs.");
    for s in sources {
        let labels = format!("source=\"{}\"", esc(&s.source));
        sample(out, chunks, &labels, s.totals.chunks_embedded);
    }
    type Gauge = fn(&SourceStatus) -> Option<u64>;
    let per_source: [(&str, &str, &str, Gauge); 5] = [
        (
            "quarry_sync_seconds_since_success",
            "gauge",
            "Seconds since the source was last known to be in step (its last successful sync began).",
            |s| s.lag_seconds,
        ),
        (
            "quarry_source_last_success_timestamp_seconds",
            "gauge",
            "When the source's last successful sync began (Unix time).",
            |s| s.last_success_unix,
        ),
        (
            "quarry_source_runs_failed_total",
            "counter",
            "Syncs of the source that failed since the server started.",
            |s| Some(s.runs_failed),
        ),
        (
            "quarry_source_documents",
            "gauge",
            "Documents of the source in step after its last successful sync.",
            |s| {
                s.last_run
                    .as_ref()
                    .filter(|r| r.outcome == RunOutcome::Succeeded)
                    .and_then(|r| r.report.as_ref())
                    .map(|r| r.documents as u64)
            },
        ),
        (
            "quarry_source_failing",
            "gauge",
            "1 while the source's last sync failed.",
            |s| Some(u64::from(s.error.is_some())),
        ),
    ];
    for (name, kind, help, value) in per_source {
        header(out, name, kind, help);
        for s in sources {
            if let Some(v) = value(s) {
                sample(out, name, &format!("source=\"{}\"", esc(&s.source)), v);
            }
        }
    }
}
