//! Plane geometry of the polygons people draw (zones, masks, search regions), in
//! normalised image coordinates 0..1: whether a polygon crosses itself, whether its
//! corners are in a line.

/// The first two edges of a closed polygon that cross (edge `i` runs from point `i` to
/// point `i + 1`), other than neighbours meeting at their shared corner; `None` for a
/// simple polygon. O(n²) proper-intersection tests by orientation signs (de Berg et al.,
/// *Computational Geometry*, 3rd ed., §2.1); zones have a handful of corners, and the
/// `geo` crate's version would bring a large dependency tree for these few lines.
pub fn crossing_edges(pts: &[[f64; 2]]) -> Option<(usize, usize)> {
    let n = pts.len();
    let orient = |a: [f64; 2], b: [f64; 2], c: [f64; 2]| {
        let v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
        if v.abs() < 1e-12 {
            0
        } else {
            v.signum() as i32
        }
    };
    let on = |a: [f64; 2], b: [f64; 2], c: [f64; 2]| {
        c[0] >= a[0].min(b[0])
            && c[0] <= a[0].max(b[0])
            && c[1] >= a[1].min(b[1])
            && c[1] <= a[1].max(b[1])
    };
    let cross = |p1, p2, q1, q2| {
        let (d1, d2) = (orient(q1, q2, p1), orient(q1, q2, p2));
        let (d3, d4) = (orient(p1, p2, q1), orient(p1, p2, q2));
        (d1 * d2 < 0 && d3 * d4 < 0)
            || (d1 == 0 && on(q1, q2, p1))
            || (d2 == 0 && on(q1, q2, p2))
            || (d3 == 0 && on(p1, p2, q1))
            || (d4 == 0 && on(p1, p2, q2))
    };
    for i in 0..n {
        for j in i + 2..n {
            if i == 0 && j == n - 1 {
                continue; // neighbours through the closing edge
            }
            if cross(pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]) {
                return Some((i, j));
            }
        }
    }
    None
}

/// Whether every corner lies on the line through the first and the one farthest from it.
pub fn in_line(pts: &[[f64; 2]]) -> bool {
    let d = |q: &[f64; 2]| (q[0] - pts[0][0]).hypot(q[1] - pts[0][1]);
    let far = pts
        .iter()
        .max_by(|p, q| d(p).total_cmp(&d(q)))
        .unwrap_or(&pts[0]);
    pts.iter().all(|c| {
        ((far[0] - pts[0][0]) * (c[1] - pts[0][1]) - (far[1] - pts[0][1]) * (c[0] - pts[0][0]))
            .abs()
            < 1e-9
    })
}

#[cfg(test)]
mod tests {
    use super::crossing_edges;

    #[test]
    fn crossing_edges_finds_only_real_crossings() {
        let square = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]];
        assert_eq!(crossing_edges(&square), None);
        // Concave (an L) is fine.
        let l = [
            [0.1, 0.1],
            [0.5, 0.1],
            [0.5, 0.5],
            [0.9, 0.5],
            [0.9, 0.9],
            [0.1, 0.9],
        ];
        assert_eq!(crossing_edges(&l), None);
        // A bow tie: the first and third edges cross.
        let bow = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]];
        assert_eq!(crossing_edges(&bow), Some((0, 2)));
        // A corner dragged onto another edge touches it: refused too.
        let touch = [
            [0.1, 0.1],
            [0.9, 0.1],
            [0.5, 0.5],
            [0.9, 0.9],
            [0.1, 0.9],
            [0.5, 0.1],
        ];
        assert!(crossing_edges(&touch).is_some());
        // The closing edge crossing the second.
        let closing = [[0.1, 0.5], [0.9, 0.1], [0.9, 0.9], [0.5, 0.05]];
        assert!(crossing_edges(&closing).is_some());
    }
}
