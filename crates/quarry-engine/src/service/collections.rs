//! Collections as an application manages them without a configured
//! source: create one, list its documents a page at a time, write a batch
//! of documents, delete it.
//!
//! A new collection is built for the service's own model and chunking:
//! one process embeds with one model, and the chunking a document was
//! stored under is part of its version, so a collection that asked for
//! another would be re-chunked by every sync. A request naming anything
//! else is refused with what this server uses, rather than silently
//! ignored.

use std::collections::BTreeMap;

use quarry_core::payload::ChunkPayload;
use quarry_store::{Fields, ScrollRequest};
use serde::{Deserialize, Serialize};

use super::documents::{NewDocument, WriteResult};
use super::{CollectionInfo, Service};
use crate::{EngineError, Result, blocking};

/// `POST /v1/collections`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCollection {
    pub name: String,
    /// The embedding model's id; default (and the only one accepted) the
    /// server's.
    pub model: Option<String>,
    /// `{"max_tokens", "overlap"}`; default (and the only one accepted) the
    /// server's.
    pub chunking: Option<ChunkingRequest>,
    /// Index settings on top of the server's `[index]`: `m`,
    /// `ef_construct`, `ef`, `quantization` (`none` or `int8`),
    /// `oversampling`, `rescore`, `on_disk`, `full_scan_threshold_kb`,
    /// `indexing_threshold_kb`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub index: Option<quarry_core::config::IndexOverride>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChunkingRequest {
    pub max_tokens: Option<usize>,
    pub overlap: Option<usize>,
}

/// One document of a collection, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentSummary {
    pub doc_id: String,
    pub source: String,
    pub uri: String,
    pub title: Option<String>,
    pub chunks: usize,
    /// The stored version hash.
    pub hash: String,
}

/// A page of a collection's documents, in id order.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentPage {
    pub documents: Vec<DocumentSummary>,
    /// Documents in the collection.
    pub total: usize,
    /// Pass as `after` for the next page; absent after the last.
    pub next: Option<String>,
}

/// One document of a batch write.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchDocument {
    pub id: String,
    /// The document's text; not empty or only whitespace.
    pub text: String,
    /// `text/plain` (default), `text/markdown` or `text/html`.
    pub content_type: Option<String>,
    pub title: Option<String>,
    pub uri: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl BatchDocument {
    /// The document as a single PUT would carry it.
    fn split(self) -> (String, NewDocument) {
        let document = NewDocument {
            text: self.text,
            content_type: self.content_type,
            title: self.title,
            uri: self.uri,
            metadata: self.metadata,
        };
        (self.id, document)
    }
}

/// What became of one document of a batch: each is written (or not) on
/// its own, so one bad document fails alone.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResult {
    pub id: String,
    /// `added`, `updated` or `unchanged`; absent when it failed.
    pub result: Option<WriteResult>,
    pub chunks_embedded: usize,
    /// Why it was not written.
    pub error: Option<String>,
}

/// How a page of documents is asked for.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Documents with ids after this one.
    pub after: Option<String>,
    pub limit: usize,
}

impl Service {
    /// Creates an empty collection for the service's model and chunking.
    pub async fn create_collection(&self, request: NewCollection) -> Result<CollectionInfo> {
        let name = request.name.clone();
        quarry_core::config::check_name("collection", &name)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let model = self.indexer.embedder().fingerprint().model_id.clone();
        if let Some(asked) = &request.model
            && *asked != model
        {
            return Err(EngineError::Invalid(format!(
                "this server embeds with {model}; a collection for {asked} needs a server configured with it (model.id), or `quarry reindex` afterwards"
            )));
        }
        let chunking = self.indexer.chunking().clone();
        if let Some(c) = request.chunking {
            let same = |field: &str, asked: Option<usize>| {
                asked.is_none_or(|v| chunking[field].as_u64() == Some(v as u64))
            };
            if !same("max_tokens", c.max_tokens) || !same("overlap", c.overlap) {
                return Err(EngineError::Invalid(format!(
                    "this server chunks with {chunking}; set [chunking] in its configuration to use another"
                )));
            }
        }
        let exists = {
            let name = name.clone();
            blocking(&self.store, move |s| s.collection_spec(&name)).await?
        };
        if exists.is_some() {
            return Err(EngineError::Conflict(format!(
                "collection {name:?} already exists"
            )));
        }
        self.indexer
            .prepare_with(&name, request.index.as_ref())
            .await?;
        self.collection_info(&name).await
    }

