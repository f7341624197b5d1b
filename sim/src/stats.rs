//! Small statistics over per-node measurements.

use crate::engine::Ms;

/// The time by which `share` of `population` nodes had it (`Ms::MAX` in `at` means
/// never), counted from `start`; `None` when fewer ever did.
pub fn time_to(at: &[Ms], population: usize, share: f64, start: Ms) -> Option<Ms> {
    let mut times: Vec<Ms> = at.iter().copied().filter(|t| *t != Ms::MAX).collect();
    times.sort_unstable();
    let need = ((population as f64 * share).ceil() as usize).max(1);
    times.get(need - 1).map(|t| t.saturating_sub(start))
}

/// Like [`time_to`] for several shares at once.
pub fn times_to(at: &[Ms], population: usize, shares: &[f64], start: Ms) -> Vec<Option<Ms>> {
    let mut times: Vec<Ms> = at.iter().copied().filter(|t| *t != Ms::MAX).collect();
    times.sort_unstable();
    shares
        .iter()
        .map(|s| {
            let need = ((population as f64 * s).ceil() as usize).max(1);
            times.get(need - 1).map(|t| t.saturating_sub(start))
        })
        .collect()
}

/// The smallest hop count by which `share` of `population` nodes had it.
pub fn hops_to(hops: &[u8], reached: &[Ms], population: usize, share: f64) -> Option<u8> {
    let mut h: Vec<u8> = hops
        .iter()
        .zip(reached)
        .filter(|(_, t)| **t != Ms::MAX)
        .map(|(h, _)| *h)
        .collect();
    h.sort_unstable();
    let need = ((population as f64 * share).ceil() as usize).max(1);
    h.get(need - 1).copied()
}

/// The share of `population` reached over time: (ms since start, share), one point per
/// 1/`points` of those reached (so the fast start and the slow tail both show, on a
/// linear or a log time axis).
pub fn curve(at: &[Ms], population: usize, start: Ms, points: usize) -> Vec<(f64, f64)> {
    let mut times: Vec<Ms> = at.iter().copied().filter(|t| *t != Ms::MAX).collect();
    times.sort_unstable();
    if times.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(points + 1);
    for k in 0..=points {
        let i = (k * (times.len() - 1)) / points.max(1);
        let p = (
            (times[i].saturating_sub(start)) as f64,
            (i + 1) as f64 / population as f64,
        );
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

/// Mean and standard error of 0/1 outcomes.
pub fn proportion(hits: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let p = hits as f64 / n as f64;
    (p, (p * (1.0 - p) / n as f64).sqrt())
}

/// Human form of a duration: ms, s, min, h or days.
pub fn fmt_ms(ms: Ms) -> String {
    let s = ms as f64 / 1000.0;
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 3.0 * 86400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86400.0)
    }
}

pub fn fmt_opt(ms: Option<Ms>) -> String {
    ms.map_or("not reached".into(), fmt_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_a_population() {
        let at = [5, 1, Ms::MAX, 3, 2];
        assert_eq!(time_to(&at, 5, 0.5, 0), Some(3));
        assert_eq!(time_to(&at, 5, 0.8, 0), Some(5));
        assert_eq!(time_to(&at, 5, 1.0, 0), None);
        assert_eq!(times_to(&at, 4, &[0.5, 1.0], 1), vec![Some(1), Some(4)]);
        let hops = [2, 0, 9, 1, 1];
        assert_eq!(hops_to(&hops, &at, 5, 0.6), Some(1));
        assert_eq!(hops_to(&hops, &at, 5, 0.8), Some(2));
        assert_eq!(fmt_ms(90_000), "90.0 s");
        assert_eq!(fmt_ms(5 * 86_400_000), "5.0 days");
        let c = curve(&at, 5, 0, 4);
        assert_eq!(c.first(), Some(&(1.0, 0.2)));
        assert_eq!(c.last(), Some(&(5.0, 0.8)));
    }
}
