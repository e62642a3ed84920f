//! The visitor a scan presents itself as: the desktop (or phone) Chrome of the browser's own
//! version, in the target's languages and timezone, with the automation tells removed.
//!
//! Headless Chromium announces itself (`HeadlessChrome` in the User-Agent, `navigator.webdriver`)
//! and sites, consent managers and bot walls serve it something else than their visitors get. The
//! profile takes away those tells and nothing more: it claims no other browser, engine or
//! version, and it is recorded in the snapshot.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The languages a scan asks for unless told otherwise.
pub const DEFAULT_LANGUAGES: [&str; 2] = ["en-US", "en"];
/// The timezone a scan's pages see unless told otherwise (the service is hosted in the EU).
pub const DEFAULT_TIMEZONE: &str = "Europe/Berlin";

/// Which kind of device the visitor uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// Chrome on a Linux desktop (the machine the scan runs on).
    #[default]
    Desktop,
    /// Chrome on an Android phone: a phone's viewport, touch, the mobile User-Agent and client hints.
    Mobile,
}

impl Device {
    /// The viewport (CSS pixels) a visitor on this device has unless told otherwise.
    pub const fn default_viewport(self) -> (u32, u32) {
        match self {
            Device::Desktop => (1366, 768),
            Device::Mobile => (412, 915),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "desktop" => Some(Device::Desktop),
            "mobile" => Some(Device::Mobile),
            _ => None,
        }
    }
}

/// Who the scan's browser says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorProfile {
    pub device: Device,
    /// Preferred languages, most preferred first (BCP 47 tags such as `de-DE`).
    pub languages: Vec<String>,
    /// IANA timezone, e.g. `Europe/Berlin`.
    pub timezone: String,
}

impl Default for VisitorProfile {
    fn default() -> Self {
        Self {
            device: Device::Desktop,
            languages: DEFAULT_LANGUAGES.iter().map(|l| (*l).to_owned()).collect(),
            timezone: DEFAULT_TIMEZONE.to_owned(),
        }
    }
}

/// A profile setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProfile {
    #[error("unknown device {0:?}: expected desktop or mobile")]
    Device(String),
    #[error("invalid language {0:?}: expected tags such as de-DE or en, comma-separated")]
    Language(String),
    #[error("at most {MAX_LANGUAGES} languages")]
    TooManyLanguages,
    #[error("invalid timezone {0:?}: expected an IANA name such as Europe/Berlin or UTC")]
    Timezone(String),
}

const MAX_LANGUAGES: usize = 8;

impl VisitorProfile {
    /// Parses a comma-separated language list (`de-DE,de,en`).
    pub fn parse_languages(list: &str) -> Result<Vec<String>, InvalidProfile> {
        let languages: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                valid_language(l)
                    .then(|| l.to_owned())
                    .ok_or_else(|| InvalidProfile::Language(l.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        if languages.is_empty() {
            return Err(InvalidProfile::Language(list.to_owned()));
        }
        if languages.len() > MAX_LANGUAGES {
            return Err(InvalidProfile::TooManyLanguages);
        }
        Ok(languages)
    }

    /// Checks the shape of an IANA timezone name (the browser refuses names it does not know,
    /// which fails the scan with the browser's message).
    pub fn parse_timezone(name: &str) -> Result<String, InvalidProfile> {
        let name = name.trim();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
            });
        valid
            .then(|| name.to_owned())
            .ok_or_else(|| InvalidProfile::Timezone(name.to_owned()))
    }

    /// Parses a device name.
    pub fn parse_device(name: &str) -> Result<Device, InvalidProfile> {
        Device::parse(name.trim()).ok_or_else(|| InvalidProfile::Device(name.to_owned()))
    }

