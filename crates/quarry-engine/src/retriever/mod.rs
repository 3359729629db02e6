//! The query path: text in, hits out, for the CLI, the server and eval alike.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use quarry_core::PointId;
use quarry_core::payload::ChunkPayload;
use quarry_embed::Embedder;
use quarry_store::{Query, ScoredPoint, SearchRequest, VectorStore};
use serde_json::Value;

use crate::degrade::{DegradePolicy, fallback};
use crate::fusion::{self, Fusion};
use crate::rerank::{RerankerLoader, Rerankers};
use crate::{EngineError, Result, blocking};

mod request;
pub use request::{Hit, Mode, RetrieverSettings, SearchOptions, Searched, StageTimes};

/// What the first stage found: the hits, and for a hybrid search each
/// side's own score of them (what their relevance reads).
struct Stage {
    points: Vec<ScoredPoint>,
    sides: HashMap<PointId, SideScores>,
}

/// A hybrid candidate's score on each side; 0 where a side did not return
/// it.
#[derive(Debug, Clone, Copy, Default)]
struct SideScores {
    dense: f32,
    bm25: f32,
}

type QueryCache = Mutex<lru::LruCache<String, Arc<Vec<f32>>>>;

/// Starts an embedder for a model fingerprint (JSON, as stored in a
/// collection's spec), for collections built with another model than the
/// default one, e.g. after `quarry reindex` switched them.
pub type ModelLoader = Arc<dyn Fn(&Value) -> std::result::Result<Embedder, String> + Send + Sync>;

/// How long a collection's alias target and model are trusted before they
/// are looked up again; a reindex switch shows up within this.
const TARGET_TTL: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Clone)]
struct Target {
    physical: String,
    model: Value,
    at: std::time::Instant,
}

#[derive(Clone)]
pub struct Retriever {
    store: Arc<dyn VectorStore>,
    embedder: Embedder,
    cache: Option<Arc<QueryCache>>,
    hybrid_prefetch_factor: usize,
    rrf_k: usize,
    max_top_k: usize,
    degrade: DegradePolicy,
    fusion: Fusion,
    dedupe: bool,
    collection_fusion: Arc<std::collections::BTreeMap<String, Fusion>>,
    targets: Arc<Mutex<HashMap<String, Target>>>,
    /// The default embedder's fingerprint, as collection specs store it.
    default_model: Value,
    loader: Option<ModelLoader>,
    others: Arc<tokio::sync::Mutex<HashMap<String, Embedder>>>,
    rerankers: Arc<Rerankers>,
}

impl std::fmt::Debug for Retriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Retriever(rrf_k {})", self.rrf_k)
    }
}

impl Retriever {
    pub fn new(store: Arc<dyn VectorStore>, embedder: Embedder) -> Self {
        Self::with_settings(store, embedder, &RetrieverSettings::default())
    }

    pub fn with_settings(
        store: Arc<dyn VectorStore>,
        embedder: Embedder,
        settings: &RetrieverSettings,
    ) -> Self {
        // Serialising a plain struct of strings and numbers cannot fail.
        let default_model = serde_json::to_value(embedder.fingerprint()).unwrap_or(Value::Null);
        Self {
            store,
            embedder,
            cache: NonZeroUsize::new(settings.query_cache)
                .map(|n| Arc::new(Mutex::new(lru::LruCache::new(n)))),
            hybrid_prefetch_factor: settings.hybrid_prefetch_factor.max(1),
            rrf_k: settings.rrf_k.max(1),
            max_top_k: settings.max_top_k.max(1),
            degrade: settings.degrade,
            fusion: settings.fusion,
            dedupe: settings.dedupe,
            collection_fusion: Arc::new(settings.collection_fusion.clone()),
            targets: Arc::default(),
            default_model,
            loader: None,
            others: Arc::default(),
            rerankers: Arc::new(Rerankers::new(
                settings.rerank.clone(),
                settings.collection_rerank.clone(),
            )),
        }
    }

    /// Lets searches load the cross-encoders their rerank stage names.
    pub fn with_reranker_loader(self, loader: RerankerLoader) -> Self {
        self.rerankers.set_loader(loader);
        self
    }

    pub(crate) fn rerankers(&self) -> &Rerankers {
        &self.rerankers
    }

    /// Lets searches embed queries for collections built with other models.
    pub fn with_model_loader(mut self, loader: ModelLoader) -> Self {
        self.loader = Some(loader);
        self
    }

