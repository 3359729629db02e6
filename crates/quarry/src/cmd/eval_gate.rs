//! `quarry eval compare A B` and the baseline gate of `quarry eval --baseline`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use quarry_eval::compare;
use quarry_eval::report::{self, Summary};
use serde_json::json;

use super::eval::EXIT_REGRESSION;

pub fn compare_runs(a: &Path, b: &Path, alpha: f64, json: bool) -> anyhow::Result<ExitCode> {
    let sa = report::load_summary(a)?;
    let sb = report::load_summary(b)?;
    let deltas = compare::compare(&sa, &sb);
    if deltas.is_empty() {
        bail!("the two runs have no mode in common");
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", json!({ "alpha": alpha, "deltas": deltas }))?;
    } else {
        writeln!(out, "A = {}\nB = {}\n", a.display(), b.display())?;
        write!(out, "{}", compare::table(&deltas, alpha))?;
        writeln!(
            out,
            "\np: two-sided paired randomisation test, {} permutations, seed {:#x}",
            quarry_eval::stats::PERMUTATIONS,
            quarry_eval::stats::SEED
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn gate(
    path: &Path,
    current: &Summary,
    metrics: &[String],
    max_drop: f64,
    alpha: f64,
) -> anyhow::Result<ExitCode> {
    let baseline = report::load_summary(path)
        .with_context(|| format!("reading the baseline {}", path.display()))?;
    for key in ["chunking", "model"] {
        let (b, c) = (&baseline.config[key], &current.config[key]);
        if b != c && !b.is_null() {
            eprintln!("note: the baseline's {key} differs: baseline {b}, now {c}");
        }
    }
    let deltas = compare::compare(&baseline, current);
    let missing: Vec<&String> = baseline
        .modes
        .keys()
        .filter(|m| !current.modes.contains_key(*m))
        .collect();
    if !missing.is_empty() {
        eprintln!("note: the baseline has modes this run skipped: {missing:?}");
    }
    let failed = compare::gate(&deltas, metrics, max_drop, alpha);
    println!(
        "\ngate against {} (max drop {}, alpha {}):",
        path.display(),
        max_drop,
        alpha
    );
    print!("{}", compare::table(&deltas, alpha));
    if failed.is_empty() {
        println!("gate: passed");
        return Ok(ExitCode::SUCCESS);
    }
    for d in &failed {
        println!(
            "gate: FAILED {} {} dropped {:.4} (from {:.4} to {:.4}, p = {:.4})",
            d.mode,
            d.metric,
            -d.delta,
            d.a,
            d.b,
            d.p_value.unwrap_or(f64::NAN)
        );
    }
    Ok(ExitCode::from(EXIT_REGRESSION))
}
