//! Shared test harness: fixture sites plus a scanner whose browser trusts their certificate.
#![allow(dead_code)]

use std::time::Duration;

use fixture_sites::FixtureSites;
use scanner::egress::EgressPolicy;
use scanner::{BrowserOptions, ScanOptions, Scanner, Supervisor};

pub fn chromium() -> std::path::PathBuf {
    let path = std::env::var_os("SITEWARD_CHROMIUM")
        .map_or_else(|| "/usr/bin/chromium".into(), Into::into);
    assert!(
        std::path::Path::new(&path).exists(),
        "these tests need Chromium at {path:?}: apt-get install -y chromium (or set SITEWARD_CHROMIUM)"
    );
    path
}

pub struct Harness {
    pub sites: FixtureSites,
    pub scanner: Scanner,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_browser(|_| {}).await
    }

    pub async fn with_browser(tweak: impl FnOnce(&mut BrowserOptions)) -> Self {
        let sites = FixtureSites::start().await.expect("fixture sites start");
        let mut options = BrowserOptions {
            executable: chromium(),
            trusted_spki: vec![sites.spki().to_owned()],
            ..BrowserOptions::default()
        };
        tweak(&mut options);
        let scanner = Scanner::new(Supervisor::new(options));
        Self { sites, scanner }
    }

    /// Scan options that map every fixture host to loopback, with a short quiet period.
    pub fn options(&self) -> ScanOptions {
        let mut egress = EgressPolicy::public_only();
        for arg in self.sites.resolve_args() {
            egress = egress
                .with_resolve_arg(&arg)
                .expect("fixture resolve args parse");
        }
        ScanOptions {
            egress: egress.with_dns_server(self.sites.dns_server()),
            quiet_period: Duration::from_millis(1_000),
            load_timeout: Duration::from_secs(10),
            scan_timeout: Duration::from_secs(45),
            ..ScanOptions::default()
        }
    }

    /// The scanner's default options, with the fixture hosts mapped to loopback: what a user
    /// who sets nothing gets.
    pub fn default_options(&self) -> ScanOptions {
        ScanOptions {
            egress: self.options().egress,
            ..ScanOptions::default()
        }
    }

    /// Scans `url`; fails the test if any DevTools message of the scan could not be parsed.
    pub async fn scan(
        &self,
        url: &str,
        options: &ScanOptions,
    ) -> Result<scanner::ScanOutput, scanner::ScanError> {
        let out = self.scanner.scan(url, options, &|_| {}).await;
        if let Ok(out) = &out {
            assert!(
                out.snapshot.capture_warnings.is_empty(),
                "DevTools messages were lost scanning {url}: {:?}",
                out.snapshot.capture_warnings
            );
        }
        out
    }
}

/// A TCP listener that counts the connections it receives, to prove the guard let none through.
pub struct Trap {
    pub port: u16,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Trap {
    pub async fn start() -> Self {
        // Bind on all loopback forms the probes use: 127.0.0.1 and ::1 share the port number.
        let v4 = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind trap");
        let port = v4.local_addr().expect("trap addr").port();
        let v6 = tokio::net::TcpListener::bind(("::1", port)).await.ok();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = count.clone();
        let task = tokio::spawn(async move {
            loop {
                let accepted = match &v6 {
                    Some(v6) => tokio::select! { a = v4.accept() => a, a = v6.accept() => a },
                    None => v4.accept().await,
                };
                if accepted.is_ok() {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        Self {
            port,
            count,
            _task: task,
        }
    }

    pub fn connections(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The committed JSON Schema of snapshots.
pub fn committed_schema() -> serde_json::Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/snapshot.schema.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the committed schema is JSON")
}

/// Fails the test with every violation when `snapshot` does not match the committed schema.
pub fn assert_matches_schema(snapshot: &serde_json::Value) {
    let schema = committed_schema();
    let validator = jsonschema::validator_for(&schema).expect("the committed schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(snapshot)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "snapshot does not match docs/snapshot.schema.json:\n{}",
        errors.join("\n")
    );
}
