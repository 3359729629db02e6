//! `type = "s3"`: the objects under one prefix of a bucket.
//!
//! Listing is the bucket's own listing, which carries each object's ETag:
//! the ETag is the version, so an unchanged object is skipped without a
//! download, and only changed or new objects are read. Any failed page of
//! the listing (a lost connection, a 5xx, a timeout, a credential the
//! server refuses) fails the whole listing, and a failed listing deletes
//! nothing. An object listed but gone by the time it is read is a failed
//! read, so its indexed version stays until a listing no longer has it.
//!
//! `object_store` speaks S3 (and GCS and Azure, one feature each). It is
//! async; the [`Source`] trait is called from blocking threads, so the
//! calls run on one small runtime kept for the life of the process, which
//! keeps its HTTP connections pooled across syncs.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};
use quarry_core::config::S3SourceConfig;

use super::fs::PathFilter;
use super::{DocumentRef, Listing, ListingIssue, RawDocument, Source, SourceError};
use crate::{IngestError, Result};

pub struct S3Source {
    config: S3SourceConfig,
    filter: PathFilter,
    max_file_bytes: u64,
    bucket: String,
    /// The key prefix, without its trailing `/`; empty for the whole bucket.
    prefix: String,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for S3Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Source")
            .field("url", &self.config.url)
            .field("endpoint", &self.config.endpoint)
            .finish_non_exhaustive()
    }
}

/// The runtime every S3 source's requests run on. It is never dropped, so
/// dropping a source inside async code cannot drop a runtime there.
fn runtime() -> std::result::Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("quarry-s3")
                .enable_all()
                .build()
                .map_err(|e| format!("starting the S3 client's runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `s3://bucket/prefix/` as the bucket and the prefix without slashes at
/// either end.
fn parse_url(url: &str) -> std::result::Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        format!("url = {url:?} is not an S3 URL; write s3://bucket/prefix/ (the endpoint goes in `endpoint`)")
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!(
            "url = {url:?} names no bucket; write s3://bucket/prefix/"
        ));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

impl S3Source {
    /// Checks the configuration and builds the client; nothing is requested
    /// until the listing.
    pub fn new(config: &S3SourceConfig, max_file_bytes: u64) -> Result<Self> {
        let bad = |message: String| IngestError::Source {
            path: config.url.clone().into(),
            message: format!("source {:?}: {message}", config.name),
        };
        let (bucket, prefix) = parse_url(&config.url).map_err(bad)?;
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        // `from_env` reads the AWS_* variables: keys, session token, region.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout),
            )
            // A few quick retries inside one request; the schedule retries
            // a failed sync with its own, longer backoff.
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: timeout,
                ..Default::default()
            });
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &config.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(bad(format!(
                    "endpoint = {endpoint:?} is not a URL; write http://host:port or https://host"
                )));
            }
            builder = builder
                .with_endpoint(endpoint.trim_end_matches('/'))
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder
            .build()
            .map_err(|e| bad(format!("cannot configure the S3 client: {e}")))?;
        Ok(Self {
            filter: PathFilter::new(&config.include, &config.exclude)?,
            max_file_bytes,
            bucket,
            prefix,
            store: Arc::new(store),
            config: config.clone(),
        })
    }

    fn object_uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Whether trying again may help, and what to do about it if not. S3
    /// errors mostly arrive as `Generic`, with the server's XML error in
    /// the text: its `<Code>` decides.
    fn error(&self, uri: &str, e: object_store::Error) -> SourceError {
        use object_store::Error::*;
        let text = e.to_string();
        let code = xml_field(&text, "Code");
        let said = match (&code, xml_field(&text, "Message")) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            _ => text.split(": <?xml").next().unwrap_or(&text).to_string(),
        };
        let credentials = "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN \
                           (a session token may have expired)";
        match (e, code.as_deref()) {
            (NotFound { .. }, _) | (_, Some("NoSuchBucket")) => SourceError::permanent(
                uri,
                format!(
                    "{said}; check the bucket in `url` (and `endpoint`, for an S3-compatible server)"
                ),
            ),
            (PermissionDenied { .. } | Unauthenticated { .. }, _)
            | (
                _,
                Some(
                    "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "ExpiredToken"
                    | "TokenRefreshRequired"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken",
                ),
            ) => SourceError::permanent(
                uri,
                format!("the server refused the credentials ({said}); {credentials}"),
            ),
            _ => SourceError::transient(uri, said),
        }
    }

    /// An object's key relative to the prefix, or `None` for one outside it
    /// or a folder marker.
    fn relative<'a>(&self, key: &'a str) -> Option<&'a str> {
        let rel = if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?
        };
        (!rel.is_empty() && !rel.ends_with('/')).then_some(rel)
    }
}

