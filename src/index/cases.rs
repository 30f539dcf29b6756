//! Cases: an investigation's record (title, reference number, requester, legal basis,
//! notes) and its items (ranges of cameras, events, bookmarks, region-search results),
//! which `evidence::cases` keeps and the evidence package exports.
//!
//! Tree `cases`: key case id (u64 BE, from sled's id generator), value the [`Case`] as
//! JSON, not postcard: a case is read and written whole, a site has hundreds, and its
//! fields will grow with the evidence features; JSON lets a new optional field
//! (`#[serde(default)]`) arrive without a schema migration. Writes flush before
//! returning; [`Index::update_case`] is an atomic read-modify-write.

use serde::{Deserialize, Serialize};

use super::{Index, IndexError, Result};

/// One case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: u64,
    pub title: String,
    /// The requester's reference (a police or insurance case number).
    #[serde(default)]
    pub reference: String,
    /// Who asked for the material (a person and their organisation).
    #[serde(default)]
    pub requester: String,
    /// Why it may be handed over (the law, order or policy).
    #[serde(default)]
    pub legal_basis: String,
    #[serde(default)]
    pub notes: String,
    /// Who opened it, and when (UTC µs); when it last changed.
    pub created_by: String,
    pub created_us: i64,
    pub updated_us: i64,
    /// Its items, in the order they were added.
    #[serde(default)]
    pub items: Vec<CaseItem>,
    /// The number the next item gets (items keep theirs when others are removed).
    #[serde(default)]
    pub next_item: u32,
}

/// What an item points at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemSource {
    /// A range of one or several cameras.
    Range,
    /// A motion event (its clip window is the range).
    Event { event_id: u64 },
    /// A bookmark (its instant or range).
    Bookmark { bookmark_id: u64 },
    /// A region search's result: the polygon (normalised 0..1) and the intervals found.
    Search {
        polygon: Vec<[f64; 2]>,
        /// The range searched, UTC µs.
        from_us: i64,
        to_us: i64,
        /// `[start_us, end_us)` of each interval with motion inside the polygon.
        intervals: Vec<[i64; 2]>,
    },
}

/// One item of a case: a range of cameras, with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseItem {
    /// Its number within the case (1, 2, ...; never reused).
    pub n: u32,
    #[serde(flatten)]
    pub source: ItemSource,
    /// Camera names.
    pub cameras: Vec<String>,
    /// The range, UTC µs, `[start_us, end_us)`.
    pub start_us: i64,
    pub end_us: i64,
    #[serde(default)]
    pub note: String,
    /// The holds placed for it (one per camera).
    #[serde(default)]
    pub holds: Vec<u64>,
    pub added_by: String,
    pub added_us: i64,
}

fn decode(v: &[u8]) -> Result<Case> {
    serde_json::from_slice(v).map_err(|e| IndexError::Corrupt(format!("case record: {e}")))
}

impl Index {
    /// Stores a new case; its `id` is assigned here.
    pub fn add_case(&self, mut c: Case) -> Result<Case> {
        // Numbered 1, 2, ... (the next after the highest), as people cite them; a
        // concurrent insert of the same number makes this one take the next.
        self.with(|t| {
            loop {
                c.id =
                    match t.cases.last()? {
                        Some((k, _)) => {
                            u64::from_be_bytes(k.as_ref().try_into().map_err(|_| {
                                IndexError::Corrupt("case key is not 8 bytes".into())
                            })?) + 1
                        }
                        None => 1,
                    };
                let v = serde_json::to_vec(&c).expect("plain data");
                let key = c.id.to_be_bytes();
                if t.cases
                    .compare_and_swap(key, None as Option<&[u8]>, Some(v))?
                    .is_ok()
                {
                    self.flush_trees(t)?;
                    return Ok(c.clone());
                }
            }
        })
    }

    /// The case `id`, if there is one.
    pub fn case(&self, id: u64) -> Result<Option<Case>> {
        self.with(|t| {
            t.cases
                .get(id.to_be_bytes())?
                .map(|v| decode(&v))
                .transpose()
        })
    }

    /// Every case, oldest first.
    pub fn cases(&self) -> Result<Vec<Case>> {
        self.with(|t| t.cases.iter().map(|kv| decode(&kv?.1)).collect())
    }

    /// Changes case `id` with `f` atomically (a concurrent change is not lost: `f` runs
    /// again on the newer record); returns the new record, or None if there is no such
    /// case. `f` returning an error changes nothing.
    pub fn update_case<E: From<IndexError>>(
        &self,
        id: u64,
        mut f: impl FnMut(&mut Case) -> std::result::Result<(), E>,
    ) -> std::result::Result<Option<Case>, E> {
        loop {
            let Some((old, mut c)) = self.with(|t| {
                Ok(match t.cases.get(id.to_be_bytes())? {
                    Some(v) => Some((v.clone(), decode(&v)?)),
                    None => None,
                })
            })?
            else {
                return Ok(None);
            };
            f(&mut c)?;
            let new = serde_json::to_vec(&c).expect("plain data");
            let swapped = self.with(|t| {
                let r = t.cases.compare_and_swap(
                    id.to_be_bytes(),
                    Some(old.clone()),
                    Some(new.clone()),
                )?;
                if r.is_ok() {
                    self.flush_trees(t)?;
                }
                Ok(r.is_ok())
            })?;
            if swapped {
                return Ok(Some(c));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_kept_listed_and_updated_atomically() {
        let ix = Index::temporary().unwrap();
        let c = |title: &str| Case {
            id: 0,
            title: title.into(),
            reference: "PD-2026-118".into(),
            requester: String::new(),
            legal_basis: String::new(),
            notes: String::new(),
            created_by: "ines".into(),
            created_us: 5,
            updated_us: 5,
            items: vec![],
            next_item: 1,
        };
        let one = ix.add_case(c("pallet")).unwrap();
        let two = ix.add_case(c("van")).unwrap();
        assert!(one.id > 0 && two.id > one.id);
        assert_eq!(ix.cases().unwrap(), vec![one.clone(), two.clone()]);
        let up = ix
            .update_case(one.id, |c| -> Result<()> {
                c.items.push(CaseItem {
                    n: c.next_item,
                    source: ItemSource::Event { event_id: 7 },
                    cameras: vec!["gate".into()],
                    start_us: 1,
                    end_us: 2,
                    note: String::new(),
                    holds: vec![3],
                    added_by: "ines".into(),
                    added_us: 6,
                });
                c.next_item += 1;
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(ix.case(one.id).unwrap(), Some(up.clone()));
        assert_eq!(up.items[0].n, 1);
        // The item's source is tagged in the JSON (what the API shows).
        let v = serde_json::to_value(&up.items[0]).unwrap();
        assert_eq!(v["kind"], "event");
        assert_eq!(v["event_id"], 7);
        assert!(
            ix.update_case(999, |_| -> Result<()> { Ok(()) })
                .unwrap()
                .is_none()
        );
        // An error in the change leaves the case as it was.
        let e = ix.update_case(two.id, |c| {
            c.title = "changed".into();
            Err(IndexError::Corrupt("no".into()))
        });
        assert!(e.is_err());
        assert_eq!(ix.case(two.id).unwrap().unwrap().title, "van");
    }
}
