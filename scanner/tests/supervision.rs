//! Browser supervision: a crashed or hung browser is detected and killed, the scan in flight fails
//! with a clear error instead of hanging, and the next scan gets a fresh browser.

mod support;

use std::time::{Duration, Instant};

use fixture_sites::SHOP;
use scanner::ScanError;
use support::Harness;

async fn wait_for_browser(h: &Harness) -> u32 {
    for _ in 0..200 {
        if let Some(pid) = h.scanner.supervisor().browser_pid().await {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the browser never started");
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(pid, signal).expect("signal the browser");
}

/// Scans a page that never finishes loading and sends the browser `sig` 1.5 s in. Returns the
/// scan's error and when the signal was sent.
async fn scan_and_signal_the_browser(
    h: &Harness,
    sig: rustix::process::Signal,
) -> (ScanError, Instant) {
    let mut options = h.options();
    options.load_timeout = Duration::from_secs(20);
    let url = h.sites.url(SHOP, "/hang");
    let signaller = async {
        let pid = wait_for_browser(h).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        signal(pid, sig);
        Instant::now()
    };
    let (result, signalled_at) = tokio::join!(h.scan(&url, &options), signaller);
    let Err(error) = result else {
        panic!("the scan cannot succeed after {sig:?}")
    };
    (error, signalled_at)
}

/// The next scan gets a freshly launched browser.
async fn assert_the_browser_was_relaunched(h: &Harness) {
    let next = h
        .scan(&h.sites.url(SHOP, "/simple"), &h.options())
        .await
        .expect("a new browser serves the next scan");
    assert_eq!(next.snapshot.title, "Simple");
    assert_eq!(h.scanner.supervisor().launches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_killed_mid_scan_fails_that_scan_and_is_relaunched() {
    let h = Harness::start().await;
    let (error, killed_at) = scan_and_signal_the_browser(&h, rustix::process::Signal::KILL).await;
    assert!(matches!(error, ScanError::BrowserCrashed), "{error}");
    assert!(
        killed_at.elapsed() < Duration::from_secs(5),
        "the failure was prompt: {:?}",
        killed_at.elapsed()
    );
    assert_the_browser_was_relaunched(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_browser_is_killed_and_the_scan_fails_instead_of_hanging() {
    let h = Harness::with_browser(|b| b.hang_timeout = Duration::from_secs(3)).await;
    let (error, frozen_at) = scan_and_signal_the_browser(&h, rustix::process::Signal::STOP).await;
    assert!(matches!(error, ScanError::BrowserHung), "{error}");
    // Detection takes the watchdog's interval plus its answer timeout (3 s here).
    assert!(
        frozen_at.elapsed() < Duration::from_secs(10),
        "detected in {:?}",
        frozen_at.elapsed()
    );
    assert_the_browser_was_relaunched(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_browser_binary_is_a_clear_error() {
    let h = Harness::with_browser(|b| b.executable = "/nonexistent/chromium".into()).await;
    let Err(error) = h.scan(&h.sites.url(SHOP, "/simple"), &h.options()).await else {
        panic!("no browser, no scan");
    };
    assert!(matches!(error, ScanError::BrowserMissing(_)), "{error}");
    assert!(
        error.to_string().contains("/nonexistent/chromium"),
        "{error}"
    );
}