    /// The `Accept-Language` header Chrome sends for these languages, with its descending weights
    /// (`de-DE,de;q=0.9,en;q=0.8`).
    pub fn accept_language(&self) -> String {
        self.languages
            .iter()
            .enumerate()
            .map(|(i, language)| match i {
                0 => language.clone(),
                _ => format!("{language};q=0.{}", 10 - i.min(9)),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What the browser presents for this profile, given its own version (`156.0.8078.114`).
    pub fn presentation(&self, browser_version: &str) -> Presentation {
        let major = browser_version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0);
        let (user_agent, platform, ch_platform, platform_version, architecture, bitness, model) =
            match self.device {
                // The machine's own platform: DevTools cannot make `navigator.platform` claim
                // another after a cross-site navigation, and a User-Agent that contradicts it is
                // itself a tell. Chrome on Linux is an ordinary visitor.
                Device::Desktop => (
                    format!(
                        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                         Chrome/{major}.0.0.0 Safari/537.36"
                    ),
                    "Linux x86_64",
                    "Linux",
                    "",
                    "x86",
                    "64",
                    "",
                ),
                Device::Mobile => (
                    format!(
                        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
                         Chrome/{major}.0.0.0 Mobile Safari/537.36"
                    ),
                    "Linux armv81",
                    "Android",
                    "14.0.0",
                    "",
                    "",
                    "Pixel 8",
                ),
            };
        let mobile = self.device == Device::Mobile;
        Presentation {
            user_agent,
            languages: self.languages.join(","),
            platform: platform.to_owned(),
            client_hints: ClientHints {
                brands: brands(major, &format!("{major}")),
                full_version_list: brands(major, browser_version),
                platform: ch_platform.to_owned(),
                platform_version: platform_version.to_owned(),
                architecture: architecture.to_owned(),
                bitness: bitness.to_owned(),
                model: model.to_owned(),
                mobile,
                form_factor: if mobile { "Mobile" } else { "Desktop" }.to_owned(),
            },
            locale: self.languages.first().cloned().unwrap_or_default(),
            timezone: self.timezone.clone(),
            touch_points: if mobile { 5 } else { 0 },
            device_scale_factor: if mobile { 2.625 } else { 1.0 },
            mobile,
        }
    }
}

/// Everything the browser is told to present for one profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Presentation {
    pub user_agent: String,
    /// The languages, comma-separated: Chromium turns them into `navigator.languages` and, with
    /// its own weights, `Accept-Language` (see [`VisitorProfile::accept_language`]).
    pub languages: String,
    /// `navigator.platform`.
    pub platform: String,
    pub client_hints: ClientHints,
    /// The locale `Intl` uses.
    pub locale: String,
    pub timezone: String,
    /// 0 for no touch screen.
    pub touch_points: u8,
    pub device_scale_factor: f64,
    pub mobile: bool,
}

/// User-Agent Client Hints (`Sec-CH-UA*`, `navigator.userAgentData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHints {
    /// `(brand, major version)`, in Chrome's order for this version.
    pub brands: Vec<(String, String)>,
    /// `(brand, full version)`.
    pub full_version_list: Vec<(String, String)>,
    pub platform: String,
    pub platform_version: String,
    pub architecture: String,
    pub bitness: String,
    pub model: String,
    pub mobile: bool,
    pub form_factor: String,
}

/// Chrome's brand list for `major`: a "GREASE" brand (a deliberately odd name and version that
/// keeps sites from parsing the list too strictly), Chromium and Google Chrome, in an order and
/// spelling that Chrome derives from the major version — the same a real Chrome of this version
/// sends.
fn brands(major: u32, version: &str) -> Vec<(String, String)> {
    const GREASE_CHARS: [&str; 11] = [" ", "(", ":", "-", ".", "/", ")", ";", "=", "?", "_"];
    const GREASE_VERSIONS: [&str; 3] = ["8", "99", "24"];
    const ORDERS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let seed = major as usize;
    let grease_brand = format!(
        "Not{}A{}Brand",
        GREASE_CHARS[seed % GREASE_CHARS.len()],
        GREASE_CHARS[(seed + 1) % GREASE_CHARS.len()]
    );
    let grease_major = GREASE_VERSIONS[seed % GREASE_VERSIONS.len()];
    let grease_version = if version.contains('.') {
        format!("{grease_major}.0.0.0")
    } else {
        grease_major.to_owned()
    };
    let listed = [
        (grease_brand, grease_version),
        ("Chromium".to_owned(), version.to_owned()),
        ("Google Chrome".to_owned(), version.to_owned()),
    ];
    let order = ORDERS[seed % ORDERS.len()];
    let mut ordered = vec![(String::new(), String::new()); 3];
    for (brand, position) in listed.into_iter().zip(order) {
        ordered[position] = brand;
    }
    ordered
}

