//! Legal holds: ranges of a camera's recording that retention must not delete.
//!
//! Tree `holds`: key hold id (u64 BE, from sled's id generator), value the postcard
//! [`Hold`]. Holds are few (one per case), so [`Index::is_held`] scans them all.
//! Creating and releasing flush the database before returning: a hold that was
//! acknowledged survives a crash.

use serde::{Deserialize, Serialize};

use super::{Index, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub id: u64,
    pub camera_id: u32,
    pub start_us: i64,
    pub end_us: i64,
    /// Why (a case number, say): shown in lists and the audit log.
    pub reason: String,
    /// Who placed it, and when.
    pub user: String,
    pub created_us: i64,
}

impl Index {
    /// Places a hold on `[start_us, end_us)` of a camera.
    pub fn add_hold(
        &self,
        camera_id: u32,
        start_us: i64,
        end_us: i64,
        reason: &str,
        user: &str,
        now_us: i64,
    ) -> Result<Hold> {
        self.with(|t| {
            let h = Hold {
                id: t.db.generate_id()? + 1,
                camera_id,
                start_us,
                end_us,
                reason: reason.into(),
                user: user.into(),
                created_us: now_us,
            };
            t.holds
                .insert(h.id.to_be_bytes(), postcard::to_stdvec(&h)?)?;
            self.flush_trees(t)?;
            Ok(h)
        })
    }

    /// Every hold, oldest first.
    pub fn holds(&self) -> Result<Vec<Hold>> {
        self.with(|t| {
            t.holds
                .iter()
                .map(|kv| Ok(postcard::from_bytes(&kv?.1)?))
                .collect()
        })
    }

    /// Releases a hold; the released hold, or None if there is none with that id.
    pub fn release_hold(&self, id: u64) -> Result<Option<Hold>> {
        self.with(|t| {
            let old = t.holds.remove(id.to_be_bytes())?;
            self.flush_trees(t)?;
            Ok(match old {
                Some(v) => Some(postcard::from_bytes(&v)?),
                None => None,
            })
        })
    }

    /// Whether any part of `[start_us, end_us)` on this camera is under a legal hold.
    /// Retention asks this before deleting anything.
    pub fn is_held(&self, camera_id: u32, start_us: i64, end_us: i64) -> Result<bool> {
        self.with(|t| {
            for kv in t.holds.iter() {
                let h: Hold = postcard::from_bytes(&kv?.1)?;
                if h.camera_id == camera_id && h.start_us < end_us && h.end_us > start_us {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_cover_overlapping_ranges_of_their_camera_until_released() {
        let ix = Index::temporary().unwrap();
        assert!(!ix.is_held(1, 0, 100).unwrap());
        let h = ix.add_hold(1, 50, 150, "case 7", "ines", 1).unwrap();
        let other = ix.add_hold(2, 0, 10, "case 8", "ines", 2).unwrap();
        assert_ne!(h.id, other.id);
        assert!(ix.is_held(1, 0, 51).unwrap());
        assert!(ix.is_held(1, 149, 200).unwrap());
        assert!(!ix.is_held(1, 0, 50).unwrap()); // ends where the hold starts
        assert!(!ix.is_held(1, 150, 200).unwrap());
        assert!(!ix.is_held(3, 0, 200).unwrap());
        assert_eq!(ix.holds().unwrap(), vec![h.clone(), other]);
        assert_eq!(ix.release_hold(h.id).unwrap(), Some(h.clone()));
        assert_eq!(ix.release_hold(h.id).unwrap(), None);
        assert!(!ix.is_held(1, 0, 200).unwrap());
    }
}
