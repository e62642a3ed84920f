//! One validation of a target's settings, shared by the dashboard form and the JSON API.

use serde::Deserialize;
use url::Url;

use scanner::crawl::{CrawlRules, MAX_PAGES_CEILING, Pattern};
use scanner::profile::{Device, VisitorProfile};

use super::schedule;
use crate::web::FieldErrors;

/// A new desktop target's viewport: the scanner's, as for the CLI.
pub const DEFAULT_VIEWPORT: (i32, i32) = {
    let (width, height) = Device::Desktop.default_viewport();
    (width as i32, height as i32)
};
/// A new target's quiet period: the scanner's default, as for the CLI.
pub const DEFAULT_WAIT_MS: i32 = scanner::DEFAULT_QUIET_PERIOD.as_millis() as i32;
/// A new target's minimum dwell after `load`: the scanner's default.
pub const DEFAULT_DWELL_MS: i32 = scanner::DEFAULT_MIN_DWELL.as_millis() as i32;
const MAX_URL_LENGTH: usize = 2048;

/// A target as submitted: every field optional, so the same type serves create and update.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetInput {
    /// A label for people; defaults to the URL's host.
    pub name: Option<String>,
    /// The page to scan: http or https, no user name or password.
    pub url: Option<String>,
    /// 320–3840.
    pub viewport_width: Option<i64>,
    /// 320–2160.
    pub viewport_height: Option<i64>,
    /// `none`, `accept` or `reject`: how the scan answers a cookie banner.
    pub consent_mode: Option<String>,
    /// Also capture the privacy, cookie and terms pages linked from the page.
    pub capture_policy_pages: Option<bool>,
    /// Quiet period before capture, 0–30000 ms: nothing new (request, script, frame, cookie
    /// write) for this long.
    pub wait_ms: Option<i64>,
    /// Least time waited after `load` before capture, 0–30000 ms (trackers injected by timers).
    pub dwell_ms: Option<i64>,
    /// `desktop` or `mobile`: the visitor's device (a phone's User-Agent, client hints and touch
    /// for `mobile`). A new mobile target gets a phone's viewport (412×915) unless it names one.
    pub device: Option<String>,
    /// The visitor's languages, most preferred first, comma-separated (`de-DE,de,en`): what
    /// `navigator.languages` and `Accept-Language` say. At most 8.
    pub languages: Option<String>,
    /// The IANA timezone the scanned pages see (`Europe/Paris`, `UTC`).
    pub timezone: Option<String>,
    /// Five-field cron expression in UTC (e.g. `0 6 * * *`); empty or null: no schedule.
    pub schedule: Option<String>,
    /// When compliance scans (first visit, reject all, accept all and GPC visits) run: a
    /// five-field cron expression in UTC; empty or null: only when asked for.
    pub compliance_schedule: Option<String>,
    /// Whether compliance scans include the Global Privacy Control visit (default true).
    pub compliance_gpc: Option<bool>,
    pub enabled: Option<bool>,
    /// `page`, `checkout` or `payment`: script changes on checkout and payment pages are
    /// critical alerts.
    pub page_kind: Option<String>,
    /// Percent of changed pixels (0–100) above which a screenshot counts as changed; default 1.
    pub visual_threshold: Option<f64>,
    /// CSS selectors whose text the page-text diff ignores (clocks, rotating ads); at most 50.
    pub ignore_selectors: Option<Vec<String>>,
    /// Rectangles (screenshot pixels) the visual diff ignores; at most 50.
    pub ignore_regions: Option<Vec<crate::diff::Rect>>,
    /// `page` (the default): the URL is one page, scanned; `site`: the site is crawled from the
    /// URL under `crawl`.
    pub kind: Option<String>,
    /// A site target's crawl rules; what is left out keeps its value (or the default).
    pub crawl: Option<CrawlInput>,
}