/// A BCP 47-shaped tag: letters, digits and hyphens, starting with 2–3 letters.
fn valid_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    primary_ok
        && tag.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grease_brand_matches_what_chromium_reports_for_its_version() {
        // Chromium 156 reports [{"Not:A-Brand","8"},{"Chromium","156"}] (checked on Debian's
        // build); Google Chrome adds its own brand last.
        assert_eq!(
            brands(156, "156"),
            vec![
                ("Not:A-Brand".to_owned(), "8".to_owned()),
                ("Chromium".to_owned(), "156".to_owned()),
                ("Google Chrome".to_owned(), "156".to_owned()),
            ]
        );
        assert_eq!(brands(156, "156.0.8078.114")[0].1, "8.0.0.0");
    }

    #[test]
    fn the_desktop_profile_has_no_headless_tell_and_keeps_the_version() {
        let shown = VisitorProfile::default().presentation("156.0.8078.114");
        assert!(
            !shown.user_agent.contains("Headless"),
            "{}",
            shown.user_agent
        );
        assert!(shown.user_agent.contains("Chrome/156.0.0.0"));
        assert!(shown.user_agent.contains("X11; Linux x86_64"));
        assert_eq!(shown.languages, "en-US,en");
        assert_eq!(shown.timezone, "Europe/Berlin");
        assert!(!shown.mobile);
        assert_eq!(shown.client_hints.platform, "Linux");
    }

    #[test]
    fn the_mobile_profile_is_a_phone() {
        let profile = VisitorProfile {
            device: Device::Mobile,
            languages: VisitorProfile::parse_languages("de-DE, de ,en").expect("valid"),
            timezone: "Europe/Vienna".into(),
        };
        let shown = profile.presentation("156.0.8078.114");
        assert!(shown.user_agent.contains("Mobile Safari"));
        assert!(shown.client_hints.mobile);
        assert_eq!(shown.client_hints.platform, "Android");
        assert_eq!(shown.touch_points, 5);
        assert_eq!(shown.languages, "de-DE,de,en");
        assert_eq!(profile.accept_language(), "de-DE,de;q=0.9,en;q=0.8");
        assert_eq!(shown.locale, "de-DE");
        assert_eq!(Device::Mobile.default_viewport(), (412, 915));
    }

    #[test]
    fn bad_languages_timezones_and_devices_are_refused_with_the_value() {
        for bad in ["", "   ,", "english!", "e", "de_DE", "de-DE;q=0.9"] {
            assert!(VisitorProfile::parse_languages(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            VisitorProfile::parse_languages("a,b,c,d,e,f,g,h,i"),
            Err(InvalidProfile::Language("a".into()))
        );
        assert_eq!(
            VisitorProfile::parse_languages("aa,bb,cc,dd,ee,ff,gg,hh,ii"),
            Err(InvalidProfile::TooManyLanguages)
        );
        for bad in ["", "Europe/", "../etc/passwd", "Europe Berlin", "a/b;c"] {
            assert!(VisitorProfile::parse_timezone(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            VisitorProfile::parse_timezone(" America/Argentina/Buenos_Aires "),
            Ok("America/Argentina/Buenos_Aires".to_owned())
        );
        assert_eq!(
            VisitorProfile::parse_device("tablet"),
            Err(InvalidProfile::Device("tablet".into()))
        );
    }
}
