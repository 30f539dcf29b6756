//! Unit tests of the index: key layouts, migrations, reopening after errors, the disk reserve.

use super::*;

fn rec(cam: u32, start: i64, end: i64) -> SegmentRecord {
    SegmentRecord::for_test(cam, format!("c{cam}/{start}.mp4"), start, end)
}

#[test]
fn key_order_is_time_order() {
    let a = segment_key(1, -5);
    let b = segment_key(1, 3);
    let c = segment_key(2, -10);
    assert!(a < b && b < c);
    assert_eq!(decode_segment_key(&b), Some((1, 3)));
}

#[test]
fn overlap_query() {
    let ix = Index::temporary().unwrap();
    let ops: Vec<Op> = (0..10)
        .map(|i| Op::PutSegment(rec(1, i * 100, i * 100 + 90)))
        .chain([Op::PutSegment(rec(2, 150, 250))])
        .collect();
    ix.commit(&ops).unwrap();
    let got: Vec<i64> = ix
        .segments_overlapping(1, 195, 420)
        .unwrap()
        .iter()
        .map(|r| r.start_us)
        .collect();
    assert_eq!(got, vec![200, 300, 400]);
    let got: Vec<i64> = ix
        .segments_overlapping(1, 150, 250)
        .unwrap()
        .iter()
        .map(|r| r.start_us)
        .collect();
    assert_eq!(got, vec![100, 200]);
    assert_eq!(ix.segments_overlapping(1, 1000, 2000).unwrap().len(), 0);
    assert_eq!(ix.segments_overlapping(2, 0, 1000).unwrap().len(), 1);
}

#[test]
fn camera_ids_are_stable() {
    let ix = Index::temporary().unwrap();
    let a = ix.camera_id("a").unwrap();
    let b = ix.camera_id("b").unwrap();
    assert_ne!(a, b);
    assert_eq!(ix.camera_id("a").unwrap(), a);
}

#[test]
fn delete_goes_through_garbage() {
    let ix = Index::temporary().unwrap();
    ix.commit(&[Op::PutSegment(rec(1, 0, 90))]).unwrap();
    ix.commit(&[Op::DeleteSegment {
        camera_id: 1,
        start_us: 0,
        file: "c1/0.mp4".into(),
    }])
    .unwrap();
    assert!(ix.get_segment(1, 0).unwrap().is_none());
    assert_eq!(ix.garbage().unwrap(), vec!["c1/0.mp4".to_string()]);
    ix.commit(&[Op::ForgetGarbage("c1/0.mp4".into())]).unwrap();
    assert!(ix.garbage().unwrap().is_empty());
}

/// An index of a newer schema (or a damaged version) is refused with a clear error,
/// never read as if it were this one.
#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sled");
    let ix = Index::open(&path).unwrap();
    for v in [SCHEMA_VERSION + 1, 0] {
        ix.trees()
            .unwrap()
            .meta
            .insert(META_SCHEMA, &v.to_be_bytes())
            .unwrap();
        ix.flush().unwrap();
        let e = reopen_elsewhere(&ix, &path);
        assert!(
            matches!(e, IndexError::Schema { found } if found == v),
            "{e}"
        );
        assert!(e.to_string().contains("not supported"), "{e}");
    }
}

/// Opens the store at `path` while `ix` (the only handle) is closed for the moment.
fn reopen_elsewhere(ix: &Index, path: &Path) -> IndexError {
    let held = ix.shared.current.write().unwrap().take();
    drop(held);
    let e = Index::open(path).err().expect("opened");
    *ix.shared.current.write().unwrap() = Some(Arc::new(Index::open_trees_unchecked(path)));
    e
}

/// A write made before a reopen is never taken for durable, even if its ticket is
/// taken after the reopen and a flush of the new generation follows; a write after
/// the reopen becomes durable with the next flush.
#[test]
fn a_write_across_a_reopen_is_never_taken_for_durable() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::open(&dir.path().join("index.sled")).unwrap();
    let g = ix.generation();
    ix.put_thumbnail(1, b"x").unwrap();
    ix.force_reopen();
    let t = ix.ticket(g);
    ix.flush().unwrap();
    assert!(!ix.is_durable(&t) && ix.is_lost(&t));
    let g = ix.generation();
    ix.put_thumbnail(2, b"y").unwrap();
    let t = ix.ticket(g);
    assert!(!ix.is_durable(&t) && !ix.is_lost(&t));
    ix.flush().unwrap();
    assert!(ix.is_durable(&t));
}
