//! Documents handed over directly (the HTTP API's `PUT`), so they go through
//! exactly the parse, chunk and embed path a sync uses.

use quarry_core::document::sha256_hex;

use super::{DocumentRef, Listing, RawDocument, Source, SourceError};

/// One document as a writer hands it over.
#[derive(Debug, Clone, Default)]
pub struct MemoryDocument {
    pub id: String,
    pub text: String,
    pub content_type: String,
    pub title: Option<String>,
    /// Default: `quarry://SOURCE/ID`.
    pub uri: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Stored in the metadata as `updated_at_unix`, but not part of the
    /// version, so re-sending the same document changes nothing.
    pub updated_at_unix: Option<u64>,
}

/// A listed document with the bytes it reads as.
#[derive(Debug)]
struct Held {
    doc: DocumentRef,
    raw: RawDocument,
}

#[derive(Debug)]
pub struct MemorySource {
    name: String,
    docs: Vec<Held>,
}

impl MemorySource {
    /// One document; its version covers the text, content type, title, URI
    /// and metadata, so changing any of them re-indexes it.
    pub fn single(name: &str, d: MemoryDocument) -> Self {
        let meta = serde_json::Value::Object(d.metadata.clone()).to_string();
        let uri = d.uri.unwrap_or_else(|| format!("quarry://{name}/{}", d.id));
        let version = sha256_hex(&[
            d.text.as_bytes(),
            d.content_type.as_bytes(),
            d.title.as_deref().unwrap_or("").as_bytes(),
            uri.as_bytes(),
            meta.as_bytes(),
        ]);
        let doc = DocumentRef {
            id: d.id,
            version: version.clone(),
            uri,
            path: None,
            size: d.text.len() as u64,
        };
        let mut metadata = d.metadata;
        if let Some(t) = d.updated_at_unix {
            metadata.insert("updated_at_unix".into(), serde_json::json!(t));
        }
        let raw = RawDocument {
            bytes: d.text.into_bytes(),
            content_type: Some(d.content_type),
            title: d.title,
            metadata,
            version: Some(version),
        };
        Self {
            name: name.to_string(),
            docs: vec![Held { doc, raw }],
        }
    }
}

impl Source for MemorySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn list(&self) -> Result<Listing, SourceError> {
        Ok(Listing {
            docs: self.docs.iter().map(|h| h.doc.clone()).collect(),
            issues: Vec::new(),
        })
    }

    fn read(&self, doc: &DocumentRef) -> Result<RawDocument, SourceError> {
        self.docs
            .iter()
            .find(|h| h.doc.id == doc.id)
            .map(|h| h.raw.clone())
            .ok_or_else(|| SourceError::permanent(&doc.uri, format!("no document {:?}", doc.id)))
    }
}
