//! `siteward runner`: the worker that owns Chromium. It holds the app's URL and a runner token —
//! no database or object-store credentials — and long-polls the app for scan jobs, runs several
//! at once on one supervised browser, heartbeats while it works, and sends the results back under
//! the job's attempt token. Network trouble is retried with backoff; a job it lost (lease lapsed,
//! another runner took over) is dropped without sending anything.

mod checkout;
pub mod child;
pub mod client;
mod crawl;
pub mod pdf;
pub mod protocol;
mod work;

pub use work::{RunnerSettings, run};
