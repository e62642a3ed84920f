//! The overview's pure parts: which clients come first, and the 30-day trend drawn as SVG from
//! numbers only (nothing a scanned site chose goes into it).

use serde::Serialize;

use super::queries::ClientOverview;

/// Days a trend covers.
pub const DAYS: usize = 30;

/// Changes and alerts per day, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Trend {
    /// The first day (UTC, `YYYY-MM-DD`).
    pub from: String,
    pub changes: Vec<u32>,
    pub alerts: Vec<u32>,
}

/// How much a client needs attention: compared field by field, larger first.
fn urgency(c: &ClientOverview) -> (i64, i64, i64, i64, i64, i64) {
    (
        c.open_alerts.critical,
        c.open_alerts.high,
        c.failing_scans as i64 + c.failed_checkouts as i64,
        c.overdue_targets as i64,
        c.open_alerts.medium,
        c.open_alerts.low,
    )
}

/// Worst first; clients that need nothing after, by name.
pub fn sort(clients: &mut [ClientOverview]) {
    clients.sort_by(|a, b| {
        urgency(b).cmp(&urgency(a)).then_with(|| {
            a.client_name
                .to_lowercase()
                .cmp(&b.client_name.to_lowercase())
        })
    });
}

/// A small bar chart of changes with the alerts as a line over it, as inline SVG.
pub fn svg(trend: &Trend) -> String {
    const W: f64 = 150.0;
    const H: f64 = 32.0;
    let days = trend.changes.len().max(1) as f64;
    let step = W / days;
    let top = |values: &[u32]| f64::from(values.iter().copied().max().unwrap_or(0).max(1));
    let (changes_max, alerts_max) = (top(&trend.changes), top(&trend.alerts));
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"trend\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\"><title>Changes (bars) and alerts (line) per day, last {} days</title>",
        trend.changes.len()
    );
    for (i, n) in trend.changes.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let h = (f64::from(*n) / changes_max * (H - 4.0)).max(1.0);
        out.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#9db4f0\"/>",
            i as f64 * step,
            H - h,
            (step - 1.0).max(1.0)
        ));
    }
    if trend.alerts.iter().any(|n| *n > 0) {
        let points: Vec<String> = trend
            .alerts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 * step + step / 2.0,
                    H - 2.0 - f64::from(*n) / alerts_max * (H - 4.0)
                )
            })
            .collect();
        out.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#b42318\" stroke-width=\"1.5\"/>",
            points.join(" ")
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overview::queries::AlertCounts;

    fn client(name: &str, critical: i64, high: i64, failing: usize) -> ClientOverview {
        ClientOverview {
            client_id: 1,
            client_name: name.into(),
            targets: vec![],
            open_alerts: AlertCounts {
                critical,
                high,
                medium: 0,
                low: 0,
            },
            failing_scans: failing,
            overdue_targets: 0,
            failed_checkouts: 0,
            needs_attention: false,
            trend: Trend::default(),
        }
    }

    #[test]
    fn clients_that_need_attention_come_first() {
        let mut clients = vec![
            client("Calm", 0, 0, 0),
            client("Failing", 0, 0, 2),
            client("Critical", 1, 0, 0),
            client("alpha calm", 0, 0, 0),
            client("High", 0, 3, 0),
        ];
        sort(&mut clients);
        let names: Vec<&str> = clients.iter().map(|c| c.client_name.as_str()).collect();
        assert_eq!(names, ["Critical", "High", "Failing", "alpha calm", "Calm"]);
    }

    #[test]
    fn the_trend_is_drawn_from_numbers_only() {
        let trend = Trend {
            from: "2026-11-06".into(),
            changes: vec![0, 2, 4],
            alerts: vec![0, 1, 0],
        };
        let svg = svg(&trend);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect").count(),
            2,
            "a bar per day with changes"
        );
        assert!(svg.contains("<polyline"));
        let quiet = svg_of_zeros();
        assert!(!quiet.contains("<rect") && !quiet.contains("<polyline"));
    }

    fn svg_of_zeros() -> String {
        svg(&Trend {
            from: String::new(),
            changes: vec![0; DAYS],
            alerts: vec![0; DAYS],
        })
    }
}