/// A site target's crawl rules as submitted.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrawlInput {
    /// Pages visited at most, the start page included (default 20; at most the organization's
    /// cap).
    pub max_pages: Option<i64>,
    /// Links followed at most this many clicks from the start page (default 3).
    pub max_depth: Option<i64>,
    /// Path patterns (`/blog/*`): when any is given, only pages matching one are visited.
    pub include: Option<Vec<String>>,
    /// Path patterns never visited (`/cart*`).
    pub exclude: Option<Vec<String>>,
    /// Also take pages from the sitemaps (`robots.txt`'s and `/sitemap.xml`; default true).
    pub sitemaps: Option<bool>,
    /// Pages visited at most per path template such as `/product/{slug}` (default 3).
    pub per_template: Option<i64>,
    /// Visit the pages in one browsing session, as a visitor would (default true); false gives
    /// each page a fresh one.
    pub one_session: Option<bool>,
    /// Leave out what the site's `robots.txt` disallows (default true).
    pub respect_robots: Option<bool>,
}

/// Valid settings, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetValues {
    pub name: String,
    pub url: String,
    pub viewport_width: i32,
    pub viewport_height: i32,
    pub consent_mode: String,
    pub capture_policy_pages: bool,
    pub wait_ms: i32,
    pub dwell_ms: i32,
    pub device: String,
    pub languages: String,
    pub timezone: String,
    pub schedule: Option<String>,
    pub compliance_schedule: Option<String>,
    pub compliance_gpc: bool,
    pub enabled: bool,
    pub page_kind: String,
    pub visual_threshold: f32,
    pub ignore_selectors: Vec<String>,
    pub ignore_regions: Vec<crate::diff::Rect>,
    /// Set for a site target.
    pub crawl_rules: Option<CrawlRules>,
}

impl TargetValues {
    fn defaults() -> TargetValues {
        TargetValues {
            name: String::new(),
            url: String::new(),
            viewport_width: DEFAULT_VIEWPORT.0,
            viewport_height: DEFAULT_VIEWPORT.1,
            consent_mode: "none".into(),
            capture_policy_pages: true,
            wait_ms: DEFAULT_WAIT_MS,
            dwell_ms: DEFAULT_DWELL_MS,
            device: Device::default().as_str().into(),
            languages: scanner::profile::DEFAULT_LANGUAGES.join(","),
            timezone: scanner::profile::DEFAULT_TIMEZONE.into(),
            schedule: None,
            compliance_schedule: None,
            compliance_gpc: true,
            enabled: true,
            page_kind: "page".into(),
            visual_threshold: 1.0,
            ignore_selectors: Vec::new(),
            ignore_regions: Vec::new(),
            crawl_rules: None,
        }
    }
}

/// Applies submitted crawl rules over `rules`, reporting bad fields under `crawl.*`.
fn read_crawl(input: &CrawlInput, rules: &mut CrawlRules, errors: &mut FieldErrors) {
    let mut count = |value: Option<i64>, field: &str, max: i64, into: &mut usize| {
        if let Some(value) = value {
            if (1..=max).contains(&value) {
                *into = value as usize;
            } else {
                errors.add(field, format!("must be between 1 and {max}"));
            }
        }
    };
    count(
        input.max_pages,
        "crawl.max_pages",
        MAX_PAGES_CEILING as i64,
        &mut rules.max_pages,
    );
    count(
        input.per_template,
        "crawl.per_template",
        1_000,
        &mut rules.per_template,
    );
    if let Some(depth) = input.max_depth {
        match u32::try_from(depth) {
            Ok(depth) if depth <= 20 => rules.max_depth = depth,
            _ => errors.add("crawl.max_depth", "must be between 0 and 20"),
        }
    }
    let mut patterns = |list: &Option<Vec<String>>, field: &str, into: &mut Vec<Pattern>| {
        let Some(list) = list else { return };
        let read: Result<Vec<Pattern>, _> = list
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| Pattern::try_from(p.to_owned()))
            .collect();
        match read {
            Ok(read) => *into = read,
            Err(error) => errors.add(field, error.to_string()),
        }
    };
    patterns(&input.include, "crawl.include", &mut rules.include);
    patterns(&input.exclude, "crawl.exclude", &mut rules.exclude);
    if let Some(sitemaps) = input.sitemaps {
        rules.sitemaps = sitemaps;
    }
    if let Some(one_session) = input.one_session {
        rules.one_session = one_session;
    }
    if let Some(respect) = input.respect_robots {
        rules.respect_robots = respect;
    }
    if let Err(error) = rules.validate(MAX_PAGES_CEILING) {
        errors.add("crawl", error.to_string());
    }
}

