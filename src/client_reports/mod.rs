//! Reports for an agency's clients: a client (or one of its pages) over a period, summary first
//! in plain words, then each page's detail ([`content`]); rendered once into a self-contained
//! document ([`render`]) and stored sealed, so a report someone received never changes; shared
//! read-only by links that expire and can be revoked ([`routes`]).

pub mod content;
pub mod delivery;
pub mod make;
pub mod pdf;
pub mod queries;
pub mod render;
pub mod routes;
pub mod views;