    /// One collection's model and counts.
    pub async fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        self.collections()
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| quarry_store::StoreError::NoCollection(name.to_string()).into())
    }

    /// Deletes a collection and every point in it. A configured source that
    /// targets it fills it again on its next sync.
    pub async fn delete_collection(&self, name: &str) -> Result<CollectionInfo> {
        let info = self.collection_info(name).await?;
        let running = self
            .source_status()
            .into_iter()
            .find(|s| s.collection == name && s.running);
        if let Some(s) = running {
            return Err(EngineError::Conflict(format!(
                "source {:?} is syncing into collection {name:?}; delete it once the sync ends",
                s.source
            )));
        }
        let n = name.to_string();
        let physical = blocking(&self.store, move |s| s.resolve(&n)).await?;
        if physical != name {
            return Err(EngineError::Conflict(format!(
                "{name:?} is an alias of {physical:?} (made by `quarry reindex`); delete {physical:?} with the store's own tools"
            )));
        }
        let n = name.to_string();
        blocking(&self.store, move |s| s.drop_collection(&n)).await?;
        Ok(info)
    }

    /// A page of a collection's documents, in id order.
    pub async fn list_documents(&self, name: &str, page: PageRequest) -> Result<DocumentPage> {
        let n = name.to_string();
        let request = ScrollRequest::fields(Fields::All, 2048);
        let points = blocking(&self.store, move |s| {
            if s.collection_spec(&n)?.is_none() {
                return Err(quarry_store::StoreError::NoCollection(n.clone()));
            }
            s.scroll_all(&n, request).points()
        })
        .await?;
        let mut docs: BTreeMap<String, DocumentSummary> = BTreeMap::new();
        for p in points {
            let ChunkPayload {
                doc_id,
                source,
                uri,
                title,
                doc_hash,
                ..
            } = p.payload;
            docs.entry(doc_id.clone())
                .or_insert_with(|| DocumentSummary {
                    doc_id,
                    source,
                    uri,
                    title,
                    chunks: 0,
                    hash: doc_hash,
                })
                .chunks += 1;
        }
        let total = docs.len();
        let limit = page.limit.max(1);
        let mut rest: Vec<DocumentSummary> = match &page.after {
            Some(after) => docs
                .range::<String, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .map(|(_, d)| d.clone())
                .take(limit + 1)
                .collect(),
            None => docs.into_values().take(limit + 1).collect(),
        };
        let next = if rest.len() > limit {
            rest.truncate(limit);
            rest.last().map(|d| d.doc_id.clone())
        } else {
            None
        };
        Ok(DocumentPage {
            documents: rest,
            total,
            next,
        })
    }

    /// Writes each document of `batch` on its own, through the same path as
    /// a single PUT, and says what became of each.
    pub async fn put_documents(
        &self,
        collection: &str,
        batch: Vec<BatchDocument>,
    ) -> Result<Vec<BatchResult>> {
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = batch.iter().find(|d| !seen.insert(d.id.as_str())) {
            return Err(EngineError::Invalid(format!(
                "document {:?} appears twice in the batch",
                twice.id
            )));
        }
        let mut out = Vec::with_capacity(batch.len());
        for doc in batch {
            let (id, document) = doc.split();
            let result = match self.put_document(collection, &id, document).await {
                Ok(r) => BatchResult {
                    id,
                    result: Some(r.result),
                    chunks_embedded: r.chunks_embedded,
                    error: None,
                },
                // A store or model failure fails the rest too: say so for
                // the whole request rather than per document.
                Err(e @ (EngineError::Invalid(_) | EngineError::Conflict(_))) => BatchResult {
                    id,
                    result: None,
                    chunks_embedded: 0,
                    error: Some(e.to_string()),
                },
                Err(e) => return Err(e),
            };
            out.push(result);
        }
        Ok(out)
    }
}
