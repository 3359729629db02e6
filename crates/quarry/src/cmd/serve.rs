use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use quarry_core::Config;
use quarry_server::{AppState, Keys, ServerSettings};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: server.addr, 127.0.0.1:7700).
    #[arg(long)]
    addr: Option<String>,
}

pub async fn run(config: &Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let service = Arc::new(super::index::open_service(config)?);
    // Sources with `every` or `watch` are kept fresh from here on.
    let schedule = service.start_schedule()?;
    let s = &config.server;
    let keys = Keys::from_config(s).map_err(anyhow::Error::msg)?;
    let state = Arc::new(AppState::new(
        Arc::clone(&service),
        keys.clone(),
        ServerSettings::from_config(s, &config.retrieval),
    ));
    let addr = args.addr.as_deref().unwrap_or(&s.addr);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    // Tells a CLI command that finds the index locked where to go instead.
    let _announced = super::remote::announce(&config.data_dir, &url)?;
    eprintln!(
        "quarry serving {} on {url} ({}; {} sources on a schedule)",
        config.data_dir.display(),
        if keys.enabled() {
            "API keys required"
        } else {
            "no API keys configured: open to anyone who can reach it"
        },
        schedule.len()
    );
    quarry_server::serve(listener, quarry_server::app(state)).await?;
    drop(schedule);
    Ok(ExitCode::SUCCESS)
}
