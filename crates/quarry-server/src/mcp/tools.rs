//! The tools: their schemas, and each call turned into the same code path
//! its HTTP route runs (tenants, validation, deadlines, the cache).
//!
//! Arguments are the HTTP request body with the path's parameters beside
//! it, so a tool accepts exactly what the route does and rejects what it
//! rejects, with the same error codes and messages.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock, Tool};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::schema::{Extra, tool_schema};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::jobs::check_source;
use crate::routes::search::{ContextBody, SearchBody, run_context, run_search};

/// How long `sync_source` waits for its job by default.
const SYNC_WAIT: Duration = Duration::from_secs(120);

fn collection(required: bool) -> Extra {
    Extra {
        name: "collection",
        schema: json!({
            "type": "string",
            "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$",
            "description": if required {
                "The collection (list_collections names them)"
            } else {
                "The collection (list_collections names them); default: the only one there is"
            },
        }),
        required,
    }
}

/// Every tool, with schemas from the OpenAPI document of the HTTP API:
/// built once, as the document is the same for the life of the process.
pub(crate) fn list() -> &'static [Tool] {
    static TOOLS: std::sync::OnceLock<Vec<Tool>> = std::sync::OnceLock::new();
    TOOLS.get_or_init(build)
}

fn build() -> Vec<Tool> {
    let doc = serde_json::to_value(crate::openapi()).unwrap_or(Value::Null);
    let schema = |body: Option<&str>, extra: Vec<Extra>| Arc::new(tool_schema(&doc, body, extra));
    vec![
        Tool::new(
            "search",
            "Search a collection: dense (semantic), bm25 (keyword) or hybrid. Returns the \
             best chunks with their document ids, titles, URIs, scores and text.",
            schema(Some("SearchBody"), vec![collection(false)]),
        ),
        Tool::new(
            "context",
            "Grounding context for a question: the best passages of a collection within a \
             token budget, each behind a numbered citation [n], with the cited URIs.",
            schema(Some("ContextBody"), vec![collection(false)]),
        ),
        Tool::new(
            "list_collections",
            "The collections this key may read, with their model, documents and chunks.",
            schema(None, vec![]),
        ),
        Tool::new(
            "get_document",
            "One document of a collection: its source, URI, title, version and full text \
             (rebuilt from its chunks).",
            schema(
                None,
                vec![
                    collection(false),
                    Extra {
                        name: "id",
                        schema: json!({ "type": "string", "minLength": 1,
                            "description": "The document id, as search hits give it (doc_id)" }),
                        required: true,
                    },
                ],
            ),
        ),
        Tool::new(
            "sync_source",
            "Sync a configured source now (needs a key with the write scope) and, unless \
             wait is false, wait for it to finish (at most 120 s) and report what changed.",
            schema(
                None,
                vec![
                    Extra {
                        name: "source",
                        schema: json!({ "type": "string", "minLength": 1,
                            "description": "A configured source's name" }),
                        required: true,
                    },
                    Extra {
                        name: "wait",
                        schema: json!({ "type": "boolean", "default": true }),
                        required: false,
                    },
                ],
            ),
        ),
    ]
}

/// A tool's failure, as the HTTP API would give it.
pub(crate) fn failure(e: ApiError) -> CallToolResult {
    let body = serde_json::to_value(e.body()).unwrap_or(Value::Null);
    let mut result = CallToolResult::error(vec![ContentBlock::text(body.to_string())]);
    result.structured_content = Some(body);
    result
}

fn success(text: String, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

/// `args` as the route's body type: unknown or mistyped fields are the
/// route's 400, message included.
fn parse<T: DeserializeOwned>(args: Map<String, Value>) -> Result<T, ApiError> {
    // Through axum's own JSON extractor, so the message is the route's.
    let bytes = serde_json::to_vec(&args).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(axum::Json::<T>::from_bytes(&bytes)?.0)
}

/// Takes a string argument out of `args`.
fn take_str(args: &mut Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match args.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{name} must be a string, not {other}"
        ))),
    }
}

