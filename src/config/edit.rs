//! Changing the config file from the console (the zone and mask editor): one camera's
//! `[[cameras.zones]]` and `[[cameras.masks]]` read and rewritten with `toml_edit`, so
//! that everything else in the file (comments, order, formatting, the other cameras)
//! stays as the person who wrote it left it; a zone kept by name keeps its table (and
//! the comments before it). The caller validates the new text with [`super::Config::parse`]
//! before [`write_atomically`] replaces the file.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

/// A zone as the editor shows and sends it (the keys of `[[cameras.zones]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneEdit {
    pub name: String,
    /// Corners, normalised 0..1 (x right, y down).
    pub polygon: Vec<[f64; 2]>,
    /// Motion counts in the zone only if it covers this fraction of the image...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_area: Option<f64>,
    /// ... and this fraction of the zone (the zone's sensitivity: smaller is more
    /// sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_fraction: Option<f64>,
    /// The name of the `[[schedules]]` entry that arms the zone's alerts (always armed
    /// without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
}

/// One camera's zones and masks as written in the file, with the schedules that exist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraZones {
    pub zones: Vec<ZoneEdit>,
    pub masks: Vec<Vec<[f64; 2]>>,
    /// Names of the file's `[[schedules]]`.
    pub schedules: Vec<String>,
}

fn parse(text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|e| format!("the config file does not parse: {e}"))
}

fn camera_table<'a>(doc: &'a mut DocumentMut, camera: &str) -> Result<&'a mut Table, String> {
    let cams = (doc
        .get_mut("cameras")
        .and_then(Item::as_array_of_tables_mut))
    .ok_or("the config file has no [[cameras]]")?;
    cams.iter_mut()
        .find(|t| t.get("name").and_then(Item::as_str) == Some(camera))
        .ok_or_else(|| format!("no camera {camera:?} in the config file"))
}

fn polygon_of(item: Option<&Item>) -> Vec<[f64; 2]> {
    let num = |v: &Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    (item.and_then(Item::as_array).into_iter().flatten())
        .filter_map(|p| {
            let p = p.as_array()?;
            Some([num(p.get(0)?)?, num(p.get(1)?)?])
        })
        .collect()
}

fn float_of(t: &Table, key: &str) -> Option<f64> {
    let v = t.get(key)?.as_value()?;
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

/// The zones and masks of `camera` in the config text. Errors: the text does not parse,
/// or has no such camera.
pub fn camera_zones(text: &str, camera: &str) -> Result<CameraZones, String> {
    let mut doc = parse(text)?;
    let schedules = (doc
        .get("schedules")
        .and_then(Item::as_array_of_tables)
        .into_iter())
    .flat_map(|a| a.iter())
    .filter_map(|t| t.get("name").and_then(Item::as_str).map(str::to_owned))
    .collect();
    let cam = camera_table(&mut doc, camera)?;
    let tables = |key: &str| -> Vec<Table> {
        (cam.get(key).and_then(Item::as_array_of_tables).into_iter())
            .flat_map(|a| a.iter().cloned())
            .collect()
    };
    let zones = tables("zones")
        .iter()
        .map(|t| ZoneEdit {
            name: t
                .get("name")
                .and_then(Item::as_str)
                .unwrap_or("")
                .to_owned(),
            polygon: polygon_of(t.get("polygon")),
            min_area: float_of(t, "min_area"),
            min_fraction: float_of(t, "min_fraction"),
            arm: t.get("arm").and_then(Item::as_str).map(str::to_owned),
        })
        .collect();
    let masks = tables("masks")
        .iter()
        .map(|t| polygon_of(t.get("polygon")))
        .collect();
    Ok(CameraZones {
        zones,
        masks,
        schedules,
    })
}

/// A polygon as an inline TOML array of pairs, rounded to 4 decimals (a tenth of a
/// pixel at 4K).
fn polygon_value(p: &[[f64; 2]]) -> Value {
    let round = |v: f64| (v * 10_000.0).round() / 10_000.0;
    let mut a = Array::new();
    for [x, y] in p {
        let mut pair = Array::new();
        pair.push(round(*x));
        pair.push(round(*y));
        a.push(pair);
    }
    Value::Array(a)
}

/// Sets `key` to `v` (removes it for None). An existing value keeps its decor (the
/// comment after it) and, if equal, its text.
fn set_or_remove(t: &mut Table, key: &str, v: Option<Value>) {
    match (v, t.get_mut(key).and_then(Item::as_value_mut)) {
        (Some(v), Some(old)) => {
            let mut bare = old.clone();
            bare.decor_mut().clear();
            if bare.to_string() != v.to_string() {
                let decor = old.decor().clone();
                *old = v;
                *old.decor_mut() = decor;
            }
        }
        (Some(v), None) => {
            t.insert(key, Item::Value(v));
        }
        (None, _) => {
            t.remove(key);
        }
    }
}

/// The config text with `camera`'s zones and masks replaced. A zone whose name was in
/// the file keeps its table (its comments and any other keys); new zones and masks are
/// appended; zones and masks not given are removed. Errors: the text does not parse, or
/// has no such camera. The result still has to be validated.
pub fn set_camera_zones(
    text: &str,
    camera: &str,
    zones: &[ZoneEdit],
    masks: &[Vec<[f64; 2]>],
) -> Result<String, String> {
    let mut doc = parse(text)?;
    let cam = camera_table(&mut doc, camera)?;
    let old: Vec<Table> = (cam
        .get("zones")
        .and_then(Item::as_array_of_tables)
        .into_iter())
    .flat_map(|a| a.iter().cloned())
    .collect();
    let mut new_zones = ArrayOfTables::new();
    for z in zones {
        let mut t = (old.iter())
            .find(|t| t.get("name").and_then(Item::as_str) == Some(z.name.as_str()))
            .cloned()
            .unwrap_or_else(|| {
                let mut t = Table::new();
                t.insert("name", Item::Value(z.name.as_str().into()));
                t
            });
        set_or_remove(&mut t, "polygon", Some(polygon_value(&z.polygon)));
        set_or_remove(&mut t, "min_area", z.min_area.map(Value::from));
        set_or_remove(&mut t, "min_fraction", z.min_fraction.map(Value::from));
        set_or_remove(&mut t, "arm", z.arm.as_deref().map(Value::from));
        new_zones.push(t);
    }
    let old_masks: Vec<Table> = (cam
        .get("masks")
        .and_then(Item::as_array_of_tables)
        .into_iter())
    .flat_map(|a| a.iter().cloned())
    .collect();
    let mut new_masks = ArrayOfTables::new();
    for (i, m) in masks.iter().enumerate() {
        // Masks have no names: the n-th keeps the n-th table's comments.
        let mut t = old_masks.get(i).cloned().unwrap_or_default();
        set_or_remove(&mut t, "polygon", Some(polygon_value(m)));
        new_masks.push(t);
    }
    for (key, v) in [("zones", new_zones), ("masks", new_masks)] {
        if v.is_empty() {
            cam.remove(key);
        } else {
            cam.insert(key, Item::ArrayOfTables(v));
        }
    }
    Ok(doc.to_string())
}

/// Replaces `path` with `text` so that a crash leaves the old file or the new one, never
/// a mix: written to a temporary file beside it (same permissions), synced, renamed over
/// it, and the directory synced.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# The site's cameras.
[storage]
dir = "/var/lib/vigil" # where recordings go

[[schedules]]
name = "nights"
armed = ["Mon-Sun 22:00-06:00"]

[[cameras]]
name = "gate"
url = "rtsp://10.0.0.2/stream"

# The driveway: cars only.
[[cameras.zones]]
name = "drive"
polygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]
min_fraction = 0.05 # a car, not a cat

