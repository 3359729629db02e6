//! Stage 0 of a sync: the source's listing against the manifest, as the
//! work to do. Nothing is read or embedded here.

use std::collections::{HashMap, HashSet};

use quarry_core::PointId;
use quarry_ingest::{DocumentRef, Listing, Plan};

use super::manifest::Manifest;
use super::payload::doc_hash;
use crate::report::SyncReport;

/// What a sync will do.
#[derive(Debug, Default)]
pub(super) struct SyncPlan {
    /// Added and changed documents, to read, parse and embed.
    pub work: Vec<DocumentRef>,
    /// Which of `work` the index already holds (an update, not an add).
    pub was_stored: HashSet<String>,
    /// The points each stored document has now.
    pub stored_points: HashMap<String, Vec<PointId>>,
    /// Points of documents gone from the source, renamed ones' included.
    pub to_delete: Vec<PointId>,
    /// Renamed documents: the new id, to the id their points are stored
    /// under, whose vectors the new id's chunks reuse.
    pub renamed_from: HashMap<String, String>,
}

/// Plans a sync. Listing issues are reported; a document that exists but
/// could not be read keeps its indexed version, since unreadable now is not
/// gone. With `only` (one document written through the API) nothing else
/// is deleted.
pub(super) fn plan(
    listing: Listing,
    manifest: Manifest,
    salt: &str,
    only: Option<&str>,
    report: &mut SyncReport,
) -> SyncPlan {
    let mut keep: HashSet<String> = HashSet::new();
    for issue in listing.issues {
        if issue.skipped {
            report.skip(&issue.uri, issue.reason);
        } else {
            report.fail(&issue.uri, issue.reason);
            keep.extend(issue.id);
        }
    }
    report.duplicates = duplicates(&listing.docs);
    let listed: Vec<DocumentRef> = listing
        .docs
        .into_iter()
        .map(|mut d| {
            d.version = doc_hash(&d.version, salt);
            d
        })
        .collect();
    let mut plan = Plan::new(listed, &manifest.docs);
    plan.deleted
        .retain(|id| !keep.contains(id) && only.is_none());
    // A document that could not be listed is not gone, so nothing moved
    // from it; and one document written through the API renames nothing.
    let (renamed, not_moved): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.renamed)
        .into_iter()
        .partition(|r| !keep.contains(&r.from) && only.is_none());
    plan.renamed = renamed;
    plan.added.extend(not_moved.into_iter().map(|r| r.to));
    report.unchanged = plan.unchanged;
    report.deleted = plan.deleted.len();
    for id in &plan.deleted {
        crate::report::name(&mut report.changed.deleted, id);
    }
    let to_delete = plan
        .deleted
        .iter()
        .chain(plan.renamed.iter().map(|r| &r.from))
        .flat_map(|id| manifest.points.get(id).into_iter().flatten().copied())
        .collect();
    let renamed_from = plan
        .renamed
        .iter()
        .map(|r| (r.to.id.clone(), r.from.clone()))
        .collect();
    SyncPlan {
        was_stored: plan.updated.iter().map(|d| d.id.clone()).collect(),
        work: plan
            .added
            .into_iter()
            .chain(plan.updated)
            .chain(plan.renamed.into_iter().map(|r| r.to))
            .collect(),
        stored_points: manifest.points,
        to_delete,
        renamed_from,
    }
}

/// Groups of listed documents with the same content version, in listing
/// order, capped at [`crate::report::NAMED`] groups of at most ten names.
fn duplicates(docs: &[DocumentRef]) -> Vec<crate::report::DuplicateDocuments> {
    let mut by_version: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    // Empty files are all alike, and are skipped anyway.
    for d in docs.iter().filter(|d| d.size > 0) {
        let ids = by_version.entry(d.version.as_str()).or_default();
        if ids.is_empty() {
            order.push(d.version.as_str());
        }
        ids.push(d.id.as_str());
    }
    order
        .into_iter()
        .filter_map(|v| {
            let ids = &by_version[v];
            (ids.len() > 1).then(|| crate::report::DuplicateDocuments {
                documents: ids.iter().take(10).map(|s| s.to_string()).collect(),
            })
        })
        .take(crate::report::NAMED)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, version: &str) -> DocumentRef {
        DocumentRef {
            id: id.into(),
            uri: id.into(),
            version: version.into(),
            path: None,
            size: 10,
        }
    }

    #[test]
    fn identical_documents_are_grouped_in_listing_order() {
        let docs = [
            doc("a.html", "v1"),
            doc("b.html", "v2"),
            doc("print/a.html", "v1"),
            doc("c.html", "v3"),
            doc("mirror/a.html", "v1"),
        ];
        let groups = duplicates(&docs);
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0].documents,
            ["a.html", "print/a.html", "mirror/a.html"]
        );
    }
}
