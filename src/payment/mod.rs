//! Payment-page integrity (PCI DSS 4.0 requirements 6.4.3 and 11.6.1): for every target whose
//! page kind is `payment`, the inventory of the scripts that ran (external, inline, injected by
//! another script, inside the payment provider's iframe), each body a version that an admin
//! authorizes with a written justification or rejects (append-only decisions; owner rules can
//! pre-authorize a host), Subresource Integrity checks, and a proposed Content-Security-Policy
//! that allows exactly the authorized sources. Header changes are typed changes of every scan
//! (`diff::headers`).
//!
//! - `cadence`: whether the weekly check (11.6.1) was missed.
//! - `evidence`: the assessor's export per client and period (page and CSV).
//! - `inventory`: what one snapshot ran (pure).
//! - `csp`: the proposed policy and how the page's own differs from it (pure).
//! - `queries`: recording, deciding, rules, reading the inventory back.
//! - `routes`, `views`: the dashboard page and the API.

pub mod cadence;
pub mod csp;
pub mod evidence;
pub mod inventory;
pub mod queries;
pub mod routes;
mod views;
