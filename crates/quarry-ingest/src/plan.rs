//! Sync planning: what the source lists against what the index holds.

use std::collections::{BTreeMap, HashMap, HashSet};

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
    /// Documents that left one id and appeared under another with the same
    /// version: neither in `added` nor in `deleted`.
    pub renamed: Vec<Rename>,
}

/// A document whose content moved to a new id (a renamed file).
#[derive(Debug, Clone, PartialEq)]
pub struct Rename {
    /// The id it is stored under.
    pub from: String,
    /// What the source lists now.
    pub to: DocumentRef,
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
        plan.pair_renames(stored);
        plan
    }

    /// Pairs each added document with a deleted one of the same version,
    /// one to one, in id order so the pairing is deterministic. Only a
    /// complete stored version counts: an interrupted replacement is not a
    /// known content to move.
    fn pair_renames(&mut self, stored: &HashMap<String, StoredDoc>) {
        let mut gone: HashMap<&str, Vec<&str>> = HashMap::new();
        for id in &self.deleted {
            if let Some(s) = stored
                .get(id)
                .filter(|s| s.consistent && s.versions.len() == 1)
            {
                gone.entry(s.versions[0].as_str()).or_default().push(id);
            }
        }
        if gone.is_empty() {
            return;
        }
        for ids in gone.values_mut() {
            ids.reverse();
        }
        let mut moved: HashSet<String> = HashSet::new();
        let mut added = Vec::with_capacity(self.added.len());
        for doc in std::mem::take(&mut self.added) {
            match gone.get_mut(doc.version.as_str()).and_then(Vec::pop) {
                Some(from) => {
                    moved.insert(from.to_string());
                    self.renamed.push(Rename {
                        from: from.to_string(),
                        to: doc,
                    });
                }
                None => added.push(doc),
            }
        }
        self.added = added;
        self.deleted.retain(|id| !moved.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, version: &str) -> DocumentRef {
        DocumentRef {
            id: id.into(),
            version: version.into(),
            uri: format!("file:///{id}"),
            path: Some(id.into()),
            size: 1,
        }
    }

    fn stored(entries: &[(&str, &str, bool)]) -> HashMap<String, StoredDoc> {
        entries
            .iter()
            .map(|(id, v, consistent)| {
                let doc = StoredDoc {
                    versions: vec![v.to_string()],
                    consistent: *consistent,
                };
                (id.to_string(), doc)
            })
            .collect()
    }

    #[test]
    fn a_version_that_moves_to_a_new_id_is_a_rename_one_to_one() {
        let index = stored(&[
            ("a.md", "va", true),
            ("b.md", "vb", true),
            ("c.md", "dup", true),
            ("d.md", "dup", true),
            ("torn.md", "vt", false),
        ]);
        let listed = vec![
            doc("a.md", "va"),
            doc("b2.md", "vb"),
            // Two copies of one content moved, plus a third new copy.
            doc("c2.md", "dup"),
            doc("d2.md", "dup"),
            doc("e.md", "dup"),
            // A torn stored version is not a known content.
            doc("torn2.md", "vt"),
        ];
        let plan = Plan::new(listed, &index);
        let pairs: Vec<(&str, &str)> = plan
            .renamed
            .iter()
            .map(|r| (r.from.as_str(), r.to.id.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("b.md", "b2.md"), ("c.md", "c2.md"), ("d.md", "d2.md")]
        );
        let added: Vec<&str> = plan.added.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(added, ["e.md", "torn2.md"]);
        assert_eq!(plan.deleted, ["torn.md"]);
        assert_eq!(plan.unchanged, 1);
    }
}
