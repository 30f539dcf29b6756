//! Arming and alerts of one camera's analysis: which starts of an event are announced
//! (the camera as a whole, each zone as it joins), under the arming schedules at the time
//! (`schedule`), and an end alert for exactly what was announced.
//!
//! Pure bookkeeping over an [`AlertHub`]: no I/O, no threads, unit-tested here.

use crate::alerts::{Alert, AlertHub, AlertKind};
use crate::schedule::Arming;

/// What an open event's start alerts went out for.
#[derive(Debug, Default, PartialEq)]
pub struct Announced {
    /// A start alert went out for the camera as a whole.
    pub camera: bool,
    /// ... and for these zones, in the order they joined.
    pub zones: Vec<String>,
}

/// One camera's alerting state: the open event's id and what its start announced.
pub struct Alerting {
    camera: String,
    zones: Vec<String>,
    arm: Arming,
    hub: AlertHub,
    /// What was disarmed when its motion began is not announced.
    open: Option<(u64, Announced)>,
}

impl Alerting {
    /// `zones`: the camera's zone names, in the detector's order.
    pub fn new(camera: &str, zones: Vec<String>, arm: Arming, hub: AlertHub) -> Alerting {
        Alerting {
            camera: camera.to_owned(),
            zones,
            arm,
            hub,
            open: None,
        }
    }

    /// New zones (in the detector's new order) and their arming; what an open event
    /// announced stays announced (its end alerts name the zones by name).
    pub fn set_zones(&mut self, zones: Vec<String>, arm: Arming) {
        self.zones = zones;
        self.arm = arm;
    }

    /// An event opened at `utc_us` (µs since the epoch) with id `id`: a start alert for
    /// the camera as a whole if it is armed now.
    pub fn opened(&mut self, id: u64, utc_us: i64, score: f32) {
        let camera = self.arm.camera_armed(utc_us);
        self.open = Some((
            id,
            Announced {
                camera,
                zones: Vec::new(),
            },
        ));
        if camera {
            let _ = self.hub.send(Alert::new(
                AlertKind::Start,
                &self.camera,
                None,
                id,
                utc_us,
                score,
            ));
        }
    }

    /// Zones (indices) joined the open event: a start alert for each one armed now.
    pub fn zones_joined(&mut self, zones: &[usize], utc_us: i64, score: f32) {
        for &z in zones {
            if !self.arm.zone_armed(z, utc_us) {
                continue;
            }
            let Some((id, announced)) = &mut self.open else {
                return;
            };
            let zone = self.zones[z].clone();
            let _ = self.hub.send(Alert::new(
                AlertKind::Start,
                &self.camera,
                Some(&zone),
                *id,
                utc_us,
                score,
            ));
            announced.zones.push(zone);
        }
    }

    /// The open event, taken as it closes: its id and what was announced.
    pub fn take_open(&mut self) -> Option<(u64, Announced)> {
        self.open.take()
    }

    /// An event closed at `end_us`: an end alert for each start that was announced.
    pub fn closed(&self, id: u64, announced: &Announced, end_us: i64, peak_score: f32) {
        let camera = announced.camera.then_some(None);
        for zone in (announced.zones.iter().map(|z| Some(z.as_str()))).chain(camera) {
            let _ = self.hub.send(Alert::new(
                AlertKind::End,
                &self.camera,
                zone,
                id,
                end_us,
                peak_score,
            ));
        }
    }

    /// Whether the camera is armed at `utc_us`, and the zones that are not (for status).
    pub fn armed_now(&self, utc_us: i64) -> (bool, Vec<String>) {
        let disarmed = (self.zones.iter().enumerate())
            .filter(|&(i, _)| !self.arm.zone_armed(i, utc_us))
            .map(|(_, z)| z.clone())
            .collect();
        (self.arm.camera_armed(utc_us), disarmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;
    use std::sync::Arc;

    fn alerts(
        rx: &mut tokio::sync::broadcast::Receiver<Alert>,
    ) -> Vec<(AlertKind, Option<String>)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|a| (a.kind, a.zone))
            .collect()
    }

    /// Never armed: a schedule armed on no day.
    fn never() -> Option<Arc<Schedule>> {
        Some(Arc::new(
            Schedule::parse("never", Some("UTC"), &[], false).unwrap(),
        ))
    }

    #[test]
    fn end_alerts_match_what_was_announced() {
        let hub = crate::alerts::hub();
        let mut rx = hub.subscribe();
        let arm = Arming {
            camera: None,
            zones: vec![None, never(), None],
        };
        let zones = vec!["door".to_owned(), "yard".to_owned(), "gate".to_owned()];
        let mut a = Alerting::new("cam", zones, arm, hub);
        a.zones_joined(&[0], 1, 0.1); // nothing open: nothing announced
        a.opened(7, 1_000, 0.2);
        a.zones_joined(&[0, 1], 1_000, 0.2);
        a.zones_joined(&[2], 2_000, 0.3);
        let start = alerts(&mut rx);
        assert_eq!(
            start,
            vec![
                (AlertKind::Start, None),
                (AlertKind::Start, Some("door".into())),
                (AlertKind::Start, Some("gate".into())),
            ]
        );
        let (id, announced) = a.take_open().unwrap();
        assert_eq!(id, 7);
        a.closed(id, &announced, 3_000, 0.3);
        let end = alerts(&mut rx);
        assert_eq!(
            end,
            vec![
                (AlertKind::End, Some("door".into())),
                (AlertKind::End, Some("gate".into())),
                (AlertKind::End, None),
            ]
        );
        assert!(a.take_open().is_none());
        assert_eq!(a.armed_now(0), (true, vec!["yard".to_owned()]));
    }

    #[test]
    fn a_disarmed_camera_announces_only_armed_zones() {
        let hub = crate::alerts::hub();
        let mut rx = hub.subscribe();
        let arm = Arming {
            camera: never(),
            zones: vec![None],
        };
        let mut a = Alerting::new("cam", vec!["door".into()], arm, hub);
        a.opened(1, 0, 0.5);
        a.zones_joined(&[0], 0, 0.5);
        let (id, announced) = a.take_open().unwrap();
        a.closed(id, &announced, 10, 0.5);
        assert_eq!(
            alerts(&mut rx),
            vec![
                (AlertKind::Start, Some("door".into())),
                (AlertKind::End, Some("door".into())),
            ]
        );
        assert!(!a.armed_now(0).0);
    }
}
