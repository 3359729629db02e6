//! `type = "web"` end to end against a real HTTP server on loopback: links,
//! a sitemap, `robots.txt`, ETags and 304s, a redirect, a 404 and 5xx on
//! demand, synced by the real binary.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use support::site::{Page, Site, html, page, start};
use support::*;

struct Setup {
    site: Arc<Site>,
    url: String,
    config: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let site = Arc::new(Site::default());
    let url = start(Arc::clone(&site));
    site.set("/robots.txt", page("User-agent: *\nDisallow: /private\n"));
    site.set(
        "/index.html",
        page(&html(
            "Home",
            "The handbook home page about the ibis welcome.",
            &[
                "/a.html",
                "b.html",
                "/private/secret.html",
                "/old.html",
                "http://elsewhere.invalid/x",
            ],
        )),
    );
    site.set(
        "/a.html",
        page(&html("A", "The jackal routing guide.", &["/index.html"])),
    );
    site.set(
        "/b.html",
        page(&html("B", "The kestrel billing notes.", &[])),
    );
    site.set(
        "/c.html",
        page(&html("C", "The lemur archive, only in the sitemap.", &[])),
    );
    site.set(
        "/private/secret.html",
        page(&html(
            "Secret",
            "The mongoose secret must not be crawled.",
            &[],
        )),
    );
    site.set(
        "/old.html",
        Page {
            redirect: Some(format!("{url}/a.html")),
            ..page("")
        },
    );
    site.set(
        "/sitemap.xml",
        page(&format!(
            "<?xml version=\"1.0\"?><urlset><url><loc>{url}/c.html</loc></url></urlset>"
        )),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quarry.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nname = \"site\"\ntype = \"web\"\nurls = [\"{url}/index.html\", \"{url}/sitemap.xml\"]\nmax_depth = 2\nrequests_per_second = 1000\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    Setup {
        site,
        url,
        config,
        data,
        _dir: dir,
    }
}

fn sync(s: &Setup) -> std::process::Output {
    quarry_home(&source_sync_args("site", &s.config, &s.data))
}

