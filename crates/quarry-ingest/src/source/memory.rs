//! Documents handed over directly (the HTTP API's `PUT`), so they go through
//! exactly the parse, chunk and embed path a sync uses.

use quarry_core::document::sha256_hex;

use super::{DocumentRef, Listing, RawDocument, Source, SourceError};

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
    /// One document, `raw` as a writer hands it over (its `version` is
    /// computed here). The version covers the text, content type, title,
    /// URI and metadata, so changing any of them re-indexes it.
    /// `updated_at_unix` is stored in the metadata but is not part of the
    /// version, so re-sending the same document changes nothing. The URI
    /// defaults to `quarry://SOURCE/ID`.
    pub fn single(
        name: &str,
        id: &str,
        uri: Option<String>,
        mut raw: RawDocument,
        updated_at_unix: Option<u64>,
    ) -> Self {
        let meta = serde_json::Value::Object(raw.metadata.clone()).to_string();
        let uri = uri.unwrap_or_else(|| format!("quarry://{name}/{id}"));
        let version = sha256_hex(&[
            &raw.bytes,
            raw.content_type.as_deref().unwrap_or("").as_bytes(),
            raw.title.as_deref().unwrap_or("").as_bytes(),
            uri.as_bytes(),
            meta.as_bytes(),
        ]);
        let doc = DocumentRef {
            id: id.to_string(),
            version: version.clone(),
            uri,
            path: None,
            size: raw.bytes.len() as u64,
        };
        if let Some(t) = updated_at_unix {
            raw.metadata
                .insert("updated_at_unix".into(), serde_json::json!(t));
        }
        raw.version = Some(version);
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
