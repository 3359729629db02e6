//! The rerank stage: a cross-encoder reads the query together with each of
//! the first stage's best `top_n` hits and puts them in its order.
//!
//! Dense and BM25 score a passage without seeing the query beside it,
//! which is what makes them fast over a whole index; a cross-encoder reads
//! the two as one input, which is better at telling the right passage from
//! a merely similar one but costs a forward pass per pair, so it only
//! rescores a short list. The stage is off unless `[retrieval] rerank`, a
//! collection's settings or the request asks for it.
//!
//! A reranked hit's `score` is the cross-encoder's (sigmoid, 0 to 1), so
//! the context builder and every front end use the new order unchanged;
//! `retrieval_score` keeps the first stage's. Models load on first use,
//! once however many searches ask at the same time, and run on their own
//! worker at interactive priority. When the server may degrade and the
//! reranker is overloaded or cannot be loaded, the first stage's order is
//! served, marked `degraded`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use quarry_core::config::Rerank;
use quarry_embed::{EmbedError, Embedder, Priority, Scored};

use crate::degrade::Degraded;
use crate::retriever::{Retriever, SearchOptions, Searched};
use crate::{EngineError, Result};

/// Starts a cross-encoder's worker by model id.
pub type RerankerLoader = Arc<dyn Fn(&str) -> std::result::Result<Embedder, String> + Send + Sync>;

/// The configured rerank stages and the cross-encoders loaded so far.
#[derive(Default)]
pub(crate) struct Rerankers {
    default: Option<Rerank>,
    collections: BTreeMap<String, Rerank>,
    loader: std::sync::OnceLock<RerankerLoader>,
    loaded: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Embedder>>>>,
}

/// What one search reranks with.
struct Plan {
    model: String,
    top_n: usize,
}

impl Rerankers {
    pub(crate) fn new(default: Option<Rerank>, collections: BTreeMap<String, Rerank>) -> Self {
        Self {
            default,
            collections,
            ..Self::default()
        }
    }

    /// Set once, when the service is built.
    pub(crate) fn set_loader(&self, loader: RerankerLoader) {
        let _ = self.loader.set(loader);
    }

    /// The models the configuration names; a request may pick among them.
    fn configured(&self) -> Vec<&str> {
        let mut models: Vec<&str> = self
            .default
            .iter()
            .chain(self.collections.values())
            .filter_map(|r| r.model.as_deref())
            .collect();
        models.sort_unstable();
        models.dedup();
        models
    }

    /// `model` if the configuration names it, else the default model.
    fn model(&self, asked: Option<&str>) -> Result<String> {
        let configured = self.configured();
        match asked {
            Some(m) if configured.contains(&m) => Ok(m.to_string()),
            Some(m) => Err(EngineError::Invalid(format!(
                "rerank model {m:?} is not configured (configured: {configured:?}); name it in \
                 [retrieval] rerank or a collection's rerank in quarry.toml"
            ))),
            None => self
                .default
                .as_ref()
                .and_then(|d| d.model.clone())
                .or_else(|| configured.first().map(|m| m.to_string()))
                .ok_or_else(|| {
                    EngineError::Invalid(
                        "no reranker is configured: set [retrieval] rerank = { model = \
                         \"cross-encoder/ms-marco-MiniLM-L-6-v2\" } in quarry.toml"
                            .into(),
                    )
                }),
        }
    }

    /// The stage for a search of `collection`: the request's, over the
    /// collection's, over `[retrieval] rerank`; `None` when off.
    fn plan(&self, collection: &str, asked: Option<&Rerank>) -> Result<Option<Plan>> {
        let configured = self.collections.get(collection).or(self.default.as_ref());
        if asked.is_none() && configured.is_none() {
            return Ok(None);
        }
        let top_n = asked
            .and_then(|r| r.top_n)
            .or_else(|| configured.and_then(|c| c.top_n))
            .unwrap_or(Rerank::DEFAULT_TOP_N);
        if top_n == 0 {
            return Ok(None);
        }
        let model = match asked.and_then(|r| r.model.as_deref()) {
            Some(m) => self.model(Some(m))?,
            None => match configured.and_then(|c| c.model.clone()) {
                Some(m) => m,
                None => self.model(None)?,
            },
        };
        Ok(Some(Plan { model, top_n }))
    }

