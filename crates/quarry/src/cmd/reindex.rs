//! `quarry reindex`: re-embed a collection with another model, then switch.

use std::process::ExitCode;

use clap::Args;
use quarry_core::Config;

#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// The collection (an alias after its first reindex).
    #[arg(long, short = 'c')]
    collection: String,
    /// The new model: a Hugging Face id or a local model directory.
    #[arg(long)]
    model: String,
    /// Keep the previous collection after the switch (to switch back with
    /// another reindex, or to compare).
    #[arg(long)]
    keep_old: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(config: &Config, args: ReindexArgs) -> anyhow::Result<ExitCode> {
    let store = super::index::open_store(config)?;
    let embedder = super::start_embedder(config, Some(&args.model))?;
    let name = args.collection.clone();
    let progress = move |done: usize, total: usize| {
        eprint!("\rreindex {name}: {done}/{total} chunks");
    };
    let report = quarry_engine::reindex::reindex(
        &store,
        &embedder,
        &args.collection,
        config.index.for_collection(&args.collection),
        args.keep_old,
        &progress,
    )
    .await?;
    eprintln!();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {} chunks re-embedded with {} into {}; the alias now points there{}",
            report.collection,
            report.points,
            args.model,
            report.new,
            if report.dropped_old {
                format!(" and {} was dropped", report.old)
            } else {
                format!("; {} was kept", report.old)
            }
        );
        if report.truncated > 0 {
            eprintln!(
                "warning: {} chunks were longer than the new model's window and were truncated; a sync with its tokenizer re-chunks them",
                report.truncated
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