/// A payment page must be scanned at least weekly (PCI DSS 4.0 11.6.1): its schedule must fire
/// at least every seven days.
fn check_payment_cadence(schedule_text: Option<&str>, errors: &mut FieldErrors) {
    if errors.get("schedule").is_some() {
        return;
    }
    let weekly = schedule_text
        .and_then(schedule::longest_gap)
        .is_some_and(|gap| gap <= chrono::Duration::days(7));
    if !weekly {
        errors.add(
            "schedule",
            "a payment page must be scanned at least weekly (PCI DSS 11.6.1): set a schedule that fires at least every 7 days, e.g. `0 6 * * *`",
        );
    }
}

/// An optional schedule as typed: empty clears it.
fn read_schedule(text: &str, field: &str, into: &mut Option<String>, errors: &mut FieldErrors) {
    let text = text.trim();
    if text.is_empty() {
        *into = None;
        return;
    }
    match schedule::parse(text) {
        Ok(_) => *into = Some(text.to_string()),
        Err(e) => errors.add(field, e.to_string()),
    }
}

/// Checks a URL and returns its normal form, or a message for people.
pub fn normalize_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is required".into());
    }
    if text.len() > MAX_URL_LENGTH {
        return Err(format!("must be at most {MAX_URL_LENGTH} characters"));
    }
    let mut url = Url::parse(text).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            "must be a full URL starting with https:// or http://".to_string()
        }
        other => format!("is not a valid URL ({other})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must use http or https, not {}", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    match url.host_str() {
        None | Some("") => return Err("must name a host".into()),
        Some(host) if !host.contains('.') && !host.starts_with('[') && host != "localhost" => {
            return Err("must name a full host name (like www.example.com)".into());
        }
        _ => {}
    }
    url.set_fragment(None);
    Ok(url.to_string())
}

