//! Building one index variant at one size and measuring it: write and
//! build time, memory, latency, recall against exact search, throughput.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use quarry_core::PointId;
use quarry_core::config::{IndexSettings, Quantization};
use quarry_store::{CollectionSpec, Point, Query, SearchRequest, VectorStore};

use super::{Base, Profile, SearchBenchArgs, SizeReport};
use quarry_eval::stats::{SplitMix, percentile};

/// One index variant at one size, built in its own folder.
pub(super) struct SizeRun<'a> {
    pub(super) config: &'a quarry_core::Config,
    pub(super) base: &'a Base,
    pub(super) queries: &'a [Vec<f32>],
    pub(super) args: &'a SearchBenchArgs,
    pub(super) dir: &'a Path,
}

const NAME: &str = "bench";
const BATCH: usize = 2048;

fn request(q: &[f32], exact: bool, ef: Option<usize>) -> SearchRequest {
    SearchRequest {
        query: Query::Dense(q.to_vec()),
        limit: 10,
        filter: None,
        score_threshold: None,
        exact,
        ef,
    }
}

impl SizeRun<'_> {
    /// Builds the index once, then measures it at each `ef` of `efs` (the
    /// variant's own when empty): search-time settings need no rebuild.
    pub(super) fn measure(
        &self,
        label: &str,
        settings: &IndexSettings,
        n: usize,
        efs: &[usize],
        profile: bool,
    ) -> anyhow::Result<(Vec<SizeReport>, Option<Profile>)> {
        let _ = std::fs::remove_dir_all(self.dir);
        let store = quarry_store::open(&self.config.store, self.dir, 0)
            .with_context(|| format!("opening a bench store in {}", self.dir.display()))?;
        let name = format!("{NAME}-{n}");
        if store.collection_spec(&name)?.is_some() {
            store.drop_collection(&name)?;
        }
        let spec = CollectionSpec {
            dimension: self.base.spread.len(),
            model: self.base.model.clone(),
            index: Some(settings.clone()),
        };
        let before = Rss::now();
        store.create_collection(&name, &spec)?;
        let start = Instant::now();
        for batch in (0..n).collect::<Vec<_>>().chunks(BATCH) {
            let points: Vec<Point> = batch.iter().map(|&i| self.point(i)).collect();
            let ids: Vec<PointId> = points.iter().map(|p| p.id).collect();
            store.upsert_staged(&name, points)?;
            store.publish(&name, &ids, &[])?;
        }
        store.flush(&name)?;
        let write_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        store.optimize(&name)?;
        let index_s = start.elapsed().as_secs_f64();
        let info = store.index_info(&name)?;

        // Warm-up, then exact answers, then a timed pass per ef.
        for q in self.queries.iter().take(20) {
            store.search(&name, &request(q, false, None))?;
        }
        let mut exact_ms = Vec::new();
        let mut truth = Vec::new();
        for q in self.queries {
            let t = Instant::now();
            let hits = store.search_ids(&name, &request(q, true, None))?;
            exact_ms.push(t.elapsed().as_secs_f64() * 1e3);
            truth.push(hits.into_iter().map(|h| h.id).collect::<Vec<_>>());
        }
        let after = Rss::now();
        let disk_mib = matches!(self.config.store, quarry_core::config::StoreConfig::Edge)
            .then(|| disk_bytes(self.dir) as f64 / MIB);
        let dim = self.base.spread.len() as f64;
        let efs = if efs.is_empty() {
            vec![settings.ef]
        } else {
            efs.to_vec()
        };
        let mut reports = Vec::new();
        let mut first_ms = None;
        for &ef in &efs {
            let mut ms = Vec::new();
            let (mut found, mut expected) = (0usize, 0usize);
            for (q, want) in self.queries.iter().zip(&truth) {
                let t = Instant::now();
                let hits = store.search(&name, &request(q, false, Some(ef)))?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                found += hits.iter().filter(|h| want.contains(&h.id)).count();
                expected += want.len();
            }
            let qps_n = self.throughput(store.as_ref(), &name, ef)?;
            reports.push(SizeReport {
                variant: if efs.len() > 1 {
                    format!("{label}; ef = {ef}")
                } else {
                    label.to_string()
                },
                settings: IndexSettings {
                    ef,
                    ..settings.clone()
                },
                points: n,
                write_s,
                index_s,
                segments: info.map(|i| i.segments),
                indexed_vectors: info.map(|i| i.indexed_vectors),
                rss_anon_mib: (after.anon - before.anon) / MIB,
                rss_file_mib: (after.file - before.file) / MIB,
                vectors_f32_mib: n as f64 * dim * 4.0 / MIB,
                vectors_int8_mib: if settings.quantization == Quantization::Int8 {
                    n as f64 * (dim + 4.0) / MIB
                } else {
                    0.0
                },
                disk_mib,
                p50_ms: percentile(&ms, 0.5),
                p95_ms: percentile(&ms, 0.95),
                p99_ms: percentile(&ms, 0.99),
                exact_p50_ms: percentile(&exact_ms, 0.5),
                recall_at_10: found as f64 / expected.max(1) as f64,
                qps_1: ms.len() as f64 / (ms.iter().sum::<f64>() / 1e3),
                qps_n,
                concurrency: self.args.concurrency,
            });
            first_ms.get_or_insert(ms);
        }
        let profile = match (profile, first_ms) {
            (true, Some(ms)) => {
                let mut ids_ms = Vec::new();
                for q in self.queries {
                    let t = Instant::now();
                    store.search_ids(&name, &request(q, false, Some(efs[0])))?;
                    ids_ms.push(t.elapsed().as_secs_f64() * 1e3);
                }
                Some(Profile {
                    points: n,
                    embed_p50_ms: 0.0,
                    embed_p99_ms: 0.0,
                    search_ids_p50_ms: percentile(&ids_ms, 0.5),
                    search_ids_p99_ms: percentile(&ids_ms, 0.99),
                    search_payload_p50_ms: percentile(&ms, 0.5),
                    search_payload_p99_ms: percentile(&ms, 0.99),
                })
            }
            _ => None,
        };
        if !self.args.keep {
            store.drop_collection(&name)?;
            drop(store);
            let _ = std::fs::remove_dir_all(self.dir);
        }
        Ok((reports, profile))
    }

    /// Queries per second with `concurrency` threads searching at once.
    fn throughput(&self, store: &dyn VectorStore, name: &str, ef: usize) -> anyhow::Result<f64> {
        let next = AtomicUsize::new(0);
        let total = self.queries.len();
        let start = Instant::now();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..self.args.concurrency)
                .map(|_| {
                    s.spawn(|| -> anyhow::Result<()> {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(q) = self.queries.get(i) else {
                                return Ok(());
                            };
                            store.search(name, &request(q, false, Some(ef)))?;
                        }
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a search thread panicked"))?
            })
        })?;
        Ok(total as f64 / start.elapsed().as_secs_f64())
    }

    /// Point `i`: the corpus's chunk `i`, or past the corpus a copy of
    /// chunk `b = i mod corpus` under its own id and document. A copy lies
    /// between `b` and one of its nearest neighbours in the corpus (up to
    /// half way), plus `--noise`: so copies stay on the corpus's own
    /// low-dimensional shape, where its neighbourhoods are, instead of
    /// scattering into all 384 dimensions as isotropic noise alone would
    /// (no real corpus looks like that, and graph search is at its worst
    /// on it).
    fn point(&self, i: usize) -> Point {
        let n = self.base.vectors.len();
        let (b, copy) = (i % n, i / n);
        let original = &self.base.vectors[b];
        let dense = if copy == 0 {
            original.clone()
        } else {
            let mut rng = SplitMix(i as u64 ^ 0x9e37_79b9_7f4a_7c15);
            let near = &self.base.neighbours[b];
            let other = match near.len() {
                0 => original,
                k => &self.base.vectors[near[rng.next_u64() as usize % k]],
            };
            let t = 0.5 * rng.uniform();
            let mut v: Vec<f32> = original
                .iter()
                .zip(other)
                .zip(&self.base.spread)
                .map(|((x, y), s)| (1.0 - t) * x + t * y + self.args.noise * s * rng.gaussian())
                .collect();
            let norm = v
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::MIN_POSITIVE);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        };
        let mut payload = self.base.payloads[b].clone();
        if copy > 0 {
            payload.doc_id = format!("{}~{copy}", payload.doc_id);
        }
        // Payloads stay realistic in shape but small, so that a large size
        // measures the vector index rather than payload writes.
        if let Some((cut, _)) = payload.text.char_indices().nth(200) {
            payload.text.truncate(cut);
        }
        Point {
            id: PointId(i as u128 + 1),
            dense,
            text: String::new(),
            payload,
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Resident memory in bytes: the heap (RssAnon) and mapped files (RssFile).
struct Rss {
    anon: f64,
    file: f64,
}

impl Rss {
    fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .unwrap_or(0.0)
                * 1024.0
        };
        Self {
            anon: field("RssAnon:"),
            file: field("RssFile:"),
        }
    }
}

/// Bytes allocated on disk under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
