//! `quarry migrate`: copy collections from one store to another.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use quarry_core::Config;
use quarry_core::config::StoreConfig;
use quarry_store::VectorStore;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Source: `edge:DIR` (a data directory) or a Qdrant URL.
    #[arg(long, value_name = "edge:DIR|URL")]
    from: String,
    /// Target: a Qdrant URL such as http://localhost:6334, or `edge:DIR`.
    #[arg(long, value_name = "URL|edge:DIR")]
    to: String,
    /// Collections to copy (repeatable); default: all of them.
    #[arg(long = "collection", short = 'c', value_name = "NAME")]
    collections: Vec<String>,
    /// API key for a server on either side (also QUARRY_STORE_API_KEY).
    #[arg(long, env = "QUARRY_STORE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Points per page; a checkpoint is written after each.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn open(spec: &str, api_key: Option<&str>) -> anyhow::Result<(Arc<dyn VectorStore>, String)> {
    if let Some(dir) = spec.strip_prefix("edge:") {
        let dir = PathBuf::from(dir);
        if !dir.join("collections").is_dir() {
            bail!(
                "{} has no collections/ folder; `edge:DIR` names a Quarry data directory",
                dir.display()
            );
        }
        let store = quarry_store::open(
            &StoreConfig::Edge,
            &dir,
            quarry_store::disk::DEFAULT_MIN_FREE_BYTES,
        )
        .with_context(|| format!("opening {}", dir.display()))?;
        return Ok((store, dir.display().to_string()));
    }
    let mut config = match StoreConfig::parse(spec).map_err(anyhow::Error::msg)? {
        StoreConfig::Server(c) => c,
        StoreConfig::Edge => bail!("write `edge:DIR` to name an embedded store's data directory"),
    };
    config.api_key = api_key.map(str::to_string);
    let store = quarry_store::open(&StoreConfig::Server(config), std::path::Path::new("."), 0)?;
    Ok((store, spec.to_string()))
}

pub fn run(config: &Config, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let (from, from_name) = open(&args.from, args.api_key.as_deref())?;
    let (to, to_name) = open(&args.to, args.api_key.as_deref())?;
    let names = if args.collections.is_empty() {
        from.list_collections()
            .with_context(|| format!("listing collections in {from_name}"))?
    } else {
        args.collections.clone()
    };
    if names.is_empty() {
        bail!("{from_name} has no collections to copy");
    }
    let checkpoints = config.data_dir.join("migrate");
    let mut reports = Vec::new();
    for name in &names {
        let checkpoint = quarry_engine::migrate::checkpoint_path(&checkpoints, name, &to_name);
        let progress = |done: usize, total: usize| {
            eprint!("\rmigrate {name}: {done}/{total} points");
        };
        let report = quarry_engine::migrate::copy_collection(
            from.as_ref(),
            to.as_ref(),
            name,
            args.batch,
            &checkpoint,
            &progress,
        )
        .with_context(|| format!("copying {name} from {from_name} to {to_name}"))?;
        eprintln!();
        if !args.json {
            println!(
                "{name}: {} points in the source, {} in the target ({} written{})",
                report.source_points,
                report.target_points,
                report.copied,
                if report.resumed { ", resumed" } else { "" }
            );
        }
        if report.target_points < report.source_points {
            bail!(
                "{name}: the target has {} points, fewer than the source's {}",
                report.target_points,
                report.source_points
            );
        }
        reports.push(report);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(ExitCode::SUCCESS)
}
