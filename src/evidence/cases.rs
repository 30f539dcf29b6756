//! Cases: what an investigator collects for one loss (a case record and its items),
//! the library behind `/api/cases` and `vigil case`. Adding an item places a legal hold
//! on its range on each of its cameras (reason "case N (REF): TITLE"), so that nothing
//! in a case is deleted by retention; removing an item keeps its holds (only an admin
//! releases a hold). The callers record every change in the audit log.
//!
//! Items are ranges of one or several cameras, resolved from what the investigator
//! points at: a range given directly, a motion event (its clip window), a bookmark (its
//! range; an instant gets 10 s either side), or a region search (the polygon and the
//! range searched are kept with the intervals found; the item spans them).

use serde::{Deserialize, Serialize};

use crate::events::{Cameras, QueryError, check_range, region_search};
use crate::index::{Case, CaseItem, Index, ItemSource};

/// A bookmarked instant becomes this much before and after it (µs).
const INSTANT_MARGIN_US: i64 = 10_000_000;

fn bad(msg: impl Into<String>) -> QueryError {
    QueryError::Bad(msg.into())
}

/// A person's text field: trimmed, at most `max` characters, no control characters
/// (newlines allowed where `newlines`) and no invisible or direction-changing ones;
/// `required` ones not empty. Errors: `Bad` with what is wrong.
pub fn check_text(
    raw: &str,
    what: &str,
    max: usize,
    required: bool,
    newlines: bool,
) -> Result<String, QueryError> {
    let t = raw.trim().to_owned();
    if required && t.is_empty() {
        return Err(bad(format!("{what} is required")));
    }
    if t.chars().count() > max {
        return Err(bad(format!("{what} must have at most {max} characters")));
    }
    if t.chars()
        .any(|c| c.is_control() && !(newlines && c == '\n'))
    {
        return Err(bad(format!("{what} contains control characters")));
    }
    if let Some(c) = t.chars().find(|&c| invisible(c)) {
        return Err(bad(format!(
            "{what} contains an invisible or direction-changing character (U+{:04X}): \
             text that reads differently from what it says has no place in evidence",
            c as u32
        )));
    }
    Ok(t)
}

/// Characters that change how text reads without being seen: the bidirectional
/// embeddings, overrides and isolates (Unicode Standard Annex #9: U+202A..U+202E,
/// U+2066..U+2069, the marks U+200E, U+200F, U+061C), zero-width characters (U+200B..U+200D,
/// U+2060, U+FEFF) and the line and paragraph separators (U+2028, U+2029).
/// Also every other format character (Unicode general category Cf: the Arabic number
/// signs U+0600..U+0605, U+06DD, U+070F, U+0890, U+0891, U+08E2, U+180E, the invisible
/// operators U+2061..U+2064, the interlinear annotations U+FFF9..U+FFFB, U+110BD, U+110CD,
/// the Egyptian format controls U+13430..U+1343F, the shorthand controls
/// U+1BCA0..U+1BCA3, the musical ones U+1D173..U+1D17A, the tags U+E0000..U+E0FFF) and the
/// other default-ignorable or blank code points that print as nothing (the soft hyphen
/// U+00AD, the combining grapheme joiner U+034F, the Hangul fillers U+115F, U+1160, U+3164,
/// U+FFA0, the Khmer vowels U+17B4, U+17B5, the Mongolian selectors U+180B..U+180F,
/// U+FFF0..U+FFF8, the braille blank U+2800), but not the variation selectors
/// U+FE00..U+FE0F, which emoji need.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
        | '\u{0890}' | '\u{0891}' | '\u{08E2}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The fields of a new case, or a change to them (absent fields unchanged).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFields {
    pub title: Option<String>,
    pub reference: Option<String>,
    pub requester: Option<String>,
    pub legal_basis: Option<String>,
    pub notes: Option<String>,
}

impl CaseFields {
    fn apply(&self, c: &mut Case) -> Result<(), QueryError> {
        if let Some(t) = &self.title {
            c.title = check_text(t, "title", 200, true, false)?;
        }
        if let Some(t) = &self.reference {
            c.reference = check_text(t, "reference", 100, false, false)?;
        }
        if let Some(t) = &self.requester {
            c.requester = check_text(t, "requester", 500, false, true)?;
        }
        if let Some(t) = &self.legal_basis {
            c.legal_basis = check_text(t, "legal_basis", 1000, false, true)?;
        }
        if let Some(t) = &self.notes {
            c.notes = check_text(t, "notes", 10_000, false, true)?;
        }
        Ok(())
    }
}

/// Opens a case (`title` required). Errors: a bad field (`Bad`), the index.
pub fn create(index: &Index, f: &CaseFields, user: &str, now_us: i64) -> Result<Case, QueryError> {
    if f.title.is_none() {
        return Err(bad("title is required"));
    }
    let mut c = Case {
        id: 0,
        title: String::new(),
        reference: String::new(),
        requester: String::new(),
        legal_basis: String::new(),
        notes: String::new(),
        created_by: user.to_owned(),
        created_us: now_us,
        updated_us: now_us,
        items: Vec::new(),
        next_item: 1,
    };
    f.apply(&mut c)?;
    Ok(index.add_case(c)?)
}

