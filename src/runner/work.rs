//! The runner loop: `concurrency` slots, each claiming a job, scanning, and delivering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use scanner::classify::Classifiers;
use scanner::egress::EgressPolicy;
use scanner::profile::VisitorProfile;
use scanner::{Limits, ScanOptions, ScanOutput, Scanner, Supervisor};
use secrecy::SecretString;
use tokio::sync::Notify;
use url::Url;

use super::client::{AppClient, CallError};
use super::protocol::{
    CheckoutCompleted, CheckoutResult, ClaimedJob, Completed, PDF_ARTIFACT, PdfCompleted, ScanOrder,
};

/// Everything a runner needs; nothing of it opens the database or the blob store.
pub struct RunnerSettings {
    pub app_url: Url,
    pub token: SecretString,
    pub concurrency: usize,
    pub browser: scanner::BrowserOptions,
    pub egress: EgressPolicy,
    /// Loaded once, shared by every scan and checkout test of the runner.
    pub classifiers: Classifiers,
    /// How long one claim waits for a job.
    pub claim_wait_seconds: u32,
    /// How long to keep trying to deliver a finished scan while the app is unreachable.
    pub deliver_for: Duration,
    /// The runners' key pair, to open checkout secrets; without it, tests that fill secrets
    /// fail with a clear reason.
    pub checkout_keys: Option<Arc<checkout_runner::RunnerKeyPair>>,
}

pub(super) struct Shared {
    pub(super) client: AppClient,
    pub(super) scanner: Scanner,
    pub(super) settings: RunnerSettings,
    stopping: AtomicBool,
    pub(super) stop: Notify,
}

/// Runs until `shutdown` resolves (then finishes nothing new and returns) or the app refuses the
/// token (an error: a revoked runner must stop).
pub async fn run(
    settings: RunnerSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let client = AppClient::new(settings.app_url.clone(), settings.token.clone())?;
    let scanner = Scanner::new(Supervisor::new(settings.browser.clone()));
    scanner
        .supervisor()
        .warm_up()
        .await
        .map_err(|e| format!("cannot start Chromium: {e}"))?;
    let shared = Arc::new(Shared {
        client,
        scanner,
        stopping: AtomicBool::new(false),
        stop: Notify::new(),
        settings,
    });
    tracing::info!(
        app = %shared.settings.app_url,
        concurrency = shared.settings.concurrency,
        "runner started"
    );
    let mut slots = tokio::task::JoinSet::new();
    for slot in 0..shared.settings.concurrency {
        slots.spawn(slot_loop(shared.clone(), slot));
    }
    let outcome = tokio::select! {
        _ = shutdown => Ok(()),
        Some(result) = slots.join_next() => match result {
            Ok(outcome) => outcome,
            Err(error) => Err(format!("a runner slot crashed: {error}")),
        },
    };
    shared.stopping.store(true, Ordering::SeqCst);
    shared.stop.notify_waiters();
    slots.shutdown().await;
    shared.scanner.supervisor().shutdown().await;
    outcome
}

/// Exponential backoff from 0.5 s to 30 s with jitter.
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = 0.5 * 2f64.powi(self.0.min(6) as i32);
        self.0 += 1;
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        Duration::from_secs_f64((base * jitter).min(30.0))
    }
}

async fn slot_loop(shared: Arc<Shared>, slot: usize) -> Result<(), String> {
    let mut backoff = Backoff(0);
    while !shared.stopping.load(Ordering::SeqCst) {
        match shared
            .client
            .claim(shared.settings.claim_wait_seconds)
            .await
        {
            Ok(Some(job)) => {
                backoff = Backoff(0);
                tracing::info!(slot, job = job.job_id, attempt = job.attempt, "job claimed");
                run_job(&shared, job).await;
            }
            Ok(None) => backoff = Backoff(0),
            Err(CallError::Unauthorized) => {
                return Err("the app refused this runner's token; was the runner revoked?".into());
            }
            Err(error) => {
                let wait = backoff.next();
                tracing::warn!(slot, %error, retry_in = ?wait, "cannot claim a job");
                tokio::time::sleep(wait).await;
            }
        }
    }
    Ok(())
}

