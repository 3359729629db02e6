//! Crawling politely: `robots.txt` (its rules and its `Crawl-delay`), a
//! cap on requests per second to each host, and sitemaps.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The longest `Crawl-delay` honoured; a site asking for more is crawled
/// this slowly rather than not at all.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// `robots.txt` rules for `*` (and for Quarry).
#[derive(Debug, Default)]
pub(super) struct Robots {
    rules: Vec<(bool, String)>,
    pub delay: Duration,
}

impl Robots {
    pub fn parse(text: &str) -> Self {
        let mut robots = Self::default();
        let mut applies = false;
        let mut in_agents = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            if key == "user-agent" {
                let ours = value == "*" || value.eq_ignore_ascii_case("quarry");
                applies = if in_agents { applies || ours } else { ours };
                in_agents = true;
                continue;
            }
            in_agents = false;
            if !applies {
                continue;
            }
            match key.as_str() {
                "disallow" if !value.is_empty() => robots.rules.push((false, value.into())),
                "allow" => robots.rules.push((true, value.into())),
                "crawl-delay" => {
                    if let Ok(secs) = value.parse::<f64>() {
                        // `max` maps NaN to 0 and `min` caps infinity:
                        // from_secs_f64 panics on either.
                        let capped = secs.max(0.0).min(MAX_DELAY.as_secs_f64());
                        robots.delay = Duration::from_secs_f64(capped);
                    }
                }
                _ => {}
            }
        }
        robots
    }

    /// The longest matching rule decides; no rule allows.
    pub fn allows(&self, path: &str) -> bool {
        self.rules
            .iter()
            .filter(|(_, prefix)| path.starts_with(prefix.as_str()))
            .max_by_key(|(allow, prefix)| (prefix.len(), *allow))
            .is_none_or(|(allow, _)| *allow)
    }
}

/// `<loc>` entries of a sitemap or a sitemap index.
pub(super) fn sitemap_locs(xml: &str) -> Vec<String> {
    xml.split("<loc>")
        .skip(1)
        .filter_map(|s| s.split("</loc>").next())
        .map(|s| s.trim().replace("&amp;", "&"))
        .collect()
}

pub(super) fn is_sitemap(url: &str) -> bool {
    url.split(['?', '#'])
        .next()
        .is_some_and(|u| u.ends_with(".xml"))
}

/// Spaces requests to each host: at least the host's `Crawl-delay`, and at
/// least `1 / requests_per_second` apart. The crawl is sequential, so this
/// also means one request at a time per host.
#[derive(Debug)]
pub(super) struct Pacer {
    min_gap: Duration,
    last: HashMap<String, Instant>,
}

impl Pacer {
    pub fn new(requests_per_second: f64) -> Self {
        let min_gap = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            Duration::from_secs_f64((1.0 / requests_per_second).min(MAX_DELAY.as_secs_f64()))
        } else {
            Duration::ZERO
        };
        Self {
            min_gap,
            last: HashMap::new(),
        }
    }

    /// Waits until a request to `authority` is allowed, and counts it.
    pub fn wait(&mut self, authority: &str, crawl_delay: Duration) {
        let gap = self.min_gap.max(crawl_delay);
        if let Some(last) = self.last.get(authority) {
            let ready = *last + gap;
            let now = Instant::now();
            if ready > now {
                std::thread::sleep(ready - now);
            }
        }
        self.last.insert(authority.to_string(), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robots_rules_and_sitemaps_read_as_a_crawler_should() {
        let r = Robots::parse(
            "User-agent: other\nDisallow: /\n\nUser-agent: *\nDisallow: /private\nAllow: /private/ok\nCrawl-delay: 0.2\n",
        );
        assert!(r.allows("/docs/a"));
        assert!(!r.allows("/private/x"));
        assert!(r.allows("/private/ok/y"));
        assert_eq!(r.delay, Duration::from_millis(200));
        assert!(Robots::parse("").allows("/anything"));
        for (delay, secs) in [("NaN", 0), ("inf", 10), ("-3", 0), ("1e300", 10)] {
            let r = Robots::parse(&format!("User-agent: *\nCrawl-delay: {delay}\n"));
            assert_eq!(r.delay, Duration::from_secs(secs), "{delay}");
        }
        assert_eq!(
            sitemap_locs("<urlset><url><loc> https://a/x?p=1&amp;q=2 </loc></url></urlset>"),
            ["https://a/x?p=1&q=2"]
        );
        assert!(is_sitemap("https://a/sitemap.xml") && !is_sitemap("https://a/page"));
    }

    #[test]
    fn the_pacer_spaces_requests_per_host_not_across_hosts() {
        let mut p = Pacer::new(20.0);
        let t = Instant::now();
        for _ in 0..3 {
            p.wait("a:80", Duration::ZERO);
        }
        // Two gaps of 50 ms on one host.
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        let t = Instant::now();
        p.wait("b:80", Duration::ZERO);
        assert!(
            t.elapsed() < Duration::from_millis(50),
            "a new host waits for nothing"
        );
        // A crawl delay longer than the rate's gap wins.
        let t = Instant::now();
        p.wait("b:80", Duration::from_millis(120));
        assert!(
            t.elapsed() >= Duration::from_millis(110),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(Pacer::new(0.0).min_gap, Duration::ZERO);
        assert_eq!(Pacer::new(f64::NAN).min_gap, Duration::ZERO);
    }
}
