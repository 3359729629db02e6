//! Single-document writes: add or replace, status, delete. Documents written
//! here belong to the source [`API_SOURCE`] and go through exactly the
//! parse, chunk and embed path of a sync.

use quarry_ingest::{MemorySource, RawDocument};
use serde::{Deserialize, Serialize};

use super::Service;
use super::jobs::now_unix;
use crate::{EngineError, Result};

/// Source name of documents written through the API.
pub const API_SOURCE: &str = "api";

/// Schemes a citation may link to. A `javascript:` or `data:` URI would run
/// or render in whatever page shows the citation.
const URI_SCHEMES: &[&str] = &[
    "http", "https", "file", "s3", "gs", "git", "ssh", "ftp", "quarry",
];

const CONTENT_TYPES: &[&str] = &["text/plain", "text/markdown", "text/html"];

/// A document to add or replace.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PutDocumentBody))]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    /// The document's text; not empty or only whitespace.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub text: String,
    /// `text/plain` (default), `text/markdown` or `text/html`.
    pub content_type: Option<String>,
    pub title: Option<String>,
    pub uri: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentStatus {
    pub doc_id: String,
    pub collection: String,
    pub source: String,
    /// The stored version hash.
    pub hash: String,
    pub chunks: usize,
    pub uri: String,
    pub title: Option<String>,
    /// When the document was last written through the API (absent for
    /// documents written by a sync, whose payloads hold no times).
    pub updated_at_unix: Option<u64>,
}

/// A document with its text.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentText {
    #[serde(flatten)]
    pub status: DocumentStatus,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WriteResult {
    Added,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutDocumentResponse {
    pub result: WriteResult,
    pub chunks_embedded: usize,
    pub chunks_reused: usize,
    pub status: DocumentStatus,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeleteResponse {
    pub doc_id: String,
    pub deleted_points: usize,
}

fn check_doc_id(id: &str) -> Result<()> {
    if id.trim().is_empty() || id.len() > 1024 {
        return Err(EngineError::Invalid(
            "document id must be 1 to 1024 characters".into(),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(EngineError::Invalid(
            "document id must not contain control characters".into(),
        ));
    }
    Ok(())
}

fn check_uri(uri: &str) -> Result<()> {
    let scheme = uri.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let ok = uri.len() <= 4096
        && !uri.chars().any(char::is_control)
        && scheme.is_some_and(|s| URI_SCHEMES.contains(&s.as_str()));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "uri must be an absolute URI of at most 4096 bytes with one of the schemes {}",
            URI_SCHEMES.join(", ")
        )))
    }
}

impl Service {
    /// A stored document's status, or `None`.
    pub async fn document(&self, collection: &str, id: &str) -> Result<Option<DocumentStatus>> {
        let points = self.indexer.document_points(collection, id).await?;
        let Some(first) = points.first() else {
            return Ok(None);
        };
        let p = &first.payload;
        Ok(Some(DocumentStatus {
            doc_id: id.to_string(),
            collection: collection.to_string(),
            source: p.source.clone(),
            hash: p.doc_hash.clone(),
            chunks: points.len(),
            uri: p.uri.clone(),
            title: p.title.clone(),
            updated_at_unix: p.metadata.get("updated_at_unix").and_then(|v| v.as_u64()),
        }))
    }

    /// A stored document's status and its text, rebuilt from its chunks
    /// (what an agent reads after a search points it at the document).
    pub async fn document_text(&self, collection: &str, id: &str) -> Result<Option<DocumentText>> {
        let Some(status) = self.document(collection, id).await? else {
            return Ok(None);
        };
        let points = self.indexer.document_points(collection, id).await?;
        let hits = points
            .into_iter()
            .map(|p| crate::Hit::new(p.id, 0.0, p.payload))
            .collect();
        Ok(Some(DocumentText {
            status,
            text: crate::context::document_text(hits),
        }))
    }

    /// Adds or replaces one document.
    pub async fn put_document(
        &self,
        collection: &str,
        id: &str,
        body: NewDocument,
    ) -> Result<PutDocumentResponse> {
        check_doc_id(id)?;
        let content_type = body.content_type.unwrap_or_else(|| "text/plain".into());
        if !CONTENT_TYPES.contains(&content_type.as_str()) {
            return Err(EngineError::Invalid(format!(
                "content_type {content_type:?} is not supported; use text/plain, text/markdown or text/html"
            )));
        }
        if let Some(uri) = &body.uri {
            check_uri(uri)?;
        }
        if body.text.trim().is_empty() {
            return Err(EngineError::Invalid("text must not be empty".into()));
        }
        if let Some(existing) = self.document(collection, id).await?
            && existing.source != API_SOURCE
        {
            return Err(EngineError::Conflict(format!(
                "document {id:?} belongs to source {:?}; change it there, or use another id",
                existing.source
            )));
        }
        let metadata = body.metadata.unwrap_or_default();
        if metadata.contains_key("updated_at_unix") {
            return Err(EngineError::Invalid(
                "metadata.updated_at_unix is set by the server".into(),
            ));
        }
        let raw = RawDocument {
            boilerplate: Default::default(),
            bytes: body.text.into_bytes(),
            content_type: Some(content_type),
            title: body.title,
            metadata,
            version: None,
        };
        let source = MemorySource::single(API_SOURCE, id, body.uri, raw, Some(now_unix()));
        let report = self.indexer.put_document(collection, source, id).await?;
        if let Some(e) = report.errors.first() {
            return Err(EngineError::Invalid(format!(
                "the document was not indexed: {}",
                e.reason
            )));
        }
        let status = self
            .document(collection, id)
            .await?
            .ok_or_else(|| EngineError::Task("document missing after write".into()))?;
        let result = if report.added > 0 {
            WriteResult::Added
        } else if report.updated > 0 {
            WriteResult::Updated
        } else {
            WriteResult::Unchanged
        };
        Ok(PutDocumentResponse {
            result,
            chunks_embedded: report.chunks_embedded,
            chunks_reused: report.chunks_reused,
            status,
        })
    }

    /// Deletes a document; not finding it is an error.
    pub async fn delete_document(&self, collection: &str, id: &str) -> Result<DeleteResponse> {
        let n = self.indexer.delete_document(collection, id).await?;
        if n == 0 {
            return Err(EngineError::NotFound(format!(
                "no document {id:?} in collection {collection:?}"
            )));
        }
        Ok(DeleteResponse {
            doc_id: id.to_string(),
            deleted_points: n,
        })
    }
}