    /// The collection behind `name` (an alias's target) and its model.
    /// Searches go to that physical collection, with a query vector from
    /// that model, so an alias switch between the two lookups cannot pair
    /// one model's query with the other's vectors.
    async fn target(&self, name: &str, fresh: bool) -> Result<Target> {
        if !fresh
            && let Some(t) = self
                .targets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
            && t.at.elapsed() < TARGET_TTL
        {
            return Ok(t.clone());
        }
        let owned = name.to_string();
        let (physical, spec) = blocking(&self.store, move |s| {
            let physical = s.resolve(&owned)?;
            let spec = s.collection_spec(&physical)?;
            Ok((physical, spec))
        })
        .await?;
        let spec = spec.ok_or_else(|| quarry_store::StoreError::NoCollection(name.to_string()))?;
        let t = Target {
            physical,
            model: spec.model,
            at: std::time::Instant::now(),
        };
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// The embedder for `model`: the default one, or one loaded on demand.
    pub(crate) async fn embedder_for(&self, collection: &str, model: &Value) -> Result<Embedder> {
        let default = &self.default_model;
        if model == default {
            return Ok(self.embedder.clone());
        }
        let Some(loader) = &self.loader else {
            return Err(EngineError::Invalid(format!(
                "collection {collection:?} was built with {model}, but queries are embedded with {default}; use that model"
            )));
        };
        let key = model.to_string();
        let mut others = self.others.lock().await;
        if let Some(e) = others.get(&key) {
            return Ok(e.clone());
        }
        let (loader, m) = (Arc::clone(loader), model.clone());
        let embedder = tokio::task::spawn_blocking(move || loader(&m))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
            .map_err(|e| {
                EngineError::ModelLoad(format!("loading the model of {collection:?}: {e}"))
            })?;
        others.insert(key, embedder.clone());
        Ok(embedder)
    }

    /// The fusion a hybrid search of `collection` uses: the request's, the
    /// collection's, or the configured one.
    fn fusion_for(&self, collection: &str, options: &SearchOptions) -> Fusion {
        options
            .fusion
            .or_else(|| self.collection_fusion.get(collection).copied())
            .unwrap_or(self.fusion)
    }

    /// The policy a front end passes as `SearchOptions::degrade`.
    pub fn degrade_policy(&self) -> DegradePolicy {
        self.degrade
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    /// The query's vector, from the cache when the same text was asked
    /// recently: repeated queries skip the model entirely.
    pub(crate) async fn query_vector(&self, embedder: &Embedder, query: &str) -> Result<Vec<f32>> {
        // Keyed by model too: two collections may use different models.
        let key = format!("{}\u{0}{query}", embedder.fingerprint().weights_sha256);
        if let Some(cache) = &self.cache
            && let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
        {
            return Ok(v.as_ref().clone());
        }
        let v = embedder.embed_query(query).await?.embedding;
        if let Some(cache) = &self.cache {
            cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(key, Arc::new(v.clone()));
        }
        Ok(v)
    }

    /// Hits for `query` in `collection`, after checking the options.
    pub async fn search(
        &self,
        collection: &str,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        Ok(self.search_full(collection, query, options).await?.hits)
    }

    /// The first stage: dense, BM25 or fused hits, saying whether it
    /// degraded to BM25 (only with `options.degrade`).
    pub(crate) async fn first_stage(
        &self,
        collection: &str,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Searched> {
        if query.trim().is_empty() {
            return Err(EngineError::Invalid("the query is empty".into()));
        }
        options.validate(self.max_top_k)?;
        // With a per-document cap or folded duplicates, fetch more so that
        // top_k remain.
        let dedupe = options.dedupe.unwrap_or(self.dedupe);
        let limit = if options.per_doc_limit.is_some() {
            options.top_k.saturating_mul(4).max(options.top_k + 20)
        } else if dedupe {
            options.top_k.saturating_mul(2).max(options.top_k + 10)
        } else {
            options.top_k
        };
        let text = query;
        let mut fresh = false;
        let mut degraded = None;
        let mut timing = StageTimes::default();
        let points = loop {
            let target = self.target(collection, fresh).await?;
            let policy = options.degrade.as_ref();
            let embedding = std::time::Instant::now();
            let query = match options.mode {
                Mode::Bm25 => Query::Bm25(text.to_string()),
                mode => match self
                    .vector_within(collection, &target.model, text, policy)
                    .await
                {
                    Ok(dense) if mode == Mode::Dense => Query::Dense(dense),
                    // Both sides, fused below (see `fusion`).
                    Ok(dense) => Query::Hybrid {
                        dense,
                        text: text.to_string(),
                        prefetch: limit.saturating_mul(self.hybrid_prefetch_factor).max(50),
                        rrf_k: self.rrf_k,
                    },
                    Err(why) => {
                        degraded = Some(fallback(mode, policy, why)?);
                        Query::Bm25(text.to_string())
                    }
                },
            };
            timing.embed_ms += embedding.elapsed().as_secs_f64() * 1e3;
            let request = SearchRequest {
                query,
                limit,
                filter: options.filter.to_condition()?,
                score_threshold: options.score_threshold,
                exact: false,
                ef: None,
            };
            let name = target.physical.clone();
            let fusion = self.fusion_for(collection, options);
            let rrf_k = self.rrf_k;
            let searching = std::time::Instant::now();
            let searched = blocking(&self.store, move |s| match &request.query {
                Query::Hybrid {
                    dense,
                    text,
                    prefetch,
                    ..
                } => {
                    // Each side whole, without the threshold: it applies to
                    // the fused score.
                    let side = |query| SearchRequest {
                        query,
                        limit: *prefetch,
                        filter: request.filter.clone(),
                        score_threshold: None,
                        exact: false,
                        ef: None,
                    };
                    let by_dense = s.search_ids(&name, &side(Query::Dense(dense.clone())))?;
                    let by_bm25 = s.search_ids(&name, &side(Query::Bm25(text.clone())))?;
                    // Each side's own score, for the hits' relevance.
                    let mut sides: HashMap<PointId, SideScores> = HashMap::new();
                    for h in &by_dense {
                        sides.entry(h.id).or_default().dense = h.score;
                    }
                    for h in &by_bm25 {
                        sides.entry(h.id).or_default().bm25 = h.score;
                    }
                    let kept = fusion::fused(&fusion, rrf_k, by_dense, by_bm25, &request);
                    // Payloads only for the hits kept, in the fused order.
                    let ids: Vec<PointId> = kept.iter().map(|h| h.id).collect();
                    let mut payloads: HashMap<PointId, ChunkPayload> = s
                        .retrieve(&name, &ids, false)?
                        .into_iter()
                        .map(|p| (p.id, p.payload))
                        .collect();
                    let points = kept
                        .into_iter()
                        .filter_map(|h| {
                            let payload = payloads.remove(&h.id)?;
                            Some(ScoredPoint {
                                id: h.id,
                                score: h.score,
                                payload,
                            })
                        })
                        .collect();
                    Ok(Stage { points, sides })
                }
                _ => Ok(Stage {
                    points: s.search(&name, &request)?,
                    sides: HashMap::new(),
                }),
            })
            .await;
            timing.store_ms += searching.elapsed().as_secs_f64() * 1e3;
            match searched {
                // The old collection was dropped after a switch: look again.
                Err(EngineError::Store(quarry_store::StoreError::NoCollection(_))) if !fresh => {
                    fresh = true;
                }
                other => break other?,
            }
        };
        let mut per_doc: HashMap<String, usize> = HashMap::new();
        let served = if degraded.is_some() {
            Mode::Bm25
        } else {
            options.mode
        };
        let scale = crate::relevance::Scale::new(query);
        let min_relevance = options.min_relevance.unwrap_or(0.0);
        let Stage { points, sides } = points;
        let hits: Vec<Hit> = points
            .into_iter()
            .map(|p| {
                let relevance = match served {
                    Mode::Dense => scale.dense(p.score),
                    Mode::Bm25 => scale.bm25(p.score),
                    Mode::Hybrid => {
                        let side = sides.get(&p.id).copied().unwrap_or_default();
                        scale.hybrid(side.dense, side.bm25)
                    }
                };
                let mut hit = Hit::new(p.id, p.score, p.payload);
                hit.relevance = relevance;
                hit
            })
            .filter(|h| h.relevance >= min_relevance)
            .collect();
        let hits = if dedupe {
            crate::dedupe::collapse(hits)
        } else {
            hits
        };
        let hits = hits
            .into_iter()
            .filter(|h| match options.per_doc_limit {
                Some(cap) => {
                    let n = per_doc.entry(h.doc_id.clone()).or_default();
                    *n += 1;
                    *n <= cap
                }
                None => true,
            })
            .take(options.top_k)
            .collect();
        Ok(Searched {
            hits,
            degraded,
            timing,
        })
    }
}