    async fn load(&self, model: &str) -> Result<Embedder> {
        let cell = Arc::clone(
            self.loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(model.to_string())
                .or_default(),
        );
        let loader = self.loader.get().cloned();
        cell.get_or_try_init(|| async move {
            let loader = loader.ok_or_else(|| {
                EngineError::ModelLoad(format!("no way to load the reranker {model}"))
            })?;
            let id = model.to_string();
            tokio::task::spawn_blocking(move || loader(&id))
                .await
                .map_err(|e| EngineError::Task(e.to_string()))?
                .map_err(|e| EngineError::ModelLoad(format!("loading the reranker {model}: {e}")))
        })
        .await
        .cloned()
    }
}

impl Retriever {
    /// [`Retriever::search`], saying whether it degraded; with a rerank
    /// stage, the first stage fetches `top_n` hits and the cross-encoder
    /// returns its best `top_k`.
    pub async fn search_full(
        &self,
        collection: &str,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Searched> {
        if let Some(r) = &options.rerank {
            r.validate("rerank").map_err(EngineError::Invalid)?;
        }
        let Some(plan) = self.rerankers().plan(collection, options.rerank.as_ref())? else {
            return self.first_stage(collection, query, options).await;
        };
        let mut first = options.clone();
        first.top_k = options.top_k.max(plan.top_n);
        // The threshold applies to the reranked relevance.
        first.min_relevance = None;
        let mut searched = self.first_stage(collection, query, &first).await?;
        let texts: Vec<&str> = searched.hits.iter().map(|h| h.text.as_str()).collect();
        let reranking = std::time::Instant::now();
        let scored: Result<Vec<Scored>> = async {
            let reranker = self.rerankers().load(&plan.model).await?;
            Ok(reranker
                .rerank(query, &texts, false, Priority::Interactive)
                .await?)
        }
        .await;
        searched.timing.rerank_ms = reranking.elapsed().as_secs_f64() * 1e3;
        let scored = match scored {
            Ok(s) => s,
            Err(e) if options.degrade.is_none() => return Err(e),
            Err(e) => {
                let reason = match &e {
                    EngineError::Embed(EmbedError::Overloaded) => "reranker_overloaded",
                    _ => "reranker_unavailable",
                };
                tracing::warn!(collection, error = %e, "rerank skipped; serving the first stage's order");
                searched.hits.truncate(options.top_k);
                searched.degraded = searched.degraded.or(Some(Degraded {
                    reason: reason.into(),
                    served: options.mode,
                }));
                return Ok(searched);
            }
        };
        for (hit, Scored { score, .. }) in searched.hits.iter_mut().zip(scored) {
            hit.retrieval_score = Some(hit.score);
            hit.score = score;
            hit.relevance = crate::relevance::of_cross_encoder(score);
        }
        let min = options.min_relevance.unwrap_or(0.0);
        searched.hits.retain(|h| h.relevance >= min);
        // Stable: ties keep the first stage's order.
        searched.hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        searched.hits.truncate(options.top_k);
        Ok(searched)
    }

    /// Scores `texts` against `query` with `model` (default: the
    /// configured reranker), in the texts' order: the `/rerank` route.
    pub async fn rerank_texts(
        &self,
        model: Option<&str>,
        query: &str,
        texts: &[String],
        raw: bool,
    ) -> Result<(String, Vec<Scored>)> {
        let model = self.rerankers().model(model)?;
        let reranker = self.rerankers().load(&model).await?;
        let scored = reranker
            .rerank(query, texts, raw, Priority::Interactive)
            .await?;
        Ok((model, scored))
    }
}