/// The named collection, or the only one the caller can see.
async fn collection_of(
    state: &AppState,
    caller: &Caller,
    args: &mut Map<String, Value>,
) -> Result<String, ApiError> {
    let given = take_str(args, "collection")?;
    if let Some(name) = given {
        quarry_core::CollectionName::new(&name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        caller.check(&name)?;
        return Ok(name);
    }
    // Names only: counting every collection's documents to pick one
    // would cost a scroll of each.
    let store = std::sync::Arc::clone(state.service.store());
    let mut visible: Vec<String> = tokio::task::spawn_blocking(move || store.list_collections())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(quarry_engine::EngineError::from)?
        .into_iter()
        .filter(|n| caller.sees(n))
        .collect();
    match visible.len() {
        1 => Ok(visible.remove(0)),
        0 => Err(ApiError::NotFound(
            "there are no collections yet; sync a source first".into(),
        )),
        _ => Err(ApiError::BadRequest(format!(
            "several collections exist ({}); choose one with the collection argument",
            visible.join(", ")
        ))),
    }
}

fn json_of(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Runs tool `name` for `caller`.
pub(crate) async fn call(
    state: &Arc<AppState>,
    caller: &Caller,
    name: &str,
    mut args: Map<String, Value>,
) -> Result<CallToolResult, ApiError> {
    match name {
        "search" => {
            let collection = collection_of(state, caller, &mut args).await?;
            let body: SearchBody = parse(args)?;
            let served = run_search(state, caller, &collection, &body, false).await?;
            let value = json_of(&served.body)?;
            Ok(success(render_hits(&value), value))
        }
        "context" => {
            let collection = collection_of(state, caller, &mut args).await?;
            let body: ContextBody = parse(args)?;
            let served = run_context(state, caller, &collection, &body, false).await?;
            let value = json_of(&served.body)?;
            Ok(success(render_context(&value), value))
        }
        "list_collections" => {
            let _: Empty = parse(args)?;
            let mut all = state.service.collections().await?;
            all.retain(|c| caller.sees(&c.name));
            let value = json!({ "collections": all });
            let lines: Vec<String> = all
                .iter()
                .map(|c| format!("{}: {} documents, {} chunks", c.name, c.documents, c.points))
                .collect();
            Ok(success(lines.join("\n"), value))
        }
        "get_document" => {
            let collection = collection_of(state, caller, &mut args).await?;
            let id = take_str(&mut args, "id")?
                .ok_or_else(|| ApiError::BadRequest("missing field `id`".into()))?;
            let _: Empty = parse(args)?;
            let doc = state
                .service
                .document_text(&collection, &id)
                .await?
                .ok_or_else(|| {
                    ApiError::NotFound(format!("no document {id:?} in collection {collection:?}"))
                })?;
            let text = doc.text.clone();
            let value = serde_json::to_value(doc).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(success(text, value))
        }
        "sync_source" => sync_source(state, caller, args).await,
        other => Err(ApiError::NotFound(format!(
            "no tool {other:?}; tools/list names them"
        ))),
    }
}

/// No arguments: anything given is a mistake worth reporting.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn sync_source(
    state: &Arc<AppState>,
    caller: &Caller,
    mut args: Map<String, Value>,
) -> Result<CallToolResult, ApiError> {
    if !caller.may_write() {
        return Err(ApiError::Forbidden(
            "this API key may not write; use a key with the write scope",
        ));
    }
    let source = take_str(&mut args, "source")?
        .ok_or_else(|| ApiError::BadRequest("missing field `source`".into()))?;
    let wait = match args.remove("wait") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "wait must be true or false, not {other}"
            )));
        }
    };
    let _: Empty = parse(args)?;
    check_source(state, caller, &source)?;
    let started = state.service.start_sync(&source)?;
    let deadline = tokio::time::Instant::now() + SYNC_WAIT;
    loop {
        let job = state.service.job(&started.job_id);
        let finished = job.as_ref().is_some_and(|j| j.finished_at_unix.is_some());
        if !wait || finished || tokio::time::Instant::now() >= deadline {
            let value =
                serde_json::to_value(&job).map_err(|e| ApiError::Internal(e.to_string()))?;
            let text = match &job {
                Some(j) if j.error.is_some() => format!(
                    "sync of {source} failed: {}",
                    j.error.as_deref().unwrap_or_default()
                ),
                Some(j) if finished => format!(
                    "sync of {source} finished: {} documents processed, {} chunks embedded (job {})",
                    j.done, j.chunks_embedded, j.id
                ),
                _ => format!(
                    "sync of {source} is running as job {}; GET /v1/jobs/{} follows it",
                    started.job_id, started.job_id
                ),
            };
            return Ok(success(text, value));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Hits as numbered lines an agent reads easily; the structured content
/// has everything.
fn render_hits(v: &Value) -> String {
    let hits = v["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        return "no hits".into();
    }
    hits.iter()
        .enumerate()
        .map(|(i, h)| {
            let title = h["title"]
                .as_str()
                .unwrap_or_else(|| h["doc_id"].as_str().unwrap_or(""));
            format!(
                "{}. {} ({}, score {:.4})\n{}",
                i + 1,
                title,
                h["uri"].as_str().unwrap_or(""),
                h["score"].as_f64().unwrap_or(0.0),
                h["text"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The context text, then its citations with their URIs.
fn render_context(v: &Value) -> String {
    let mut out = v["text"].as_str().unwrap_or("").to_string();
    let passages = v["passages"].as_array().cloned().unwrap_or_default();
    if !passages.is_empty() {
        out.push_str("\n\nSources:\n");
        for p in &passages {
            let title = p["title"]
                .as_str()
                .unwrap_or_else(|| p["doc_id"].as_str().unwrap_or(""));
            out.push_str(&format!(
                "[{}] {} {}\n",
                p["citation"].as_u64().unwrap_or(0),
                title,
                p["uri"].as_str().unwrap_or("")
            ));
        }
    }
    out
}