/// Validates `input` over `base` (the stored target for an update, defaults for a new one).
/// On a create the URL is required.
pub fn validate(
    input: &TargetInput,
    base: Option<&TargetValues>,
) -> Result<TargetValues, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut values = base.cloned().unwrap_or_else(TargetValues::defaults);
    match (&input.url, base) {
        (Some(url), _) => match normalize_url(url) {
            Ok(url) => values.url = url,
            Err(message) => errors.add("url", message),
        },
        (None, None) => errors.add("url", "is required"),
        (None, Some(_)) => {}
    }
    if let Some(name) = &input.name {
        let name = name.trim();
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            errors.add(
                "name",
                "must be at most 100 characters without control characters",
            );
        } else {
            values.name = name.to_string();
        }
    }
    if values.name.is_empty() {
        values.name = Url::parse(&values.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
    }
    let mut number = |value: Option<i64>,
                      field: &str,
                      range: std::ops::RangeInclusive<i64>,
                      target: &mut i32| {
        if let Some(value) = value {
            if range.contains(&value) {
                *target = value as i32;
            } else {
                errors.add(
                    field,
                    format!("must be between {} and {}", range.start(), range.end()),
                );
            }
        }
    };
    number(
        input.viewport_width,
        "viewport_width",
        320..=3840,
        &mut values.viewport_width,
    );
    number(
        input.viewport_height,
        "viewport_height",
        320..=2160,
        &mut values.viewport_height,
    );
    number(input.wait_ms, "wait_ms", 0..=30_000, &mut values.wait_ms);
    number(input.dwell_ms, "dwell_ms", 0..=30_000, &mut values.dwell_ms);
    if let Some(device) = &input.device {
        match VisitorProfile::parse_device(device) {
            Ok(device) => {
                values.device = device.as_str().into();
                // A new target takes the dimensions it does not name from its device.
                if base.is_none() {
                    let (width, height) = device.default_viewport();
                    if input.viewport_width.is_none() {
                        values.viewport_width = width as i32;
                    }
                    if input.viewport_height.is_none() {
                        values.viewport_height = height as i32;
                    }
                }
            }
            Err(e) => errors.add("device", e.to_string()),
        }
    }
    if let Some(languages) = &input.languages {
        match VisitorProfile::parse_languages(languages) {
            Ok(languages) => values.languages = languages.join(","),
            Err(e) => errors.add("languages", e.to_string()),
        }
    }
    if let Some(timezone) = &input.timezone {
        match VisitorProfile::parse_timezone(timezone) {
            Ok(timezone) => values.timezone = timezone,
            Err(e) => errors.add("timezone", e.to_string()),
        }
    }
    if let Some(mode) = &input.consent_mode {
        match mode.as_str() {
            "none" | "accept" | "reject" => values.consent_mode = mode.clone(),
            _ => errors.add("consent_mode", "must be none, accept or reject"),
        }
    }
    if let Some(capture) = input.capture_policy_pages {
        values.capture_policy_pages = capture;
    }
    if let Some(enabled) = input.enabled {
        values.enabled = enabled;
    }
    if let Some(text) = &input.schedule {
        read_schedule(text, "schedule", &mut values.schedule, &mut errors);
    }
    if let Some(text) = &input.compliance_schedule {
        read_schedule(
            text,
            "compliance_schedule",
            &mut values.compliance_schedule,
            &mut errors,
        );
    }
    if let Some(gpc) = input.compliance_gpc {
        values.compliance_gpc = gpc;
    }
    if let Some(kind) = &input.page_kind {
        match kind.as_str() {
            "page" | "checkout" | "payment" => values.page_kind = kind.clone(),
            _ => errors.add("page_kind", "must be page, checkout or payment"),
        }
    }
    if values.page_kind == "payment" {
        check_payment_cadence(values.schedule.as_deref(), &mut errors);
    }
    if let Some(threshold) = input.visual_threshold {
        if threshold.is_finite() && (0.0..=100.0).contains(&threshold) {
            values.visual_threshold = threshold as f32;
        } else {
            errors.add("visual_threshold", "must be a percentage between 0 and 100");
        }
    }
    if let Some(selectors) = &input.ignore_selectors {
        let selectors: Vec<String> = selectors
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if selectors.len() > 50 {
            errors.add("ignore_selectors", "at most 50 selectors");
        } else if let Some(bad) = selectors
            .iter()
            .find(|s| s.len() > 200 || scraper::Selector::parse(s).is_err())
        {
            errors.add("ignore_selectors", format!("`{bad}` is not a CSS selector"));
        } else {
            values.ignore_selectors = selectors;
        }
    }
    if let Some(regions) = &input.ignore_regions {
        let out_of_page = |r: &crate::diff::Rect| {
            r.width == 0
                || r.height == 0
                || r.x > 20_000
                || r.y > 100_000
                || r.width > 20_000
                || r.height > 100_000
        };
        if regions.len() > 50 {
            errors.add("ignore_regions", "at most 50 rectangles");
        } else if regions.iter().any(out_of_page) {
            errors.add(
                "ignore_regions",
                "each rectangle needs a width and height within the page",
            );
        } else {
            values.ignore_regions = regions.clone();
        }
    }
    let site = match input.kind.as_deref() {
        Some("site") => true,
        Some("page") => false,
        Some(_) => {
            errors.add("kind", "must be page or site");
            values.crawl_rules.is_some()
        }
        None => values.crawl_rules.is_some(),
    };
    if site {
        let mut rules = values.crawl_rules.clone().unwrap_or_default();
        if let Some(crawl) = &input.crawl {
            read_crawl(crawl, &mut rules, &mut errors);
        }
        values.crawl_rules = Some(rules);
    } else {
        if input.crawl.is_some() {
            errors.add("crawl", "crawl rules are for a site target (kind site)");
        }
        values.crawl_rules = None;
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// `x,y,width,height` per line, as typed into the form.
pub fn parse_regions(text: &str) -> Result<Vec<crate::diff::Rect>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let numbers: Vec<u32> = line
                .split(',')
                .map(|n| n.trim().parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("`{line}` is not x,y,width,height"))?;
            match numbers[..] {
                [x, y, width, height] => Ok(crate::diff::Rect {
                    x,
                    y,
                    width,
                    height,
                }),
                _ => Err(format!("`{line}` is not x,y,width,height")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_or_refused_with_reasons() {
        assert_eq!(
            normalize_url(" HTTPS://Shop.Example.com:443/a/../b?x=1#top ").unwrap(),
            "https://shop.example.com/b?x=1"
        );
        assert!(
            normalize_url("ftp://example.com")
                .unwrap_err()
                .contains("http or https")
        );
        assert!(
            normalize_url("https://user:pw@example.com/")
                .unwrap_err()
                .contains("password")
        );
        assert!(
            normalize_url("example.com")
                .unwrap_err()
                .contains("full URL")
        );
        assert!(
            normalize_url("javascript:alert(1)")
                .unwrap_err()
                .contains("http or https")
        );
        assert!(
            normalize_url("https://intranet/")
                .unwrap_err()
                .contains("full host")
        );
        assert!(normalize_url("").is_err());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let input = TargetInput {
            url: Some("nope".into()),
            viewport_width: Some(10),
            consent_mode: Some("maybe".into()),
            schedule: Some("every day".into()),
            wait_ms: Some(-1),
            dwell_ms: Some(30_001),
            device: Some("tablet".into()),
            languages: Some("en_US;<script>".into()),
            timezone: Some("Europe/../etc".into()),
            ..TargetInput::default()
        };
        let errors = validate(&input, None).unwrap_err();
        for field in [
            "url",
            "viewport_width",
            "consent_mode",
            "schedule",
            "wait_ms",
            "dwell_ms",
            "device",
            "languages",
            "timezone",
        ] {
            assert!(
                errors.get(field).is_some(),
                "{field} not reported: {errors:?}"
            );
        }
    }

    #[test]
    fn a_mobile_target_gets_a_phone_s_viewport_unless_it_names_one() {
        let mobile = |width: Option<i64>| TargetInput {
            url: Some("https://example.com/".into()),
            device: Some("mobile".into()),
            languages: Some(" de-DE, de ,en".into()),
            timezone: Some("Europe/Paris".into()),
            viewport_width: width,
            ..TargetInput::default()
        };
        let values = validate(&mobile(None), None).unwrap();
        assert_eq!(
            (
                values.device.as_str(),
                values.viewport_width,
                values.viewport_height
            ),
            ("mobile", 412, 915)
        );
        assert_eq!(values.languages, "de-DE,de,en");
        assert_eq!(values.timezone, "Europe/Paris");
        let values = validate(&mobile(Some(390)), None).unwrap();
        assert_eq!((values.viewport_width, values.viewport_height), (390, 915));
        let defaults = validate(
            &TargetInput {
                url: Some("https://example.com/".into()),
                ..TargetInput::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(
            (
                defaults.device.as_str(),
                defaults.languages.as_str(),
                defaults.timezone.as_str()
            ),
            ("desktop", "en-US,en", "Europe/Berlin")
        );
    }

    #[test]
    fn updates_keep_what_they_do_not_mention() {
        let created = validate(
            &TargetInput {
                url: Some("https://example.com/".into()),
                schedule: Some("0 6 * * *".into()),
                ..TargetInput::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(created.name, "example.com");
        let updated = validate(
            &TargetInput {
                enabled: Some(false),
                ..TargetInput::default()
            },
            Some(&created),
        )
        .unwrap();
        assert_eq!(updated.schedule.as_deref(), Some("0 6 * * *"));
        assert!(!updated.enabled);
    }
}
