//! Request counts and latency histograms by route, rendered in the Prometheus text format.
//! Routes are the matched patterns (`/clients/{client_id}`), never raw paths, so ids and tokens
//! never become label values.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

#[derive(Default)]
struct Series {
    count: u64,
    sum_seconds: f64,
    buckets: [u64; BUCKETS.len()],
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        // Clients choose methods freely; only the standard ones become label values.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "OTHER",
        };
        let seconds = elapsed.as_secs_f64();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let entry = series
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        entry.count += 1;
        entry.sum_seconds += seconds;
        for (bucket, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP siteward_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE siteward_http_requests_total counter\n");
        for ((method, route, status), s) in series.iter() {
            let _ = writeln!(
                out,
                "siteward_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str("# HELP siteward_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE siteward_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(&str, &str), Series> = BTreeMap::new();
        for ((method, route, _), s) in series.iter() {
            let merged = by_route.entry((method, route)).or_default();
            merged.count += s.count;
            merged.sum_seconds += s.sum_seconds;
            for (m, b) in merged.buckets.iter_mut().zip(s.buckets) {
                *m += b;
            }
        }
        for ((method, route), s) in by_route {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            for (bound, count) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "siteward_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "siteward_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "siteward_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "siteward_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_are_rendered_per_route() {
        let metrics = Metrics::default();
        metrics.observe("GET", "/clients/{client_id}", 200, Duration::from_millis(3));
        metrics.observe(
            "GET",
            "/clients/{client_id}",
            404,
            Duration::from_millis(30),
        );
        let text = metrics.render();
        assert!(text.contains(
            "siteward_http_requests_total{method=\"GET\",route=\"/clients/{client_id}\",status=\"404\"} 1"
        ));
        assert!(text.contains(
            "siteward_http_request_duration_seconds_bucket{method=\"GET\",route=\"/clients/{client_id}\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "siteward_http_request_duration_seconds_count{method=\"GET\",route=\"/clients/{client_id}\"} 2"
        ));
    }
}
