//! Paging through a collection: the one scroll loop.

use crate::{Page, Result, ScrollRequest, StoredPoint, VectorStore};

/// The pages of a scroll, in id order; stops after the first error.
pub struct ScrollAll<'a> {
    pub(crate) store: &'a dyn VectorStore,
    pub(crate) name: &'a str,
    pub(crate) request: ScrollRequest,
    pub(crate) done: bool,
}

impl std::fmt::Debug for ScrollAll<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrollAll")
            .field("name", &self.name)
            .field("offset", &self.request.offset)
            .finish()
    }
}

impl ScrollAll<'_> {
    /// Every point of every page.
    pub fn points(self) -> Result<Vec<StoredPoint>> {
        let mut all = Vec::new();
        for page in self {
            all.extend(page?.points);
        }
        Ok(all)
    }
}

impl Iterator for ScrollAll<'_> {
    /// Each page says where the next one starts, for a caller that keeps
    /// a checkpoint.
    type Item = Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.store.scroll(self.name, &self.request) {
            Ok(page) => {
                self.request.offset = page.next;
                self.done = page.next.is_none();
                Some(Ok(page))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