[[cameras.zones]]
name = "path"
polygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]

# The neighbour's window.
[[cameras.masks]]
polygon = [[0.8, 0.0], [1.0, 0.0], [1.0, 0.2]]

[[cameras]]
name = "yard" # the other one
url = "rtsp://10.0.0.3/stream"
"#;

    #[test]
    fn reads_a_cameras_zones_masks_and_the_schedules() {
        let z = camera_zones(TEXT, "gate").unwrap();
        assert_eq!(z.schedules, vec!["nights"]);
        assert_eq!(z.zones.len(), 2);
        assert_eq!(z.zones[0].name, "drive");
        assert_eq!(z.zones[0].min_fraction, Some(0.05));
        assert_eq!(z.zones[1].polygon, vec![[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]);
        assert_eq!(z.masks, vec![vec![[0.8, 0.0], [1.0, 0.0], [1.0, 0.2]]]);
        assert!(camera_zones(TEXT, "yard").unwrap().zones.is_empty());
        assert!(
            camera_zones(TEXT, "nope")
                .unwrap_err()
                .contains("no camera")
        );
        assert!(camera_zones("[[cameras]\n", "gate").is_err());
    }

    #[test]
    fn rewrites_one_cameras_zones_and_keeps_everything_else() {
        let zones = vec![
            ZoneEdit {
                name: "drive".into(),
                polygon: vec![[0.1, 0.6], [0.9, 0.6], [0.9, 1.0]],
                min_area: None,
                min_fraction: Some(0.1),
                arm: Some("nights".into()),
            },
            ZoneEdit {
                name: "porch".into(),
                polygon: vec![[0.2, 0.2], [0.3, 0.2], [0.3, 0.333333333]],
                min_area: Some(0.001),
                min_fraction: None,
                arm: None,
            },
        ];
        let out = set_camera_zones(TEXT, "gate", &zones, &[]).unwrap();
        // Comments, the other sections and the other camera are untouched.
        for kept in [
            "# The site's cameras.",
            "dir = \"/var/lib/vigil\" # where recordings go",
            "# The driveway: cars only.",
            "name = \"yard\" # the other one",
            "armed = [\"Mon-Sun 22:00-06:00\"]",
        ] {
            assert!(out.contains(kept), "lost {kept:?}:\n{out}");
        }
        // "drive" changed in place, "path" removed, "porch" added, the mask removed.
        let back = camera_zones(&out, "gate").unwrap();
        assert_eq!(back.zones, {
            let mut z = zones.clone();
            z[1].polygon[2][1] = 0.3333;
            z
        });
        assert!(back.masks.is_empty());
        assert!(
            !out.contains("\"path\"") && !out.contains("# The neighbour's window."),
            "{out}"
        );
        // The result is a valid config.
        crate::config::Config::parse(Path::new("/etc/vigil.toml"), &out).unwrap();
        // Unchanged input gives the same text back.
        let same = camera_zones(TEXT, "gate").unwrap();
        assert_eq!(
            set_camera_zones(TEXT, "gate", &same.zones, &same.masks).unwrap(),
            TEXT
        );
    }

    #[test]
    fn writes_atomically_keeping_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vigil.toml");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&p, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a temporary file is left"
        );
    }
}
