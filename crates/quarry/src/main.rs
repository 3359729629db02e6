//! The `quarry` command line.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use quarry_core::Config;

// The model allocates and frees large per-layer buffers on every forward
// pass; glibc's malloc returns those to the kernel each time (mmap, page
// faults, zeroing). mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "quarry",
    version,
    about = "A retrieval backend for LLM applications"
)]
struct Cli {
    /// Configuration file (default: ./quarry.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory for indexes (overrides `data_dir` in the config).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Vector store: `edge` (embedded, the default) or a Qdrant server URL
    /// such as http://localhost:6334 (overrides `store` and QUARRY_STORE).
    #[arg(long, global = true, value_name = "edge|URL")]
    store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage embedding models in the model cache.
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
    /// Embed texts and print their vectors.
    Embed(cmd::embed::EmbedArgs),
    /// Score texts against a query with a cross-encoder (a reranker).
    Rerank(cmd::rerank::RerankArgs),
    /// Measure performance.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Bring collections in step with their sources.
    Sync(cmd::index::SyncArgs),
    /// Search a collection.
    Search(cmd::index::SearchArgs),
    /// Build token-budgeted grounding context with citations for a query.
    Context(cmd::index::ContextArgs),
    /// Serve the HTTP API.
    Serve(cmd::serve::ServeArgs),
    /// Serve the Model Context Protocol over stdio, for desktop agents.
    Mcp(cmd::mcp::McpArgs),
    /// Write every point of a collection as JSON Lines, sorted by id.
    Export(cmd::index::ExportArgs),
    /// List collections with their model, documents and points.
    Collections(cmd::index::CollectionsArgs),
    /// Measure retrieval quality on a BEIR-format dataset; compare runs;
    /// gate on a baseline.
    Eval(Box<cmd::eval::EvalArgs>),
    /// Copy collections (vectors, payloads, model binding) between stores,
    /// e.g. from the embedded store to a Qdrant server. Idempotent and
    /// resumable.
    Migrate(cmd::migrate::MigrateArgs),
    /// Re-embed a collection's stored chunks with another model into a new
    /// collection, then switch the collection's alias to it atomically.
    Reindex(cmd::reindex::ReindexArgs),
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("QUARRY_LOG").ok().as_deref()))
        // Colour codes only where a terminal draws them, not in a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `QUARRY_LOG`, else warnings and the server's access log. Qdrant's
/// "Feature flags not initialized!" warning is noise at every level: the
/// embedded shard has no way to set them, and the defaults are what it
/// means to use.
fn log_filter(spec: Option<&str>) -> tracing_subscriber::EnvFilter {
    let spec = spec.unwrap_or("warn,quarry::access=info,qdrant_edge=error");
    let filter = tracing_subscriber::EnvFilter::try_new(spec).unwrap_or_else(|e| {
        eprintln!("warning: QUARRY_LOG={spec:?} is not a log filter ({e}); using warn");
        tracing_subscriber::EnvFilter::new("warn")
    });
    match "qdrant_edge::common::flags=off".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    if let Some(store) = &cli.store {
        let parsed = quarry_core::config::StoreConfig::parse(store).map_err(anyhow::Error::msg)?;
        // Keep the configured key and limits when only the URL changes.
        config.store = match (parsed, &config.store) {
            (
                quarry_core::config::StoreConfig::Server(mut new),
                quarry_core::config::StoreConfig::Server(old),
            ) => {
                new.api_key = old.api_key.clone();
                new.timeout_secs = old.timeout_secs;
                new.retry_secs = old.retry_secs;
                new.shards = old.shards;
                new.replicas = old.replicas;
                quarry_core::config::StoreConfig::Server(new)
            }
            (p, _) => p,
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let data_dir = config.data_dir.clone();
    let result = match cli.command {
        Command::Model(c) => cmd::model::run(&config, c),
        Command::Embed(args) => runtime.block_on(cmd::embed::run(&config, args)),
        Command::Rerank(args) => runtime.block_on(cmd::rerank::run(&config, args)),
        Command::Bench(c) => runtime.block_on(cmd::bench::run(&config, c)),
        Command::Sync(args) => runtime.block_on(cmd::index::sync(&config, args)),
        Command::Search(args) => runtime.block_on(cmd::index::search(&config, args)),
        Command::Context(args) => runtime.block_on(cmd::index::context(&config, args)),
        Command::Serve(args) => runtime.block_on(cmd::serve::run(&config, args)),
        Command::Mcp(args) => runtime.block_on(cmd::mcp::run(&config, args)),
        Command::Export(args) => cmd::index::export(&config, args),
        Command::Collections(args) => cmd::index::collections(&config, args),
        Command::Eval(args) => runtime.block_on(cmd::eval::run(&config, *args)),
        Command::Migrate(args) => cmd::migrate::run(&config, args),
        Command::Reindex(args) => runtime.block_on(cmd::reindex::run(&config, args)),
    };
    result.map_err(|e| cmd::remote::explain_locked(e, &data_dir))
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn the_log_filter_silences_qdrant_flags_and_shows_the_access_log() {
        for spec in [
            None,
            Some("info"),
            Some("debug,quarry=trace"),
            Some("not a filter["),
        ] {
            let f = log_filter(spec).to_string();
            assert!(
                f.contains("qdrant_edge::common::flags=off"),
                "{spec:?}: {f}"
            );
        }
        assert!(log_filter(None).to_string().contains("quarry::access=info"));
    }
}
