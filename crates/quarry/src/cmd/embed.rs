use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use quarry_core::Config;
use quarry_embed::{Embedder, InputKind, Priority};

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Texts to embed (or use --input).
    texts: Vec<String>,
    /// Model id or directory (default: `model.id` from the config).
    #[arg(long)]
    model: Option<String>,
    /// Read texts from FILE, or `-` for stdin: one text per line, or JSON
    /// Lines with a `text` field.
    #[arg(long, value_name = "FILE|-")]
    input: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Which prompt of the model to prepend: none (as sentence-transformers'
    /// plain `encode`), the query prompt, or the passage prompt.
    #[arg(long, value_enum, default_value_t = Kind::Raw)]
    kind: Kind,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object per line: {"text", "tokens", "truncated", "embedding"}.
    Jsonl,
    /// A short human-readable line per text.
    Text,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Raw,
    Query,
    Passage,
}

/// Inputs are embedded and printed in groups this size, so a large input file
/// streams through with flat memory.
const GROUP: usize = 1024;

pub async fn run(config: &Config, args: EmbedArgs) -> anyhow::Result<ExitCode> {
    let texts: Box<dyn Iterator<Item = anyhow::Result<String>>> =
        match (&args.input, args.texts.is_empty()) {
            (Some(_), false) => bail!("give texts as arguments or with --input, not both"),
            (None, true) => bail!(
                "nothing to embed: give TEXT arguments, or --input FILE (or --input - for stdin)"
            ),
            (None, false) => Box::new(args.texts.clone().into_iter().map(Ok)),
            (Some(path), true) => Box::new(read_inputs(path)?),
        };
    let embedder = super::start_embedder(config, args.model.as_deref())?;
    let kind = match args.kind {
        Kind::Raw => InputKind::Raw,
        Kind::Query => InputKind::Query,
        Kind::Passage => InputKind::Passage,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut group = Vec::with_capacity(GROUP);
    for text in texts {
        group.push(text?);
        if group.len() == GROUP {
            emit(&embedder, &group, kind, args.format, &mut out).await?;
            group.clear();
        }
    }
    emit(&embedder, &group, kind, args.format, &mut out).await?;
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("writing to stdout")?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn emit(
    embedder: &Embedder,
    texts: &[String],
    kind: InputKind,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if texts.is_empty() {
        return Ok(());
    }
    let embeddings = embedder.embed(texts, kind, Priority::Bulk).await?;
    for (text, e) in texts.iter().zip(embeddings) {
        let line = match format {
            Format::Jsonl => serde_json::to_string(&serde_json::json!({
                "text": text,
                "tokens": e.tokens,
                "truncated": e.truncated,
                "embedding": e.embedding,
            }))?,
            Format::Text => {
                let head: Vec<String> = e
                    .embedding
                    .iter()
                    .take(4)
                    .map(|v| format!("{v:.4}"))
                    .collect();
                let preview: String = text.chars().take(60).collect();
                format!(
                    "tokens={}{} dim={} [{}, …] {preview:?}",
                    e.tokens,
                    if e.truncated { " (truncated)" } else { "" },
                    e.embedding.len(),
                    head.join(", ")
                )
            }
        };
        if let Err(err) = writeln!(out, "{line}") {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(err).context("writing to stdout");
        }
    }
    Ok(())
}

/// Reads one text per line, or JSON Lines when the first non-empty line is a
/// JSON object. Lines are checked one by one so an error names its line.
pub(crate) fn read_inputs(
    path: &PathBuf,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<String>>> {
    let (name, reader): (String, Box<dyn BufRead>) = if path.as_os_str() == "-" {
        (
            "stdin".into(),
            Box::new(std::io::BufReader::new(std::io::stdin())),
        )
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open input {}", path.display()))?;
        (
            path.display().to_string(),
            Box::new(std::io::BufReader::new(file)),
        )
    };
    let mut jsonl: Option<bool> = None;
    let mut lines = reader.split(b'\n').enumerate();
    Ok(std::iter::from_fn(move || {
        loop {
            let (i, line) = lines.next()?;
            let n = i + 1;
            let mut bytes = match line {
                Ok(b) => b,
                Err(e) => return Some(Err(anyhow::anyhow!("{name}: cannot read line {n}: {e}"))),
            };
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            let line = match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => {
                    return Some(Err(anyhow::anyhow!(
                        "{name} line {n}: invalid UTF-8 at byte {}; convert the input to UTF-8 (e.g. with iconv)",
                        e.utf8_error().valid_up_to()
                    )));
                }
            };
            let is_json = *jsonl.get_or_insert_with(|| line.trim_start().starts_with('{'));
            if !is_json {
                return Some(Ok(line));
            }
            if line.trim().is_empty() {
                continue; // blank lines between JSON records carry no text
            }
            let text = serde_json::from_str::<serde_json::Value>(&line)
                .map_err(|e| anyhow::anyhow!("{name} line {n}: invalid JSON ({e})"))
                .and_then(|v| match v.get("text") {
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(anyhow::anyhow!(
                        "{name} line {n}: field \"text\" must be a string"
                    )),
                    None => Err(anyhow::anyhow!(
                        "{name} line {n}: JSON object has no \"text\" field"
                    )),
                });
            return Some(text);
        }
    }))
}
