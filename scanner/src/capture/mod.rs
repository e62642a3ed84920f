//! Turning DevTools events and page state into snapshot parts. Pure where it can be: these modules
//! are tested with recorded values, no browser needed.

pub(crate) mod consent_signals;
pub(crate) mod cookies;
pub mod headers;
pub(crate) mod network;
pub(crate) mod scripts;
pub(crate) mod unparsed;
