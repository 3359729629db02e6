use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use quarry_core::Config;
use quarry_embed::{Embedder, Priority};

#[derive(Debug, Args)]
pub struct RerankArgs {
    /// The query every text is scored against.
    query: String,
    /// Texts to score (or use --input).
    texts: Vec<String>,
    /// A cross-encoder: Hub id or directory (default: `retrieval.rerank.model`).
    #[arg(long)]
    model: Option<String>,
    /// Read texts from FILE, or `-` for stdin: one text per line, or JSON
    /// Lines with a `text` field.
    #[arg(long, value_name = "FILE|-")]
    input: Option<PathBuf>,
    /// Print logits instead of scores through the model's activation.
    #[arg(long)]
    raw: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// `rank  score  index  text`, best first.
    Text,
    /// One JSON object per text, best first: {"index", "score", "tokens", "truncated", "text"}.
    Jsonl,
}

/// Starts the cross-encoder `model`, or the configured reranker.
pub fn start_reranker(config: &Config, model: Option<&str>) -> anyhow::Result<(String, Embedder)> {
    let id = match model.or(config
        .retrieval
        .rerank
        .as_ref()
        .and_then(|r| r.model.as_deref()))
    {
        Some(id) => id.to_string(),
        None => bail!(
            "no cross-encoder given: pass --model (a Hub id such as \
             cross-encoder/ms-marco-MiniLM-L-6-v2, or a directory) or set [retrieval] rerank = \
             {{ model = \"...\" }} in quarry.toml"
        ),
    };
    let reranker =
        quarry_engine::models::reranker_loader(config)(&id).map_err(anyhow::Error::msg)?;
    Ok((id, reranker))
}

pub async fn run(config: &Config, args: RerankArgs) -> anyhow::Result<ExitCode> {
    let texts: Vec<String> = match (&args.input, args.texts.is_empty()) {
        (Some(_), false) => bail!("give texts as arguments or with --input, not both"),
        (None, true) => {
            bail!("nothing to rerank: give TEXT arguments, or --input FILE (or - for stdin)")
        }
        (None, false) => args.texts.clone(),
        (Some(path), true) => super::embed::read_inputs(path)?.collect::<anyhow::Result<_>>()?,
    };
    let (_, reranker) = start_reranker(config, args.model.as_deref())?;
    let scored = reranker
        .rerank(&args.query, &texts, args.raw, Priority::Bulk)
        .await?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by(|&a, &b| scored[b].score.total_cmp(&scored[a].score));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (rank, &i) in order.iter().enumerate() {
        let s = &scored[i];
        let line = match args.format {
            Format::Jsonl => serde_json::to_string(&serde_json::json!({
                "index": i,
                "score": s.score,
                "tokens": s.tokens,
                "truncated": s.truncated,
                "text": texts[i],
            }))?,
            Format::Text => {
                let preview: String = texts[i].chars().take(70).collect();
                format!("{:>3}  {:.6}  {i:>3}  {preview}", rank + 1, s.score)
            }
        };
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e).context("writing to stdout");
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
