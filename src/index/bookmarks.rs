//! Bookmarks: an instant or a range of a camera's recording marked with a note by an
//! investigator ("van at the gate", "the pallet leaves"), to find again and to put into a
//! case.
//!
//! Tree `bookmarks`: key bookmark id (u64 BE, from sled's id generator), value the
//! postcard [`Bookmark`]. A site keeps hundreds, not millions: listing scans them all.
//! Adding and deleting flush before returning.

use serde::{Deserialize, Serialize};

use super::{Index, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bookmark {
    pub id: u64,
    pub camera_id: u32,
    /// The marked instant (`end_us == start_us`) or range, UTC µs.
    pub start_us: i64,
    pub end_us: i64,
    pub note: String,
    /// Who set it, and when (UTC µs).
    pub user: String,
    pub created_us: i64,
}

impl Index {
    /// Adds a bookmark (its `id` is assigned here).
    pub fn add_bookmark(&self, mut b: Bookmark) -> Result<Bookmark> {
        self.with(|t| {
            b.id = t.db.generate_id()? + 1;
            t.bookmarks
                .insert(b.id.to_be_bytes(), postcard::to_stdvec(&b)?)?;
            self.flush_trees(t)?;
            Ok(b.clone())
        })
    }

    /// Every bookmark, in the order they were set.
    pub fn bookmarks(&self) -> Result<Vec<Bookmark>> {
        self.with(|t| {
            t.bookmarks
                .iter()
                .map(|kv| Ok(postcard::from_bytes(&kv?.1)?))
                .collect()
        })
    }

    /// Deletes a bookmark; the deleted one, or None if there is none with that id.
    pub fn delete_bookmark(&self, id: u64) -> Result<Option<Bookmark>> {
        self.with(|t| {
            let old = t.bookmarks.remove(id.to_be_bytes())?;
            self.flush_trees(t)?;
            Ok(match old {
                Some(v) => Some(postcard::from_bytes(&v)?),
                None => None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_are_kept_listed_and_deleted() {
        let ix = Index::temporary().unwrap();
        let b = |cam, t, note: &str| Bookmark {
            id: 0,
            camera_id: cam,
            start_us: t,
            end_us: t,
            note: note.into(),
            user: "ines".into(),
            created_us: 5,
        };
        let one = ix.add_bookmark(b(1, 100, "van at the gate")).unwrap();
        let two = ix.add_bookmark(b(2, 50, "pallet leaves")).unwrap();
        assert!(one.id > 0 && two.id > one.id);
        assert_eq!(ix.bookmarks().unwrap(), vec![one.clone(), two.clone()]);
        assert_eq!(ix.delete_bookmark(one.id).unwrap(), Some(one.clone()));
        assert_eq!(ix.delete_bookmark(one.id).unwrap(), None);
        assert_eq!(ix.bookmarks().unwrap(), vec![two]);
    }
}
