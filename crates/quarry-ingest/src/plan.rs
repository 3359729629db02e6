//! Sync planning: what the source lists against what the index holds.

use std::collections::{BTreeMap, HashMap};

use crate::source::DocumentRef;

/// What the index holds for one document of a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredDoc {
    /// Versions present (normally exactly one; more after an interrupted
    /// replacement).
    pub versions: Vec<String>,
    /// True when the stored points form exactly one complete version.
    pub consistent: bool,
}

/// The work a sync has to do.
#[derive(Debug, Default)]
pub struct Plan {
    pub added: Vec<DocumentRef>,
    pub updated: Vec<DocumentRef>,
    pub unchanged: usize,
    /// Ids held in the index but no longer listed by the source.
    pub deleted: Vec<String>,
}

impl Plan {
    pub fn new(listed: Vec<DocumentRef>, stored: &HashMap<String, StoredDoc>) -> Self {
        let mut plan = Plan::default();
        let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
        for doc in &listed {
            seen.insert(doc.id.as_str(), ());
        }
        for doc in listed.iter() {
            match stored.get(&doc.id) {
                None => plan.added.push(doc.clone()),
                Some(s)
                    if s.consistent && s.versions.len() == 1 && s.versions[0] == doc.version =>
                {
                    plan.unchanged += 1
                }
                Some(_) => plan.updated.push(doc.clone()),
            }
        }
        let mut deleted: Vec<String> = stored
            .keys()
            .filter(|id| !seen.contains_key(id.as_str()))
            .cloned()
            .collect();
        deleted.sort();
        plan.deleted = deleted;
        plan
    }
}