/// Changes a case's fields. Errors: no such case (`NotFound`), a bad field.
pub fn change(index: &Index, id: u64, f: &CaseFields, now_us: i64) -> Result<Case, QueryError> {
    index
        .update_case(id, |c| {
            f.apply(c)?;
            c.updated_us = now_us;
            Ok::<_, QueryError>(())
        })?
        .ok_or_else(|| QueryError::NotFound(format!("no case {id}")))
}

/// The case `id`. Errors: `NotFound`.
pub fn get(index: &Index, id: u64) -> Result<Case, QueryError> {
    index
        .case(id)?
        .ok_or_else(|| QueryError::NotFound(format!("no case {id}")))
}

/// What to add to a case (`kind` says which), with an optional note.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ItemRequest {
    /// `cameras` over `[start_us, end_us)`.
    Range {
        cameras: Vec<String>,
        start_us: i64,
        end_us: i64,
        #[serde(default)]
        note: String,
    },
    Event {
        event_id: u64,
        #[serde(default)]
        note: String,
    },
    Bookmark {
        bookmark_id: u64,
        #[serde(default)]
        note: String,
    },
    /// A region search on `cameras` (all if empty) over `[start_us, end_us)`.
    Search {
        #[serde(default)]
        cameras: Vec<String>,
        polygon: Vec<[f64; 2]>,
        start_us: i64,
        end_us: i64,
        #[serde(default)]
        note: String,
    },
}

/// Resolves `req` to an item (cameras and range) without storing it.
fn resolve(
    index: &Index,
    req: &ItemRequest,
    cams: &Cameras,
) -> Result<(ItemSource, Vec<String>, i64, i64, String), QueryError> {
    Ok(match req {
        ItemRequest::Range {
            cameras,
            start_us,
            end_us,
            note,
        } => {
            check_range(*start_us, *end_us)?;
            if cameras.is_empty() {
                return Err(bad("cameras: name at least one"));
            }
            for c in cameras {
                cams.id(c)?;
            }
            (
                ItemSource::Range,
                cameras.clone(),
                *start_us,
                *end_us,
                note.clone(),
            )
        }
        ItemRequest::Event { event_id, note } => {
            let e = index
                .event(*event_id)?
                .ok_or_else(|| QueryError::NotFound(format!("no event {event_id}")))?;
            let cam = cams.name(e.camera_id).to_owned();
            (
                ItemSource::Event {
                    event_id: *event_id,
                },
                vec![cam],
                e.clip_start_us,
                e.clip_end_us,
                note.clone(),
            )
        }
        ItemRequest::Bookmark { bookmark_id, note } => {
            let b = (index.bookmarks()?.into_iter())
                .find(|b| b.id == *bookmark_id)
                .ok_or_else(|| QueryError::NotFound(format!("no bookmark {bookmark_id}")))?;
            let (a, z) = if b.end_us > b.start_us {
                (b.start_us, b.end_us)
            } else {
                (
                    b.start_us - INSTANT_MARGIN_US,
                    b.start_us + INSTANT_MARGIN_US,
                )
            };
            let note = if note.is_empty() {
                b.note.clone()
            } else {
                note.clone()
            };
            (
                ItemSource::Bookmark {
                    bookmark_id: *bookmark_id,
                },
                vec![cams.name(b.camera_id).to_owned()],
                a,
                z,
                note,
            )
        }
        ItemRequest::Search {
            cameras,
            polygon,
            start_us,
            end_us,
            note,
        } => {
            let found = region_search(index, cameras, polygon, *start_us, *end_us)?;
            if found.is_empty() {
                return Err(bad("the region search found nothing to add"));
            }
            let mut names: Vec<String> = Vec::new();
            for i in &found {
                if !names.contains(&i.camera) {
                    names.push(i.camera.clone());
                }
            }
            let a = found.iter().map(|i| i.start_us).min().unwrap();
            let z = found.iter().map(|i| i.end_us).max().unwrap();
            (
                ItemSource::Search {
                    polygon: polygon.clone(),
                    from_us: *start_us,
                    to_us: *end_us,
                    intervals: found.iter().map(|i| [i.start_us, i.end_us]).collect(),
                },
                names,
                a,
                z,
                note.clone(),
            )
        }
    })
}

