//! A web site on loopback for the web source's tests: pages with ETags
//! and 304s, redirects, 404s, and failures (5xx, a status, slowness) on
//! demand, with a log of every request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::sha256_hex;

#[derive(Clone)]
pub struct Page {
    pub body: String,
    pub etag: String,
    pub redirect: Option<String>,
    pub content_type: &'static str,
}

pub fn page(body: &str) -> Page {
    Page {
        body: body.to_string(),
        etag: format!("\"{}\"", sha256_hex(body.as_bytes())),
        redirect: None,
        content_type: "text/html; charset=utf-8",
    }
}

#[derive(Default)]
pub struct Site {
    pub pages: Mutex<HashMap<String, Page>>,
    /// (path, status) of every request, in order.
    pub log: Mutex<Vec<(String, u16)>>,
    /// When each request of `log` arrived.
    pub arrived: Mutex<Vec<std::time::Instant>>,
    /// Every request answers 503.
    pub down: AtomicBool,
    /// Every request answers this status instead.
    pub fail_with: Mutex<Option<u16>>,
    /// Every answer waits this long first.
    pub slow: Mutex<std::time::Duration>,
}

impl Site {
    pub fn set(&self, path: &str, p: Page) {
        self.pages.lock().unwrap().insert(path.to_string(), p);
    }

    pub fn log_since(&self, n: usize) -> Vec<(String, u16)> {
        self.log.lock().unwrap()[n..].to_vec()
    }

    fn answer(
        &self,
        path: &str,
        if_none_match: Option<&str>,
    ) -> (u16, Vec<(String, String)>, String) {
        if self.down.load(Ordering::SeqCst) {
            return (503, vec![], "down".into());
        }
        std::thread::sleep(*self.slow.lock().unwrap());
        if let Some(code) = *self.fail_with.lock().unwrap() {
            return (code, vec![], "refused".into());
        }
        let Some(p) = self.pages.lock().unwrap().get(path).cloned() else {
            return (404, vec![], "not found".into());
        };
        if let Some(to) = p.redirect {
            return (301, vec![("Location".into(), to)], String::new());
        }
        if if_none_match == Some(p.etag.as_str()) {
            return (304, vec![("ETag".into(), p.etag)], String::new());
        }
        let headers = vec![
            ("ETag".into(), p.etag),
            ("Content-Type".into(), p.content_type.into()),
        ];
        (200, headers, p.body)
    }
}

pub fn start(site: Arc<Site>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let site = Arc::clone(&site);
            std::thread::spawn(move || {
                let at = std::time::Instant::now();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut inm = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("if-none-match")
                    {
                        inm = Some(v.trim().to_string());
                    }
                }
                let (status, headers, body) = site.answer(&path, inm.as_deref());
                let mut log = site.log.lock().unwrap();
                log.push((path, status));
                site.arrived.lock().unwrap().push(at);
                drop(log);
                let mut out = stream;
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = out.write_all(head.as_bytes());
                let _ = out.write_all(body.as_bytes());
            });
        }
    });
    url
}

pub fn html(title: &str, text: &str, links: &[&str]) -> String {
    let links: String = links
        .iter()
        .map(|l| format!("<li><a href=\"{l}\">{l}</a></li>"))
        .collect();
    format!(
        "<html><head><title>{title}</title></head><body><nav><ul>{links}</ul></nav>\
         <main><h1>{title}</h1><p>{text}</p></main></body></html>"
    )
}
