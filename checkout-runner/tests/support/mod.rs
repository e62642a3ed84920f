//! What the checkout journey tests share: fixture sites and a scanner in real Chromium, runs of
//! a journey, sealed secrets, and checks that no secret shows.

#![allow(dead_code)]

use std::time::Duration;

use checkout_runner::sealing::RunnerKeyPair;
use checkout_runner::{RunOutput, RunSettings, Secrets, parse};
use fixture_sites::demo_shop::CARD_TEXT_RGB;
use fixture_sites::{FixtureSites, SHOP};
use scanner::egress::EgressPolicy;
use scanner::{BrowserOptions, ScanOptions, Scanner, Supervisor};

pub struct Harness {
    pub sites: FixtureSites,
    pub scanner: Scanner,
}

impl Harness {
    pub async fn start() -> Self {
        let sites = FixtureSites::start().await.expect("fixture sites start");
        let chromium = std::env::var_os("SITEWARD_CHROMIUM")
            .map_or_else(|| "/usr/bin/chromium".into(), std::path::PathBuf::from);
        assert!(
            chromium.exists(),
            "these tests need Chromium at {chromium:?}: apt-get install -y chromium"
        );
        let scanner = Scanner::new(Supervisor::new(BrowserOptions {
            executable: chromium,
            trusted_spki: vec![sites.spki().to_owned()],
            ..BrowserOptions::default()
        }));
        Self { sites, scanner }
    }

    pub fn settings(&self) -> RunSettings {
        let mut egress = EgressPolicy::public_only();
        for arg in self.sites.resolve_args() {
            egress = egress.with_resolve_arg(&arg).expect("resolve args parse");
        }
        RunSettings {
            base_url: url::Url::parse(&self.sites.url(SHOP, "/")).expect("url"),
            capture_pages: true,
            options: ScanOptions {
                egress,
                quiet_period: Duration::from_millis(150),
                ..ScanOptions::default()
            },
        }
    }

    pub async fn run(&self, yaml: &str, secrets: &Secrets) -> RunOutput {
        let plan = parse(yaml).expect("the journey parses");
        checkout_runner::run(&self.scanner, &plan, secrets, &self.settings())
            .await
            .expect("the run takes place")
    }
}

/// `values`, sealed and opened as a runner would.
pub fn sealed(values: &[(&str, &str)]) -> Secrets {
    let keys = RunnerKeyPair::generate();
    let mut secrets = Secrets::default();
    for (name, value) in values {
        let sealed = keys.public().seal(name, value.as_bytes()).expect("seal");
        secrets.insert((*name).to_owned(), keys.open(name, &sealed).expect("open"));
    }
    secrets
}

/// Pixels within 40 of the card fields' magenta text, in one PNG.
pub fn magenta_pixels(png: &[u8]) -> usize {
    pixels_near(png, CARD_TEXT_RGB)
}

/// Pixels within 40 of `rgb` in each channel, in one PNG.
pub fn pixels_near(png: &[u8], rgb: [u8; 3]) -> usize {
    let image = image::load_from_memory(png)
        .expect("screenshot decodes")
        .to_rgb8();
    image
        .pixels()
        .filter(|p| {
            p.0.iter()
                .zip(rgb)
                .all(|(&a, b)| (i32::from(a) - i32::from(b)).abs() <= 40)
        })
        .count()
}

/// Fails when `text` holds any of `secrets`' values.
pub fn assert_no_secret_in(label: &str, text: &str, secrets: &[(&str, &str)]) {
    for (name, value) in secrets {
        assert!(!text.contains(value), "{label} contains the secret {name}");
    }
}