fn s_(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn export_of(config: &Path, data: &Path) -> Vec<serde_json::Value> {
    export_points("site", config, data)
}

fn export(s: &Setup) -> Vec<serde_json::Value> {
    export_of(&s.config, &s.data)
}

fn doc_ids(s: &Setup) -> Vec<String> {
    let mut ids: Vec<String> = export(s)
        .iter()
        .map(|p| p["payload"]["doc_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn a_web_source_crawls_politely_skips_unchanged_pages_and_syncs_changes_exactly() {
    let s = setup();
    let u = &s.url;
    let first = success_json(&sync(&s));
    assert_eq!(
        (first["added"].as_u64(), first["failed"].as_u64()),
        (Some(4), Some(0)),
        "{first}"
    );
    // Links within the host, the sitemap's page, a redirect indexed once
    // under its target; not the page robots.txt forbids, not other hosts.
    assert_eq!(
        doc_ids(&s),
        [
            format!("{u}/a.html"),
            format!("{u}/b.html"),
            format!("{u}/c.html"),
            format!("{u}/index.html")
        ]
    );
    assert!(
        !s.site
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|(p, _)| p.starts_with("/private")),
        "robots.txt was not honoured"
    );

    // Nothing changed: every page answers 304, nothing is embedded.
    let n = s.site.log.lock().unwrap().len();
    let again = success_json(&sync(&s));
    assert_eq!(
        (
            again["unchanged"].as_u64(),
            again["chunks_embedded"].as_u64()
        ),
        (Some(4), Some(0)),
        "{again}"
    );
    let pages: Vec<(String, u16)> = s
        .site
        .log_since(n)
        .into_iter()
        .filter(|(p, _)| p.ends_with(".html") && p != "/old.html")
        .collect();
    assert!(
        !pages.is_empty() && pages.iter().all(|(_, st)| *st == 304),
        "{pages:?}"
    );

    // One edit, one delete (gone from the sitemap, then 404), one add.
    s.site.set(
        "/b.html",
        page(&html(
            "B",
            "The kestrel billing notes, now with refunds.",
            &[],
        )),
    );
    s.site.pages.lock().unwrap().remove("/c.html");
    s.site.set(
        "/sitemap.xml",
        page("<?xml version=\"1.0\"?><urlset></urlset>"),
    );
    s.site.set(
        "/index.html",
        page(&html(
            "Home",
            "The handbook home page about the ibis welcome.",
            &["/a.html", "b.html", "/d.html"],
        )),
    );
    s.site.set(
        "/d.html",
        page(&html("D", "The narwhal onboarding steps.", &[])),
    );
    let r = success_json(&sync(&s));
    assert_eq!(counts(&r), (1, 2, 1, 1), "{r}");
    let v = success_json(&bm25_search("narwhal onboarding", "site", &[], &s.data));
    assert_eq!(v["hits"][0]["uri"], format!("{u}/d.html"), "{v}");
    let v = success_json(&bm25_search("refunds", "site", &[], &s.data));
    assert_eq!(v["hits"][0]["doc_id"], format!("{u}/b.html"), "{v}");
    assert!(!doc_ids(&s).contains(&format!("{u}/c.html")));
}

#[test]
fn a_site_that_fails_mid_crawl_fails_the_sync_and_deletes_nothing() {
    let s = setup();
    success_json(&sync(&s));
    let before = export(&s);
    s.site.down.store(true, Ordering::SeqCst);
    let out = sync(&s);
    assert!(!out.status.success(), "a 503 must fail the sync");
    assert!(stderr(&out).contains("HTTP 503"), "{}", stderr(&out));
    assert_eq!(
        export(&s),
        before,
        "a failed crawl must not change the index"
    );
    // The site recovers: nothing was lost, nothing needs doing.
    s.site.down.store(false, Ordering::SeqCst);
    let ok = success_json(&sync(&s));
    assert_eq!(counts(&ok), (0, 0, 0, 4), "{ok}");
}

/// SIGKILL at random moments of a crawl that edits, deletes and adds pages,
/// then a resume: the index equals an uninterrupted sync's.
#[test]
fn kill_9_during_a_web_sync_then_resume_equals_an_uninterrupted_sync() {
    let s = setup();
    let text = |i: usize, v: usize| {
        format!(
            "Page {i} version {v} explains the okapi {i} procedure. {}",
            "Further detail about the procedure follows here. ".repeat(15)
        )
    };
    let index = |n: usize| {
        let links: Vec<String> = (0..n).map(|i| format!("/p{i}.html")).collect();
        let refs: Vec<&str> = links.iter().map(String::as_str).collect();
        page(&html("Home", "The okapi handbook home.", &refs))
    };
    for i in 0..80 {
        s.site.set(
            &format!("/p{i}.html"),
            page(&html(&format!("P{i}"), &text(i, 1), &[])),
        );
    }
    s.site.set("/index.html", index(80));
    success_json(&sync(&s));
    let base = s.data.with_extension("base");
    copy_dir(&s.data, &base);
    for i in 0..110 {
        let path = format!("/p{i}.html");
        if i < 80 && i % 5 == 0 {
            s.site.pages.lock().unwrap().remove(&path);
        } else if i >= 80 || i % 3 == 0 {
            s.site
                .set(&path, page(&html(&format!("P{i}"), &text(i, 2), &[])));
        }
    }
    s.site.set("/index.html", index(110));
    let run = |data: &Path| {
        quarry_command(&[
            "sync",
            "--source",
            "site",
            "--config",
            s_(&s.config),
            "--data-dir",
            s_(data),
        ])
    };
    let export_of = |data: &Path| export_of(&s.config, data);
    let clean = s.data.with_extension("clean");
    copy_dir(&base, &clean);
    let started = std::time::Instant::now();
    assert!(run(&clean).status().unwrap().success());
    let full = started.elapsed();
    let expected = export_of(&clean);
    let killed = kill_and_resume((6, 20), &base, full, run, export_of, &expected);
    assert!(killed >= 3, "only {killed} kills landed mid-sync");
}

#[test]
fn an_expired_credential_or_a_timeout_fails_the_crawl_and_deletes_nothing() {
    let s = setup();
    let config = std::fs::read_to_string(&s.config).unwrap() + "timeout_secs = 1\n";
    std::fs::write(&s.config, config).unwrap();
    success_json(&sync(&s));
    let before = export(&s);
    // The site now refuses the crawler, as when a token expires.
    *s.site.fail_with.lock().unwrap() = Some(401);
    let out = sync(&s);
    assert!(!out.status.success(), "a 401 must fail the sync");
    assert!(stderr(&out).contains("HTTP 401"), "{}", stderr(&out));
    assert_eq!(export(&s), before);
    // The site answers, but slower than the timeout.
    *s.site.fail_with.lock().unwrap() = None;
    *s.site.slow.lock().unwrap() = std::time::Duration::from_secs(3);
    let out = sync(&s);
    assert!(!out.status.success(), "a timeout must fail the sync");
    assert!(
        stderr(&out).to_lowercase().contains("timed out"),
        "{}",
        stderr(&out)
    );
    assert_eq!(export(&s), before);
}

/// A site whose menu and cookie banner are plain `div`s, on every page.
fn div_page(title: &str, text: &str) -> Page {
    page(&format!(
        "<html><head><title>{title}</title></head><body>\
         <div class=\"menu\"><a href=\"/p0.html\">Home</a> <a href=\"/p1.html\">Pricing</a> \
         <a href=\"/p2.html\">Quokka Blog</a></div>\
         <div class=\"cookies\">We use cookies to improve the quokka experience. Accept all</div>\
         <div class=\"content\"><h1>{title}</h1><p>{text}</p></div></body></html>"
    ))
}

#[test]
fn text_repeated_on_most_pages_of_a_site_is_kept_out_of_every_chunk() {
    let s = setup();
    let u = s.url.clone();
    for (i, text) in [
        "The raven deployment runbook.",
        "The salamander pricing tiers.",
        "The tapir release blog post.",
        "The urchin security notes.",
    ]
    .iter()
    .enumerate()
    {
        s.site
            .set(&format!("/p{i}.html"), div_page(&format!("Page {i}"), text));
    }
    let config = format!(
        "[[sources]]\nname = \"site\"\ntype = \"web\"\nurls = [\"{u}/p0.html\", \"{u}/p3.html\"]\n"
    );
    std::fs::write(&s.config, config).unwrap();
    let first = success_json(&sync(&s));
    assert_eq!(counts(&first), (4, 0, 0, 0), "{first}");
    let texts: Vec<String> = export(&s)
        .iter()
        .map(|p| {
            p["payload"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(texts.len(), 4, "one chunk a page: {texts:?}");
    for t in &texts {
        assert!(
            !t.contains("cookies") && !t.contains("Pricing"),
            "boilerplate kept: {t:?}"
        );
    }
    assert!(
        texts.iter().any(|t| t.contains("salamander pricing tiers")),
        "{texts:?}"
    );
    let v = success_json(&bm25_search(
        "cookies quokka experience",
        "site",
        &[],
        &s.data,
    ));
    assert_eq!(v["hits"].as_array().map(Vec::len), Some(0), "{v}");
    // Unchanged pages stay unchanged: the boilerplate is learnt from 304s too.
    let again = success_json(&sync(&s));
    assert_eq!(counts(&again), (0, 0, 0, 4), "{again}");
    assert_eq!(again["chunks_embedded"], 0, "{again}");
}

#[test]
fn requests_to_one_host_are_spaced_by_requests_per_second() {
    let s = setup();
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("requests_per_second = 1000", "requests_per_second = 5");
    std::fs::write(&s.config, text).unwrap();
    success_json(&sync(&s));
    let arrived = s.site.arrived.lock().unwrap().clone();
    let log = s.site.log.lock().unwrap().clone();
    assert!(arrived.len() >= 6, "{} requests", arrived.len());
    // A redirect's second hop is part of one fetch.
    let gaps: Vec<u128> = arrived
        .windows(2)
        .zip(&log)
        .filter(|(_, (_, status))| *status != 301)
        .map(|(w, _)| w[1].duration_since(w[0]).as_millis())
        .collect();
    // 5 a second: 200 ms apart, less a little for the clock.
    assert!(gaps.iter().all(|g| *g >= 190), "{gaps:?}");
}