pub(super) fn scan_options(shared: &Shared, order: &ScanOrder) -> ScanOptions {
    shared.settings.classifiers.apply(ScanOptions {
        viewport_width: order.viewport_width,
        viewport_height: order.viewport_height,
        quiet_period: Duration::from_millis(u64::from(order.wait_ms)),
        min_dwell: Duration::from_millis(u64::from(order.dwell_ms)),
        profile: VisitorProfile {
            device: order.device,
            languages: order.languages.clone(),
            timezone: order.timezone.clone(),
        },
        policy_pages: order.policy_pages,
        consent_mode: order.consent_mode,
        global_privacy_control: order.global_privacy_control,
        egress: shared.settings.egress.clone(),
        limits: Limits::default(),
        ..ScanOptions::default()
    })
}

/// Scans with a heartbeat running beside it; stops early if the job is lost.
async fn run_job(shared: &Arc<Shared>, job: ClaimedJob) {
    let lost = Arc::new(Notify::new());
    let lost_flag = Arc::new(AtomicBool::new(false));
    let heartbeat = tokio::spawn(heartbeat_loop(
        shared.clone(),
        job.clone(),
        lost.clone(),
        lost_flag.clone(),
    ));
    if let Some(order) = job.checkout.clone() {
        let result = tokio::select! {
            result = super::checkout::run(shared, &order) => Some(result),
            _ = lost.notified() => None,
            _ = shared.stop.notified() => None,
        };
        match result {
            None => tracing::warn!(
                job = job.job_id,
                "checkout run dropped: lost its lease or the runner is stopping"
            ),
            Some(Ok(output)) => {
                tracing::info!(
                    job = job.job_id,
                    outcome = output.report.outcome.as_str(),
                    "checkout run done"
                );
                deliver_checkout(shared, &job, output, &lost_flag).await;
            }
            Some(Err(error)) => {
                tracing::warn!(job = job.job_id, %error, "checkout run could not take place");
                report_failure(shared, &job, &error, &lost_flag).await;
            }
        }
        heartbeat.abort();
        return;
    }
    if let Some(order) = job.pdf.clone() {
        let result = tokio::select! {
            result = super::pdf::render(&shared.scanner, &order) => Some(result),
            _ = lost.notified() => None,
            _ = shared.stop.notified() => None,
        };
        match result {
            None => tracing::warn!(job = job.job_id, "PDF dropped: lost its lease or stopping"),
            Some(Ok(pdf)) => deliver_pdf(shared, &job, pdf, &lost_flag).await,
            Some(Err(error)) => {
                tracing::warn!(job = job.job_id, %error, "PDF could not be printed");
                report_failure(shared, &job, &error.to_string(), &lost_flag).await;
            }
        }
        heartbeat.abort();
        return;
    }
    if let Some(order) = job.crawl.clone() {
        let result = tokio::select! {
            result = super::crawl::run_lane(shared, &job, &order, &lost_flag) => Some(result),
            _ = lost.notified() => None,
            _ = shared.stop.notified() => None,
        };
        match result {
            // The page under way, if any, comes back to the crawl when its lease lapses.
            None => tracing::warn!(job = job.job_id, "crawl lane dropped: lost or stopping"),
            Some(Ok(pages)) => tracing::info!(job = job.job_id, pages, "crawl lane done"),
            Some(Err(error)) => {
                tracing::warn!(job = job.job_id, %error, "crawl lane failed");
                report_failure(shared, &job, &error.to_string(), &lost_flag).await;
            }
        }
        heartbeat.abort();
        return;
    }
    let Some(scan) = job.scan.clone() else {
        report_failure(
            shared,
            &job,
            "this runner does not know the job's kind",
            &lost_flag,
        )
        .await;
        heartbeat.abort();
        return;
    };
    let options = scan_options(shared, &scan);
    let started = Instant::now();
    let result = tokio::select! {
        result = shared.scanner.scan(&scan.url, &options, &|_| {}) => Some(result),
        _ = lost.notified() => None,
        _ = shared.stop.notified() => None,
    };
    match result {
        None => tracing::warn!(
            job = job.job_id,
            "job dropped: lost its lease or the runner is stopping"
        ),
        Some(Ok(output)) => {
            tracing::info!(
                job = job.job_id,
                seconds = started.elapsed().as_secs_f64(),
                "scan done"
            );
            deliver(shared, &job, output, &lost_flag).await;
        }
        Some(Err(error)) => {
            tracing::warn!(job = job.job_id, %error, "scan failed");
            report_failure(shared, &job, &error.to_string(), &lost_flag).await;
        }
    }
    heartbeat.abort();
}

