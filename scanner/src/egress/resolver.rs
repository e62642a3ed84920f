//! Name resolution for the egress guard, with the CNAME chain kept.
//!
//! The guard resolves every name the browser asks for itself (the browser only ever sees the
//! proxy). It uses its own stub resolver rather than the C library's so that the answer carries
//! the chain of aliases: `metrics.shop.example` answered through a CNAME by a tracker's server is
//! first party by name and third party in fact (CNAME cloaking), and only the DNS answer shows it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::proto::xfer::Protocol;

/// How long one query waits for an answer, per attempt.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per query (the whole lookup stays under the guard's DNS timeout).
const ATTEMPTS: usize = 2;
/// Aliases followed at most; longer chains are cut (they are recorded up to here).
const MAX_ALIASES: usize = 8;

/// What a name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub addresses: Vec<IpAddr>,
    /// The CNAME chain from the asked name to the canonical one, in order, without the asked name;
    /// empty when the name is not an alias.
    pub aliases: Vec<String>,
}

/// A resolver the guard can not start: the system's configuration does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read the DNS configuration: {0}")]
pub struct ResolverUnavailable(String);

/// One scan's stub resolver (its cache lives as long as the scan's guard).
pub struct NameResolver {
    inner: TokioResolver,
}

impl NameResolver {
    /// The system's name servers (`/etc/resolv.conf`) and hosts file, or only `server` when given.
    pub fn new(server: Option<SocketAddr>) -> Result<Self, ResolverUnavailable> {
        let mut builder = match server {
            Some(server) => {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(server, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(server, Protocol::Tcp));
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            }
            None => {
                TokioResolver::builder_tokio().map_err(|e| ResolverUnavailable(e.to_string()))?
            }
        };
        let options = builder.options_mut();
        options.preserve_intermediates = true;
        // Every address the name has is checked, as the C library's lookup returned them all.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.timeout = QUERY_TIMEOUT;
        options.attempts = ATTEMPTS;
        options.use_hosts_file = if server.is_some() {
            ResolveHosts::Never
        } else {
            ResolveHosts::Auto
        };
        Ok(Self {
            inner: builder.build(),
        })
    }

    /// Resolves `name` (already normalized: lower case, no trailing dot).
    pub async fn resolve(&self, name: &str) -> Result<Resolution, String> {
        // A fully qualified name: no search-domain guesses for what a page asked for.
        let lookup = self
            .inner
            .lookup_ip(format!("{name}."))
            .await
            .map_err(|e| describe(&e))?;
        let addresses: Vec<IpAddr> = lookup.iter().collect();
        let aliases = alias_chain(
            name,
            lookup
                .as_lookup()
                .records()
                .iter()
                .filter_map(|record| match record.data() {
                    RData::CNAME(target) => Some((record.name().to_ascii(), target.0.to_ascii())),
                    _ => None,
                }),
        );
        Ok(Resolution { addresses, aliases })
    }
}

/// Follows the CNAME records from `name`, in chain order whatever order the answer listed them.
fn alias_chain(name: &str, records: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let records: Vec<(String, String)> = records
        .map(|(from, to)| (normalize(&from), normalize(&to)))
        .collect();
    let mut chain = Vec::new();
    let asked = normalize(name);
    let mut current = asked.clone();
    while chain.len() < MAX_ALIASES {
        let Some((_, next)) = records.iter().find(|(from, _)| *from == current) else {
            break;
        };
        if *next == asked || chain.contains(next) {
            break;
        }
        chain.push(next.clone());
        current = next.clone();
    }
    chain
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A short reason, without the resolver's internal detail.
fn describe(error: &hickory_resolver::ResolveError) -> String {
    if error.is_no_records_found() {
        "no such name".to_owned()
    } else {
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn alias_chains_are_followed_in_order_whatever_the_answer_order() {
        let chain = alias_chain(
            "Metrics.Shop.Example",
            pairs(&[
                ("edge.tracker.net.", "eu.edge.tracker.net."),
                ("metrics.shop.example.", "edge.tracker.net."),
            ]),
        );
        assert_eq!(chain, vec!["edge.tracker.net", "eu.edge.tracker.net"]);
    }

    #[test]
    fn loops_and_unrelated_records_end_the_chain() {
        assert!(alias_chain("a.test", pairs(&[("b.test", "c.test")])).is_empty());
        let looped = alias_chain(
            "a.test",
            pairs(&[("a.test", "b.test"), ("b.test", "a.test")]),
        );
        assert_eq!(looped, vec!["b.test"]);
        let long: Vec<(String, String)> = (0..20)
            .map(|i| (format!("n{i}.test"), format!("n{}.test", i + 1)))
            .collect();
        assert_eq!(alias_chain("n0.test", long.into_iter()).len(), MAX_ALIASES);
    }
}
