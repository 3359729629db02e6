use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use quarry_core::Config;
use quarry_server::{AppState, Keys, ServerSettings};

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Also keep sources with `every` or `watch` fresh while the agent
    /// runs, as `quarry serve` does.
    #[arg(long)]
    schedule: bool,
}

/// MCP over stdin and stdout, for desktop agents: the agent starts this
/// process and talks JSON-RPC on its pipes; logs go to stderr.
pub async fn run(config: &Config, args: McpArgs) -> anyhow::Result<ExitCode> {
    let service = Arc::new(super::index::open_service(config)?);
    let schedule = match args.schedule {
        true => Some(service.start_schedule()?),
        false => None,
    };
    // The local user started this process: no keys, as with the CLI.
    let state = Arc::new(AppState::new(
        Arc::clone(&service),
        Keys::default(),
        ServerSettings::from_config(&config.server, &config.retrieval),
    ));
    quarry_server::mcp::serve_stdio(state).await?;
    drop(schedule);
    Ok(ExitCode::SUCCESS)
}
