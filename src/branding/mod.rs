//! How an agency's reports look: its name as clients should read it, an accent colour and a
//! logo ([`logo`] checks uploads). Set at `/settings/branding` or `/api/v1/branding`; reports
//! made afterwards carry them.

pub mod logo;
pub mod queries;
pub mod routes;
