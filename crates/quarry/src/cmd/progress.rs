//! How `quarry sync` shows a sync: a progress bar on a terminal (a line
//! every ten seconds otherwise) that names its stage and the document being
//! read, and a report that names what changed.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quarry_engine::{SyncProgress, SyncReport, SyncStage};

/// Names printed per kind of change; the rest are counted.
const SHOWN: usize = 10;

/// A progress bar on a terminal; otherwise a plain line every few seconds.
pub(super) fn progress(
    source: &str,
) -> (quarry_engine::ProgressFn, Option<indicatif::ProgressBar>) {
    use std::io::IsTerminal;
    let eta = Arc::new(Mutex::new(Eta::default()));
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} {spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(source.to_string());
        bar.set_message("listing the source");
        bar.enable_steady_tick(Duration::from_millis(200));
        let b = bar.clone();
        let f: quarry_engine::ProgressFn = Arc::new(move |p: &SyncProgress| {
            let left = lock(&eta).left(p);
            b.set_message(line(p, left));
        });
        (f, Some(bar))
    } else {
        let name = source.to_string();
        let last = Mutex::new(Instant::now());
        let f: quarry_engine::ProgressFn = Arc::new(move |p: &SyncProgress| {
            let left = lock(&eta).left(p);
            let mut last = lock(&last);
            if last.elapsed().as_secs() >= 10 {
                *last = Instant::now();
                eprintln!("sync {name}: {}", line(p, left));
            }
        });
        (f, None)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One line of progress: the stage, then counts once they are known.
fn line(p: &SyncProgress, left: Option<Duration>) -> String {
    match p.stage {
        SyncStage::Listing => "listing the source".into(),
        SyncStage::Planning => format!("{} documents listed; comparing with the index", p.listed),
        SyncStage::Deleting => "deleting documents gone from the source".into(),
        SyncStage::Optimizing => "building the search index (HNSW graph)".into(),
        SyncStage::Indexing => {
            let mut s = format!(
                "{}/{} changed documents indexed ({} listed, {} unchanged), {} chunks embedded",
                p.done, p.total, p.listed, p.unchanged, p.chunks_embedded
            );
            if let Some(left) = left {
                s.push_str(&format!(", about {} left", human(left)));
            }
            if let Some(current) = &p.current {
                s.push_str(&format!("; reading {}", shorten(current, 60)));
            }
            s
        }
    }
}

/// A remaining-time estimate from the average rate since indexing began.
/// It says nothing until a document is done and a few seconds have passed,
/// when a rate means something; a raw instantaneous rate swings between
/// days and centuries on a slow first document.
#[derive(Default)]
struct Eta {
    started: Option<Instant>,
}

impl Eta {
    fn left(&mut self, p: &SyncProgress) -> Option<Duration> {
        if p.stage != SyncStage::Indexing {
            return None;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        estimate(started.elapsed(), p.done, p.total)
    }
}

/// `elapsed` for `done` of `total`: the time the rest would take at the
/// same average rate.
fn estimate(elapsed: Duration, done: usize, total: usize) -> Option<Duration> {
    if done == 0 || done >= total || elapsed < Duration::from_secs(3) {
        return None;
    }
    let per_doc = elapsed.as_secs_f64() / done as f64;
    Some(Duration::from_secs_f64(per_doc * (total - done) as f64))
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The tail of a long name, which is the part that tells files apart.
fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}

pub(super) fn print_report(r: &SyncReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
        return Ok(());
    }
    write!(out, "{}", report_text(r))?;
    Ok(())
}

fn report_text(r: &SyncReport) -> String {
    let mut s = format!(
        "synced source {} into collection {} in {:.2}s\n",
        r.source, r.collection, r.seconds.total
    );
    s.push_str(&format!(
        "  added {}, updated {}, renamed {}, unchanged {}, deleted {}, skipped {}, failed {}\n",
        r.added, r.updated, r.renamed, r.unchanged, r.deleted, r.skipped, r.failed
    ));
    let c = &r.changed;
    for (kind, names, count) in [
        ("added", &c.added, r.added),
        ("updated", &c.updated, r.updated),
        ("renamed", &c.renamed, r.renamed),
        ("deleted", &c.deleted, r.deleted),
    ] {
        if count > 0 {
            s.push_str(&format!("  {kind}: {}\n", listed(names, count)));
        }
    }
    if !r.skipped_by_reason.is_empty() {
        let reasons: Vec<String> = r
            .skipped_by_reason
            .iter()
            .map(|g| format!("{} ({})", g.reason, g.count))
            .collect();
        s.push_str(&format!("  skipped: {}\n", reasons.join(", ")));
    }
    if !r.duplicates.is_empty() {
        let groups: Vec<String> = r
            .duplicates
            .iter()
            .take(3)
            .map(|g| g.documents.join(" = "))
            .collect();
        let more = r.duplicates.len().saturating_sub(3);
        s.push_str(&format!(
            "  identical documents ({} groups; searches fold them into one hit): {}{}\n",
            r.duplicates.len(),
            groups.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ));
    }
    s.push_str(&format!(
        "  chunks embedded {} ({} tokens), reused {}; {} documents, {} points\n",
        r.chunks_embedded, r.tokens_embedded, r.chunks_reused, r.documents, r.points
    ));
    let t = &r.seconds;
    s.push_str(&format!(
        "  seconds: total {:.2}; list {:.2}, plan {:.2}, then at once: parse+chunk {:.2}, embed {:.2}, write {:.2}; then index {:.2}\n",
        t.total, t.list, t.plan, t.parse_chunk, t.embed, t.write, t.index
    ));
    // Failures are few and each needs its own fix: every one is named.
    for e in r.errors.iter().filter(|e| e.kind != "skipped") {
        s.push_str(&format!("  {:<8} {}: {}\n", e.kind, e.uri, e.reason));
    }
    s
}

/// The first [`SHOWN`] names, then how many more.
fn listed(names: &[String], count: usize) -> String {
    let shown = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let rest = count.saturating_sub(names.len().min(SHOWN));
    if rest > 0 {
        format!("{shown} and {rest} more")
    } else {
        shown
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_waits_for_a_rate_and_stays_sane() {
        assert_eq!(estimate(Duration::from_secs(10), 0, 592), None);
        assert_eq!(estimate(Duration::from_secs(1), 5, 592), None);
        assert_eq!(estimate(Duration::from_secs(60), 63, 63), None);
        let left = estimate(Duration::from_secs(30), 100, 592).unwrap();
        assert_eq!(left.as_secs(), 147);
        assert_eq!(human(left), "2m 27s");
        assert_eq!(human(Duration::from_secs(7 * 3600 + 5 * 60)), "7h 05m");
    }

    #[test]
    fn the_line_names_the_stage_and_the_document() {
        let mut p = SyncProgress::default();
        assert_eq!(line(&p, None), "listing the source");
        p.stage = SyncStage::Indexing;
        (p.listed, p.unchanged, p.total, p.done) = (592, 529, 63, 10);
        p.current = Some("book/print.html".into());
        assert_eq!(
            line(&p, Some(Duration::from_secs(90))),
            "10/63 changed documents indexed (592 listed, 529 unchanged), 0 chunks embedded, about 1m 30s left; reading book/print.html"
        );
        assert_eq!(shorten("abcdefghij", 5), "…ghij");
    }

    #[test]
    fn the_report_names_changes_and_groups_skips() {
        let mut r = SyncReport {
            source: "book".into(),
            collection: "book".into(),
            added: 12,
            deleted: 1,
            skipped: 63,
            ..Default::default()
        };
        r.changed.added = (0..12).map(|i| format!("ch{i}.html")).collect();
        r.changed.deleted = vec!["old.html".into()];
        r.skipped_by_reason = vec![quarry_engine::ReasonCount {
            reason: "binary file type .png".into(),
            count: 63,
        }];
        r.errors = (0..63)
            .map(|i| quarry_engine::ReportError {
                uri: format!("img/{i}.png"),
                reason: "binary file type .png".into(),
                kind: "skipped".into(),
            })
            .collect();
        let text = report_text(&r);
        assert!(
            text.contains("  added: ch0.html, ch1.html, ch2.html, ch3.html, ch4.html, ch5.html, ch6.html, ch7.html, ch8.html, ch9.html and 2 more\n"),
            "{text}"
        );
        assert!(text.contains("  deleted: old.html\n"), "{text}");
        assert!(
            text.contains("  skipped: binary file type .png (63)\n"),
            "{text}"
        );
        assert!(!text.contains("img/"), "{text}");
        assert!(!text.contains("updated:"), "{text}");
    }
}
