//! The egress guard: what a scan's browser may connect to, enforced outside the page's reach.

mod address;
mod policy;
mod proxy;
mod resolver;

pub use address::{NonPublic, classify};
pub use policy::{Destinations, EgressPolicy, InvalidResolve, Refusal};
pub use proxy::GuardProxy;