pub(super) async fn heartbeat_loop(
    shared: Arc<Shared>,
    job: ClaimedJob,
    lost: Arc<Notify>,
    lost_flag: Arc<AtomicBool>,
) {
    let every = Duration::from_secs(job.lease_seconds.max(3)) / 3;
    let mut first = true;
    loop {
        // The first beat goes at once: it acknowledges the claim, which holds only briefly
        // until then.
        if !first {
            tokio::time::sleep(every).await;
        }
        first = false;
        match shared.client.heartbeat(&job).await {
            Ok(()) => {}
            Err(CallError::Stale) | Err(CallError::Unauthorized) => {
                lost_flag.store(true, Ordering::SeqCst);
                lost.notify_waiters();
                return;
            }
            Err(error) => tracing::warn!(job = job.job_id, %error, "heartbeat failed; retrying"),
        }
    }
}

/// Retries `call` while the app is unavailable, until `deliver_for` has passed.
pub(super) async fn with_retries<T, F, Fut>(
    shared: &Shared,
    lost: &AtomicBool,
    mut call: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let deadline = Instant::now() + shared.settings.deliver_for;
    let mut backoff = Backoff(0);
    loop {
        if lost.load(Ordering::SeqCst) {
            return Err(CallError::Stale);
        }
        match call().await {
            Err(CallError::Unavailable(detail)) if Instant::now() < deadline => {
                let wait = backoff.next();
                tracing::warn!(%detail, retry_in = ?wait, "the app is unavailable; retrying");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// Sends the screenshots, then the snapshot. A request the app rejects fails the attempt.
async fn deliver(shared: &Shared, job: &ClaimedJob, output: ScanOutput, lost: &AtomicBool) {
    let ScanOutput {
        snapshot,
        viewport_png,
        full_page_png,
    } = output;
    let document = serde_json::to_vec(&snapshot);
    deliver_document(shared, job, [viewport_png, full_page_png], document, lost).await
}

/// Sends a scan's screenshots, then the document that completes it (a snapshot, or a crawl
/// page's result). A request the app rejects fails the attempt.
pub(super) async fn deliver_document(
    shared: &Shared,
    job: &ClaimedJob,
    [viewport_png, full_page_png]: [Vec<u8>; 2],
    document: serde_json::Result<Vec<u8>>,
    lost: &AtomicBool,
) {
    let document = match document {
        Ok(document) => document,
        Err(error) => {
            return report_failure(
                shared,
                job,
                &format!("cannot encode the snapshot: {error}"),
                lost,
            )
            .await;
        }
    };
    // The app may have been away longer than the lease: renew it before sending.
    let _ = with_retries(shared, lost, || shared.client.heartbeat(job)).await;
    let uploads = [
        ("viewport.png", viewport_png),
        ("fullpage.png", full_page_png),
    ];
    for (name, bytes) in uploads {
        let result = with_retries(shared, lost, || {
            shared.client.upload(job, name, "image/png", bytes.clone())
        })
        .await;
        if let Err(error) = result {
            return handle_delivery_error(shared, job, error, lost).await;
        }
    }
    match with_retries(shared, lost, || {
        shared.client.complete::<Completed>(job, document.clone())
    })
    .await
    {
        Ok(done) => tracing::info!(
            job = job.job_id,
            snapshot = done.snapshot_id,
            duplicate = done.duplicate,
            "snapshot delivered"
        ),
        Err(error) => handle_delivery_error(shared, job, error, lost).await,
    }
}

/// Sends the step screenshots, then the report and captured pages.
async fn deliver_checkout(
    shared: &Shared,
    job: &ClaimedJob,
    output: checkout_runner::RunOutput,
    lost: &AtomicBool,
) {
    let checkout_runner::RunOutput {
        report,
        screenshots,
        pages,
    } = output;
    let result = CheckoutResult {
        report,
        pages: pages.into_iter().map(|p| p.snapshot).collect(),
    };
    let document = match serde_json::to_vec(&result) {
        Ok(document) => document,
        Err(error) => {
            let error = format!("cannot encode the checkout report: {error}");
            return report_failure(shared, job, &error, lost).await;
        }
    };
    let _ = with_retries(shared, lost, || shared.client.heartbeat(job)).await;
    for (name, bytes) in screenshots {
        let result = with_retries(shared, lost, || {
            shared.client.upload(job, &name, "image/png", bytes.clone())
        })
        .await;
        if let Err(error) = result {
            return handle_delivery_error(shared, job, error, lost).await;
        }
    }
    match with_retries(shared, lost, || {
        shared
            .client
            .complete::<CheckoutCompleted>(job, document.clone())
    })
    .await
    {
        Ok(done) => tracing::info!(
            job = job.job_id,
            run = done.run_id,
            duplicate = done.duplicate,
            "checkout run delivered"
        ),
        Err(error) => handle_delivery_error(shared, job, error, lost).await,
    }
}

/// Sends the PDF, then completes the job.
async fn deliver_pdf(shared: &Shared, job: &ClaimedJob, pdf: Vec<u8>, lost: &AtomicBool) {
    let _ = with_retries(shared, lost, || shared.client.heartbeat(job)).await;
    let uploaded = with_retries(shared, lost, || {
        shared
            .client
            .upload(job, PDF_ARTIFACT, "application/pdf", pdf.clone())
    })
    .await;
    if let Err(error) = uploaded {
        return handle_delivery_error(shared, job, error, lost).await;
    }
    match with_retries(shared, lost, || {
        shared.client.complete::<PdfCompleted>(job, b"{}".to_vec())
    })
    .await
    {
        Ok(done) => tracing::info!(job = job.job_id, report = done.report_id, "PDF delivered"),
        Err(error) => handle_delivery_error(shared, job, error, lost).await,
    }
}

async fn handle_delivery_error(
    shared: &Shared,
    job: &ClaimedJob,
    error: CallError,
    lost: &AtomicBool,
) {
    match error {
        CallError::Stale => tracing::warn!(job = job.job_id, "job lost before delivery; dropped"),
        CallError::Unauthorized => {
            tracing::error!(job = job.job_id, "token refused during delivery")
        }
        CallError::Rejected { .. } | CallError::Unavailable(_) => {
            report_failure(
                shared,
                job,
                &format!("delivering the results failed: {error}"),
                lost,
            )
            .await
        }
    }
}

pub(super) async fn report_failure(
    shared: &Shared,
    job: &ClaimedJob,
    error: &str,
    lost: &AtomicBool,
) {
    match with_retries(shared, lost, || shared.client.fail(job, error)).await {
        Ok(reply) => tracing::info!(job = job.job_id, outcome = %reply.outcome, "failure reported"),
        // If even that fails, the lease lapses and the job comes back on its own.
        Err(error) => tracing::warn!(job = job.job_id, %error, "could not report the failure"),
    }
}
