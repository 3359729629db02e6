//! Leases in Qdrant, so that replicas sharing one server sync each source
//! one at a time.
//!
//! A lease is a point in a collection of its own (`quarry_leases`, which
//! has no Quarry spec and so never shows in listings), keyed by a hash of
//! the lease's name, with its holder and expiry in the payload. Qdrant has
//! no compare-and-set, so taking a free lease is write, wait, read back: of
//! two replicas that both saw it free, the later write wins, and after the
//! settling pause each sees whose it is. The holder renews it well before
//! it expires; a replica that dies loses it after its time-to-live, and
//! another takes over.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qdrant_client::Payload;
use qdrant_client::qdrant::{
    self as q, CreateCollectionBuilder, Distance, GetPointsBuilder, PointStruct,
    UpsertPointsBuilder, VectorParamsBuilder, with_payload_selector, with_vectors_selector,
};
use quarry_core::PointId;

use super::ServerStore;
use super::client::Retry;
use super::convert::to_qid;
use crate::{Result, StoreError};

const LEASES: &str = "quarry_leases";
/// Longer than any replica takes between reading a free lease and writing
/// its claim.
const SETTLE: Duration = Duration::from_millis(300);

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq)]
struct Holder {
    holder: String,
    expires_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn lease_id(key: &str) -> q::PointId {
    to_qid(PointId::for_chunk(key, 0, "quarry lease"))
}

impl ServerStore {
    fn ensure_leases(&self) -> Result<()> {
        let request = CreateCollectionBuilder::new(LEASES)
            .vectors_config(VectorParamsBuilder::new(1, Distance::Dot))
            .build();
        match self.call("create lease collection", LEASES, Retry::Write, move |c| {
            let request = request.clone();
            async move { c.create_collection(request).await.map(|_| ()) }
        }) {
            // Another replica created it first.
            Err(StoreError::Qdrant { message, .. }) if message.contains("already exists") => Ok(()),
            other => other,
        }
    }

    fn read_lease(&self, key: &str) -> Result<Option<Holder>> {
        let request = GetPointsBuilder::new(LEASES, vec![lease_id(key)])
            .with_payload(with_payload_selector::SelectorOptions::Enable(true))
            .with_vectors(with_vectors_selector::SelectorOptions::Enable(false))
            .build();
        let points = match self.call("read lease", LEASES, Retry::No, move |c| {
            let request = request.clone();
            async move { c.get_points(request).await.map(|r| r.result) }
        }) {
            Ok(p) => p,
            Err(StoreError::NoCollection(_)) => {
                self.ensure_leases()?;
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        Ok(points.into_iter().next().map(|p| {
            let field = |k: &str| p.payload.get(k).map(|v| v.clone().into_json());
            Holder {
                holder: field("holder")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                expires_ms: field("expires_ms")
                    .and_then(|v| v.as_u64())
                    .unwrap_or_default(),
            }
        }))
    }

    fn write_lease(&self, key: &str, holder: &Holder) -> Result<()> {
        let mut payload = serde_json::Map::new();
        payload.insert("key".into(), key.into());
        payload.insert("holder".into(), holder.holder.clone().into());
        payload.insert("expires_ms".into(), holder.expires_ms.into());
        let payload = Payload::from(payload);
        let point = PointStruct::new(lease_id(key), vec![1.0f32], payload);
        let request = UpsertPointsBuilder::new(LEASES, vec![point])
            .wait(true)
            .build();
        self.call("write lease", LEASES, Retry::No, move |c| {
            let request = request.clone();
            async move { c.upsert_points(request).await.map(|_| ()) }
        })
    }

    /// See [`crate::VectorStore::lease`].
    pub(super) fn take_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = now_ms();
        let current = self.read_lease(key)?;
        let mine = current.as_ref().is_some_and(|h| h.holder == holder);
        if let Some(h) = &current
            && !mine
            && h.expires_ms > now
        {
            return Ok(false);
        }
        let claim = Holder {
            holder: holder.to_string(),
            expires_ms: now + ttl.as_millis() as u64,
        };
        self.write_lease(key, &claim)?;
        if mine {
            // A renewal: nobody else may write a live lease.
            return Ok(true);
        }
        std::thread::sleep(SETTLE);
        Ok(self.read_lease(key)?.is_some_and(|h| h.holder == holder))
    }
}