/// The text of `<name>` in an S3 XML error quoted in `text`.
fn xml_field(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let rest = &text[text.find(&open)? + open.len()..];
    Some(rest[..rest.find("</")?].trim().to_string()).filter(|s| !s.is_empty())
}

/// An ETag, or for a server that sends none, the time and size.
fn version(meta: &ObjectMeta) -> String {
    match &meta.e_tag {
        Some(tag) => tag.trim_matches('"').to_string(),
        None => format!(
            "{}-{}",
            meta.last_modified.timestamp_nanos_opt().unwrap_or_default(),
            meta.size
        ),
    }
}

impl Source for S3Source {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn list(&self) -> Result<Listing, SourceError> {
        let rt = runtime().map_err(|e| SourceError::transient(&self.config.url, e))?;
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let objects: Vec<ObjectMeta> = rt
            .block_on(self.store.list(prefix.as_ref()).try_collect())
            .map_err(|e| self.error(&self.config.url, e))?;
        let mut listing = Listing::default();
        for meta in objects {
            let key = meta.location.as_ref();
            let Some(rel) = self.relative(key) else {
                continue;
            };
            if !self.filter.allows(rel) {
                continue;
            }
            let uri = self.object_uri(key);
            if meta.size > self.max_file_bytes {
                listing.issues.push(ListingIssue {
                    id: Some(rel.to_string()),
                    uri,
                    reason: format!(
                        "object is {} bytes, over the limit of {} (sync.max_file_bytes)",
                        meta.size, self.max_file_bytes
                    ),
                    skipped: true,
                });
                continue;
            }
            listing.docs.push(DocumentRef {
                id: rel.to_string(),
                version: version(&meta),
                uri,
                path: Some(rel.to_string()),
                size: meta.size,
            });
        }
        listing.docs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(listing)
    }

    fn read(&self, doc: &DocumentRef) -> Result<RawDocument, SourceError> {
        let rt = runtime().map_err(|e| SourceError::transient(&doc.uri, e))?;
        let key = match &self.prefix {
            p if p.is_empty() => doc.id.clone(),
            p => format!("{p}/{}", doc.id),
        };
        let location = ObjectPath::from(key.as_str());
        let (meta, bytes) = rt
            .block_on(async {
                let got = self.store.get(&location).await?;
                let meta = got.meta.clone();
                Ok::<_, object_store::Error>((meta, got.bytes().await?))
            })
            .map_err(|e| self.error(&doc.uri, e))?;
        if bytes.len() as u64 > self.max_file_bytes {
            return Err(SourceError::permanent(
                &doc.uri,
                format!(
                    "object grew to {} bytes, over the limit of {} (sync.max_file_bytes)",
                    bytes.len(),
                    self.max_file_bytes
                ),
            ));
        }
        // What was read, not what was listed: an object rewritten since the
        // listing is stored under the ETag of the bytes actually indexed.
        let version = version(&meta);
        let mut metadata = serde_json::Map::new();
        metadata.insert("s3_key".into(), key.into());
        metadata.insert("s3_etag".into(), version.clone().into());
        Ok(RawDocument {
            boilerplate: Default::default(),
            bytes: bytes.to_vec(),
            content_type: None,
            title: None,
            metadata,
            version: Some(version),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_url("s3://b/reports/2024/"),
            Ok(("b".into(), "reports/2024".into()))
        );
        assert_eq!(parse_url("s3://b"), Ok(("b".into(), String::new())));
        assert_eq!(parse_url("s3://b/"), Ok(("b".into(), String::new())));
        let err = parse_url("https://b.s3.amazonaws.com/x").unwrap_err();
        assert!(err.contains("s3://bucket/prefix/"), "{err}");
        assert!(parse_url("s3:///x").unwrap_err().contains("no bucket"));
    }

    #[test]
    fn s3_error_codes_are_read_from_the_quoted_xml() {
        let text = "404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                    <Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(xml_field(text, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(
            xml_field(text, "Message").as_deref(),
            Some("The specified bucket does not exist")
        );
        assert_eq!(xml_field("no xml here", "Code"), None);
    }
}
