use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use quarry_core::Config;
use quarry_engine::TokenCounter;
use quarry_server::{AppState, Keys, ServerSettings};
use quarry_store::VectorStore;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: server.addr, 127.0.0.1:7700).
    #[arg(long)]
    addr: Option<String>,
}

pub async fn run(config: &Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store: Arc<dyn VectorStore> = super::index::open_store(config)?;
    let model = super::load_model(config, None)?;
    let tokenizer = match &config.server.context_tokenizer {
        Some(path) => path.clone(),
        None => model.layout().dir.join("tokenizer.json"),
    };
    let counter = TokenCounter::from_file(&tokenizer)?;
    let tokenizer_json = model.layout().dir.join("tokenizer.json");
    let embedder = quarry_embed::Embedder::start(model, config.embed.clone())?;
    let indexer = quarry_engine::Indexer::new(
        Arc::clone(&store),
        embedder.clone(),
        &tokenizer_json,
        &quarry_engine::IndexerSettings {
            data_dir: config.data_dir.clone(),
            chunk_max_tokens: config.chunking.max_tokens,
            chunk_overlap: config.chunking.overlap,
            whole_documents: false,
            max_parse_secs: config.sync.max_parse_secs,
            skip_generated: config.sync.skip_generated,
        },
    )?;
    let retriever = super::retriever(config, store, embedder);
    let s = &config.server;
    let keys = Keys::new(
        s.read_keys.iter().map(String::as_str),
        s.write_keys.iter().map(String::as_str),
    );
    let server_settings = ServerSettings {
        max_body_bytes: s.max_body_bytes,
        request_timeout: Duration::from_secs(s.request_timeout_secs.max(1)),
        max_concurrency: s.max_concurrency.max(1),
        max_top_k: s.max_top_k.max(1),
    };
    let writer = quarry_server::writes::Writer::new(
        indexer,
        config.sources.clone(),
        config.sync.max_file_bytes,
    );
    let state = Arc::new(
        AppState::new(retriever, counter, keys.clone(), server_settings).with_writer(writer),
    );
    let addr = args.addr.as_deref().unwrap_or(&s.addr);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!(
        "quarry serving {} on http://{} ({})",
        config.data_dir.display(),
        listener.local_addr()?,
        if keys.enabled() {
            "API keys required"
        } else {
            "no API keys configured: open to anyone who can reach it"
        }
    );
    quarry_server::serve(listener, quarry_server::app(state)).await?;
    Ok(ExitCode::SUCCESS)
}
