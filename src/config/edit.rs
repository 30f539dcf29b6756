//! Changing the config file from the console (the zone and mask editor): one camera's
//! `[[cameras.zones]]` and `[[cameras.masks]]` read and rewritten with `toml_edit`, so
//! that everything else in the file (comments, order, formatting, the other cameras)
//! stays as the person who wrote it left it; a zone kept by name keeps its table (and
//! the comments before it). The caller validates the new text with [`super::Config::parse`]
//! before [`prepare`] and [`Prepared::commit`] replace the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

/// A zone as the editor shows and sends it (the keys of `[[cameras.zones]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneEdit {
    pub name: String,
    /// The zone's name as read, when the editor renamed it: its table (and the comments
    /// above it) is kept under the new name. Never written to the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub was: Option<String>,
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

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>()
        .map_err(|e| EditError::Unsupported(format!("the config file does not parse: {e}")))
}

/// Why the file cannot be edited.
#[derive(Debug, PartialEq)]
pub enum EditError {
    /// No such camera in the file.
    NoCamera(String),
    /// The file does not parse, or writes the camera's zones or masks in a form the
    /// editor does not rewrite (inline arrays of tables): editing them could lose some.
    Unsupported(String),
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::NoCamera(m) | EditError::Unsupported(m) => f.write_str(m),
        }
    }
}

fn camera_table<'a>(doc: &'a mut DocumentMut, camera: &str) -> Result<&'a mut Table, EditError> {
    let cams = (doc
        .get_mut("cameras")
        .and_then(Item::as_array_of_tables_mut))
    .ok_or_else(|| EditError::Unsupported("the config file has no [[cameras]] tables".into()))?;
    let cam = cams
        .iter_mut()
        .find(|t| t.get("name").and_then(Item::as_str) == Some(camera))
        .ok_or_else(|| EditError::NoCamera(format!("no camera {camera:?} in the config file")))?;
    for key in ["zones", "masks"] {
        if cam.get(key).is_some_and(|i| !i.is_array_of_tables()) {
            return Err(EditError::Unsupported(format!(
                "camera {camera:?} writes its {key} as an inline array; the zone editor \
                 only edits [[cameras.{key}]] tables (rewrite them so, or edit the file)"
            )));
        }
    }
    Ok(cam)
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
pub fn camera_zones(text: &str, camera: &str) -> Result<CameraZones, EditError> {
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
            was: None,
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
) -> Result<String, EditError> {
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
        let was = z.was.as_deref().unwrap_or(&z.name);
        let mut t = (old.iter())
            .find(|t| t.get("name").and_then(Item::as_str) == Some(was))
            .cloned()
            .unwrap_or_default();
        if t.get("name").and_then(Item::as_str) != Some(z.name.as_str()) {
            // New, or renamed: the value replaced, its comment kept.
            match t.get_mut("name").and_then(Item::as_value_mut) {
                Some(v) => {
                    let decor = v.decor().clone();
                    *v = z.name.as_str().into();
                    *v.decor_mut() = decor;
                }
                None => {
                    t.insert("name", Item::Value(z.name.as_str().into()));
                }
            }
        }
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

/// A new version of a file written beside it and synced, not yet in its place: dropped,
/// it is removed; [`Prepared::commit`] renames it over the file. Splitting the two lets a
/// caller record the change (the audit log) only once the bytes are safely on disk, and
/// make the change only once it is recorded.
pub struct Prepared {
    tmp: PathBuf,
    target: PathBuf,
}

/// Writes `text` as the next version of `path` (a symlink is followed: its target is
/// replaced): a new file beside it, created exclusively with the file's permissions
/// (0600 if it has none yet), written and synced.
pub fn prepare(path: &Path, text: &str) -> std::io::Result<Prepared> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mode = std::fs::metadata(&target).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let tmp = dir.join(format!(
        ".{name}.{}.{:08x}.tmp",
        std::process::id(),
        fastrand::u32(..)
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let p = Prepared { tmp, target };
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(p)
}

impl Prepared {
    /// Renames the new version over the file and syncs the directory: a crash leaves the
    /// old file or the new one, never a mix.
    pub fn commit(self) -> std::io::Result<()> {
        std::fs::rename(&self.tmp, &self.target)?;
        let dir = self.target.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp); // gone already after a commit
    }
}

/// [`prepare`] and [`Prepared::commit`] in one.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    prepare(path, text)?.commit()
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
        assert!(matches!(
            camera_zones(TEXT, "nope"),
            Err(EditError::NoCamera(_))
        ));
        // Zones as an inline array: not edited (rewriting them could lose some).
        let inline = TEXT.replace(
            "name = \"yard\" # the other one",
            "name = \"yard\"\nzones = [{ name = \"a\", polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]] }]",
        );
        assert!(matches!(
            camera_zones(&inline, "yard"),
            Err(EditError::Unsupported(_))
        ));
        assert!(matches!(
            set_camera_zones(&inline, "yard", &[], &[]),
            Err(EditError::Unsupported(_))
        ));
        assert!(camera_zones("[[cameras]\n", "gate").is_err());
    }

    #[test]
    fn rewrites_one_cameras_zones_and_keeps_everything_else() {
        let zones = vec![
            ZoneEdit {
                was: None,
                name: "drive".into(),
                polygon: vec![[0.1, 0.6], [0.9, 0.6], [0.9, 1.0]],
                min_area: None,
                min_fraction: Some(0.1),
                arm: Some("nights".into()),
            },
            ZoneEdit {
                was: None,
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
        // A renamed zone keeps its table: the comment above it and the one on its line.
        let mut renamed = camera_zones(TEXT, "gate").unwrap().zones;
        renamed[0].was = Some("drive".into());
        renamed[0].name = "driveway".into();
        let out = set_camera_zones(TEXT, "gate", &renamed, &[]).unwrap();
        assert!(
            out.contains("# The driveway: cars only.\n[[cameras.zones]]\nname = \"driveway\"\n")
                && out.contains("min_fraction = 0.05 # a car, not a cat")
                && !out.contains("\"drive\""),
            "{out}"
        );
        assert_eq!(
            camera_zones(&out, "gate").unwrap().zones[0].name,
            "driveway"
        );
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
        // Through a symlink: the file it points to is replaced, the link kept.
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        write_atomically(&link, "newer").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "newer");
        // Prepared but dropped: nothing changes, nothing is left.
        drop(prepare(&p, "never").unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "newer");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