/// An item must be something an evidence package can hold: each camera once, a range
/// of at most [`crate::export::MAX_CLIP_US`] (one media file per camera), recorded
/// already (starting before `now_us`, ending at most a minute after it).
fn exportable(
    cameras: &[String],
    start_us: i64,
    end_us: i64,
    now_us: i64,
) -> Result<(), QueryError> {
    for (i, c) in cameras.iter().enumerate() {
        if cameras[..i].contains(c) {
            return Err(bad(format!("cameras: {c:?} is named twice")));
        }
    }
    if end_us - start_us > crate::export::MAX_CLIP_US {
        return Err(bad(format!(
            "an item may span at most {} hours (one media file per camera); this one spans {:.1}: add several items",
            crate::export::MAX_CLIP_US / 3_600_000_000,
            (end_us - start_us) as f64 / 3.6e9
        )));
    }
    if start_us >= now_us {
        return Err(bad(format!(
            "the range starts in the future ({}; now is {}): an item is recorded footage",
            crate::base::time::rfc3339(start_us),
            crate::base::time::rfc3339(now_us)
        )));
    }
    if end_us > now_us + 60_000_000 {
        return Err(bad(format!(
            "the range ends in the future ({}; now is {}): add it once it is recorded",
            crate::base::time::rfc3339(end_us),
            crate::base::time::rfc3339(now_us)
        )));
    }
    Ok(())
}

/// Adds an item to case `id` and places its holds (one per camera). Returns the case
/// and the item. Errors: no such case, event or bookmark (`NotFound`), a bad request,
/// the index. The holds are placed before the item is stored: a failure between leaves
/// held recording, never an item whose recording is not held.
pub fn add_item(
    index: &Index,
    id: u64,
    req: &ItemRequest,
    user: &str,
    now_us: i64,
) -> Result<(Case, CaseItem), QueryError> {
    let case = get(index, id)?;
    let cams = Cameras::load(index)?;
    let (source, cameras, start_us, end_us, note) = resolve(index, req, &cams)?;
    exportable(&cameras, start_us, end_us, now_us)?;
    for c in &cameras {
        if index
            .segments_overlapping(cams.id(c)?, start_us, end_us)?
            .is_empty()
        {
            return Err(QueryError::NotFound(format!(
                "no recording of camera {c} from {} to {}: nothing to hold or export",
                crate::base::time::rfc3339(start_us),
                crate::base::time::rfc3339(end_us)
            )));
        }
    }
    let note = check_text(&note, "note", 2000, false, true)?;
    let reason = if case.reference.is_empty() {
        format!("case {id}: {}", case.title)
    } else {
        format!("case {id} ({}): {}", case.reference, case.title)
    };
    let reason: String = reason.chars().take(500).collect();
    let mut holds = Vec::new();
    for c in &cameras {
        holds.push(
            index
                .add_hold(cams.id(c)?, start_us, end_us, &reason, user, now_us)?
                .id,
        );
    }
    let mut added = None;
    let case = index
        .update_case(id, |c| {
            let item = CaseItem {
                n: c.next_item,
                source: source.clone(),
                cameras: cameras.clone(),
                start_us,
                end_us,
                note: note.clone(),
                holds: holds.clone(),
                added_by: user.to_owned(),
                added_us: now_us,
            };
            c.next_item += 1;
            c.items.push(item.clone());
            c.updated_us = now_us;
            added = Some(item);
            Ok::<_, QueryError>(())
        })?
        .ok_or_else(|| QueryError::NotFound(format!("no case {id}")))?;
    Ok((case, added.expect("set by the update")))
}

/// Removes item `n` from case `id` (its holds stay: only an admin releases a hold).
/// Returns the case and the removed item. Errors: no such case or item (`NotFound`).
pub fn remove_item(
    index: &Index,
    id: u64,
    n: u32,
    now_us: i64,
) -> Result<(Case, CaseItem), QueryError> {
    let mut removed = None;
    let case = index
        .update_case(id, |c| {
            let i = (c.items.iter().position(|it| it.n == n))
                .ok_or_else(|| QueryError::NotFound(format!("case {id} has no item {n}")))?;
            removed = Some(c.items.remove(i));
            c.updated_us = now_us;
            Ok::<_, QueryError>(())
        })?
        .ok_or_else(|| QueryError::NotFound(format!("no case {id}")))?;
    Ok((case, removed.expect("set by the update")))
}

#[cfg(test)]
mod tests {
    use super::check_text;

    /// Text that reads as it is written passes, in any script and with emoji (their
    /// variation selector included); text with a character that prints as nothing or
    /// turns the text around is refused, naming it.
    #[test]
    fn invisible_and_direction_changing_characters_are_refused() {
        for ok in [
            "Pallet missing",
            "Ærø Lagerhalle",
            "مرحبا שלום",
            "监控录像 🎥",
            "❤\u{FE0F} ok",
        ] {
            assert!(check_text(ok, "t", 100, true, false).is_ok(), "{ok:?}");
        }
        for c in [
            '\u{202E}',
            '\u{200B}',
            '\u{00AD}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{3164}',
            '\u{2800}',
            '\u{FFF9}',
            '\u{110BD}',
            '\u{1D173}',
            '\u{E0041}',
            '\u{0600}',
        ] {
            let e = check_text(&format!("a{c}b"), "t", 100, true, false).unwrap_err();
            assert!(
                e.to_string().contains(&format!("U+{:04X}", c as u32)),
                "{e}"
            );
        }
    }
}
