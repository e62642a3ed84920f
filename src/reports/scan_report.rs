//! The self-contained `report.html` of one scan: a summary a non-engineer can read at the top, then
//! the detail tables. Screenshots are embedded, nothing loads from anywhere, and every captured
//! string is escaped (askama escapes by default; the page's CSP forbids scripts regardless).

use std::collections::BTreeMap;

use askama::Template;
use base64::Engine;
use scanner::snapshot::{LimitHit, Party, Script, Snapshot};

#[derive(Template)]
#[template(path = "report.html")]
struct ScanReportPage<'a> {
    s: &'a Snapshot,
    summary: Summary,
    hosts: Vec<HostRow>,
    scripts: Vec<ScriptRow>,
    limits: Vec<String>,
    viewport_data_uri: String,
    full_page_data_uri: String,
}

struct Summary {
    third_party_hosts: usize,
    cookies: usize,
    third_party_cookies: usize,
    scripts: usize,
    third_party_scripts: usize,
    blocked: usize,
    errors: usize,
    requests: usize,
}

struct HostRow {
    host: String,
    requests: usize,
    types: String,
    /// "Advertising (DoubleClick)" when the tracker list names the host.
    listed_as: Option<String>,
}

struct ScriptRow {
    inline: bool,
    label: String,
    third: bool,
    size: u64,
    sha256: String,
}

/// Renders the report of `snapshot` with its two screenshots embedded.
pub fn render_scan_report(
    snapshot: &Snapshot,
    viewport_png: &[u8],
    full_page_png: &[u8],
) -> Result<String, askama::Error> {
    let scripts: Vec<ScriptRow> = snapshot
        .scripts
        .iter()
        .map(|script| match script {
            Script::External {
                url,
                party,
                sha256,
                size_bytes,
                ..
            } => ScriptRow {
                inline: false,
                label: url.clone(),
                third: *party == Party::Third,
                size: *size_bytes,
                sha256: sha256.clone(),
            },
            Script::Inline {
                first_bytes,
                sha256,
                size_bytes,
                ..
            } => ScriptRow {
                inline: true,
                label: first_bytes.chars().take(80).collect(),
                third: false,
                size: *size_bytes,
                sha256: sha256.clone(),
            },
        })
        .collect();
    let mut by_host: BTreeMap<&str, (usize, Vec<&str>)> = BTreeMap::new();
    for request in snapshot.requests.iter().filter(|r| r.party == Party::Third) {
        let entry = by_host.entry(request.host.as_str()).or_default();
        entry.0 += 1;
        if !entry.1.contains(&request.resource_type.as_str()) {
            entry.1.push(request.resource_type.as_str());
        }
    }
    let hosts = by_host
        .into_iter()
        .map(|(host, (requests, types))| HostRow {
            host: host.to_owned(),
            requests,
            types: types.join(", "),
            listed_as: listed_as(snapshot, host),
        })
        .collect();
    let summary = Summary {
        third_party_hosts: snapshot.third_party_hosts.len(),
        cookies: snapshot.cookies.len(),
        third_party_cookies: snapshot
            .cookies
            .iter()
            .filter(|c| c.party == Party::Third)
            .count(),
        scripts: scripts.len(),
        third_party_scripts: scripts.iter().filter(|s| s.third).count(),
        blocked: snapshot.blocked.len(),
        errors: snapshot.console_errors.len(),
        requests: snapshot.requests.len(),
    };
    let page = ScanReportPage {
        s: snapshot,
        summary,
        hosts,
        scripts,
        limits: snapshot.limits_hit.iter().map(LimitHit::describe).collect(),
        viewport_data_uri: png_data_uri(viewport_png),
        full_page_data_uri: png_data_uri(full_page_png),
    };
    page.render()
}

/// What the lists say of `host`: the tracker list's category and company, else the filter list
/// that named one of its requests.
fn listed_as(snapshot: &Snapshot, host: &str) -> Option<String> {
    if let Some(listed) = snapshot.listed_hosts.iter().find(|l| l.host == host) {
        return Some(format!("{} ({})", listed.category, listed.entity));
    }
    let hit = snapshot
        .requests
        .iter()
        .filter(|r| r.host == host)
        .find_map(|r| r.listed.as_ref())?;
    Some(match hit.list.as_str() {
        "easyprivacy" => "Tracking (EasyPrivacy)".to_owned(),
        "easylist" => "Advertising (EasyList)".to_owned(),
        other => other.to_owned(),
    })
}

fn png_data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}
