//! Rate limits: a token bucket per API key, or per client address when the
//! API is open (`governor`, GCRA).
//!
//! Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining`
//! and `RateLimit-Reset` (the IETF draft's fields), so a client can pace
//! itself before it is refused; a refusal is a 429 with `Retry-After`. A
//! 429 is about the caller and a 503 about the server (load shedding), and
//! their bodies say which (`rate_limited` or `overloaded`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use quarry_core::config::RateConfig;

use crate::AppState;
use crate::auth::{Caller, is_probe};
use crate::error::ApiError;

type Direct = DefaultDirectRateLimiter<StateInformationMiddleware>;
type Keyed = DefaultKeyedRateLimiter<IpAddr, StateInformationMiddleware>;

/// One configured bucket, with the numbers its headers report.
#[derive(Debug)]
pub(crate) struct Bucket<L> {
    limiter: L,
    burst: u32,
    per_second: f64,
}

/// A bucket for one key.
pub(crate) type KeyBucket = Bucket<Direct>;

fn quota(rate: &RateConfig) -> Quota {
    let burst = NonZeroU32::new(rate.burst()).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_secs_f64(1.0 / rate.per_second.max(1e-6));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

impl KeyBucket {
    pub fn new(rate: &RateConfig) -> Self {
        Self {
            limiter: governor::RateLimiter::direct(quota(rate))
                .with_middleware::<StateInformationMiddleware>(),
            burst: rate.burst(),
            per_second: rate.per_second,
        }
    }
}

/// Buckets by client address, for an open API.
#[derive(Debug)]
pub(crate) struct AddressBuckets {
    bucket: Bucket<Keyed>,
    checks: AtomicU64,
}

impl AddressBuckets {
    pub fn new(rate: &RateConfig) -> Self {
        Self {
            bucket: Bucket {
                limiter: governor::RateLimiter::keyed(quota(rate))
                    .with_middleware::<StateInformationMiddleware>(),
                burst: rate.burst(),
                per_second: rate.per_second,
            },
            checks: AtomicU64::new(0),
        }
    }
}

/// Whose bucket it is, for the refusal's message.
enum Who<'a> {
    Key(&'a str),
    Address(IpAddr),
}

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(name) => write!(f, "key {name:?}"),
            Self::Address(a) => write!(f, "address {a}"),
        }
    }
}

/// What a check found: tokens left, or how long to wait.
enum Verdict {
    Allowed { remaining: u32 },
    Refused { wait: Duration },
}

fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn headers(h: &mut HeaderMap, burst: u32, remaining: u32, reset: Duration) {
    let mut set = |name: &'static str, v: u64| {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            h.insert(name, v);
        }
    };
    set("ratelimit-limit", u64::from(burst));
    set("ratelimit-remaining", u64::from(remaining));
    set("ratelimit-reset", secs_up(reset));
}

/// Applies the caller's bucket: its key's, or its address's when the API
/// is open. Probes are never limited.
pub(crate) async fn limit(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if is_probe(req.uri().path()) {
        return next.run(req).await;
    }
    let caller = req.extensions().get::<Caller>().cloned();
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let key_bucket = caller.as_ref().and_then(|c| state.keys.bucket(c));
    let (outcome, burst, per_second, who) = if let Some(b) = key_bucket {
        let name = caller.as_ref().map_or("", |c| c.name());
        (b.limiter.check(), b.burst, b.per_second, Who::Key(name))
    } else if let (Some(b), false) = (&state.by_address, state.keys.enabled()) {
        // Forget idle addresses now and then, so the table stays small.
        if b.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            b.bucket.limiter.retain_recent();
        }
        let outcome = b.bucket.limiter.check_key(&address);
        (
            outcome,
            b.bucket.burst,
            b.bucket.per_second,
            Who::Address(address),
        )
    } else {
        return next.run(req).await;
    };
    let verdict = match outcome {
        Ok(s) => Verdict::Allowed {
            remaining: s.remaining_burst_capacity(),
        },
        Err(n) => Verdict::Refused {
            wait: n.wait_time_from(DefaultClock::default().now()),
        },
    };
    match verdict {
        Verdict::Allowed { remaining } => {
            let mut resp = next.run(req).await;
            // Time until the bucket is full again.
            let missing = burst.saturating_sub(remaining);
            let reset = Duration::from_secs_f64(f64::from(missing) / per_second.max(1e-6));
            headers(resp.headers_mut(), burst, remaining, reset);
            resp
        }
        Verdict::Refused { wait } => {
            let mut resp = ApiError::RateLimited(format!(
                "rate limit for {who} exceeded ({per_second} requests a second, bursts of \
                 {burst}); retry after {} s",
                secs_up(wait)
            ))
            .into_response();
            let h = resp.headers_mut();
            headers(h, burst, 0, wait);
            if let Ok(v) = HeaderValue::from_str(&secs_up(wait).max(1).to_string()) {
                h.insert(axum::http::header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

/// Adds the 429 answer, with its headers, to every operation but the
/// probes: any of them may meet a rate limit.
pub(crate) fn document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Content, HeaderBuilder, Ref, RefOr, ResponseBuilder};
    let seconds = |what: &str| {
        HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .description(Some(what))
            .build()
    };
    let response = ResponseBuilder::new()
        .description("Over the caller's rate limit (`rate_limited`)")
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .header("Retry-After", seconds("Seconds until a request is allowed"))
        .header("RateLimit-Limit", seconds("The bucket's size"))
        .header("RateLimit-Remaining", seconds("Requests left now: 0"))
        .header(
            "RateLimit-Reset",
            seconds("Seconds until a request is allowed"),
        )
        .build();
    for (path, item) in doc.paths.paths.iter_mut() {
        if is_probe(path) {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            op.responses
                .responses
                .insert("429".into(), RefOr::T(response.clone()));
        }
    }
}
