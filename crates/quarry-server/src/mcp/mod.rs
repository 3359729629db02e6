//! The Model Context Protocol front end (the official Rust SDK, `rmcp`).
//!
//! Agents reach tools through MCP, so Quarry offers its service as tools:
//! `search`, `context`, `list_collections`, `get_document` and
//! `sync_source`. Two transports share one handler:
//!
//! - **streamable HTTP at `/mcp`** on the running server. It sits inside
//!   the router's layers, so keys, tenants, rate limits, load shedding and
//!   deadlines apply to it exactly as to the JSON API; the handler reads
//!   the caller the auth layer found from the request's extensions. It is
//!   stateless (no sessions), so it works behind a load balancer across
//!   replicas.
//! - **stdio**, for desktop agents (`quarry mcp`): the local user runs the
//!   process, so the caller may do everything, as with the CLI.
//!
//! A tool that fails answers a tool error (`isError`) whose text is the
//! HTTP API's error body, `{"error": {"code", "message"}}`; only an unknown
//! tool or a malformed request is a protocol error.

mod schema;
mod tools;

use std::sync::Arc;

use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServiceExt};

use crate::AppState;
use crate::auth::Caller;

/// Quarry's MCP server: one per connection (stdio) or per request (HTTP).
#[derive(Clone, Debug)]
pub struct Mcp {
    state: Arc<AppState>,
    /// The caller over stdio; over HTTP the auth layer's, per request.
    local: Option<Caller>,
}

impl Mcp {
    fn caller(&self, context: &RequestContext<RoleServer>) -> Option<Caller> {
        if let Some(local) = &self.local {
            return Some(local.clone());
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
    }
}

impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("quarry", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Quarry retrieves grounding context from indexed document collections. \
                 Call list_collections first, then context (numbered citations with URIs) \
                 or search; get_document reads a whole document.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::list().to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if !tools::list().iter().any(|t| t.name == name) {
            return Err(ErrorData::invalid_params(
                format!("no tool {name:?}; tools/list names them"),
                None,
            ));
        }
        // The auth layer runs before every HTTP request; a request without
        // its verdict is refused rather than trusted.
        let Some(caller) = self.caller(&context) else {
            return Ok(tools::failure(crate::error::ApiError::Unauthorized).into());
        };
        let args = request.arguments.unwrap_or_default();
        let result = match tools::call(&self.state, &caller, &name, args).await {
            Ok(result) => result,
            Err(e) => {
                tracing::info!(target: "quarry::access", key = caller.name(), tool = %name,
                    error = %e, "mcp tool failed");
                tools::failure(e)
            }
        };
        Ok(result.into())
    }
}

/// The `/mcp` route's service. Host checks guard an open server against
/// DNS rebinding from a browser; with keys a page cannot call it anyway,
/// so any host may.
fn http_service(state: Arc<AppState>) -> StreamableHttpService<Mcp, NeverSessionManager> {
    let mut config = StreamableHttpServerConfig::default();
    config.legacy_session_mode = false;
    config.json_response = true;
    config.sse_keep_alive = None;
    config.max_request_body_bytes = state.settings.max_body_bytes;
    if state.keys.enabled() {
        config = config.disable_allowed_hosts();
    } else if !state.settings.allowed_hosts.is_empty() {
        let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        hosts.extend(state.settings.allowed_hosts.iter().cloned());
        config = config.with_allowed_hosts(hosts);
    }
    StreamableHttpService::new(
        move || {
            Ok(Mcp {
                state: Arc::clone(&state),
                local: None,
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// `/mcp`, its answers all typed: the MCP library sends some of its
/// refusals (a 406 for a missing `Accept`) with no `Content-Type`.
pub(crate) fn routes(state: Arc<AppState>) -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route_service("/mcp", http_service(state))
        .layer(axum::middleware::map_response(typed))
}

async fn typed(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    if !resp.headers().contains_key(header::CONTENT_TYPE) && resp.status() != 202 {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    resp
}

/// Serves MCP over stdin and stdout until the client hangs up.
pub async fn serve_stdio(state: Arc<AppState>) -> std::io::Result<()> {
    let server = Mcp {
        state,
        local: Some(Caller::open()),
    };
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}
