//! The egress policy: turns a host name and port into the one address a connection may use.
//!
//! The guard resolves names itself and connects to exactly the address it checked, so a DNS answer
//! that changes between check and connect (rebinding) has nothing to slip through.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::address::{self, NonPublic};
use super::resolver::NameResolver;

/// How long the guard waits for a DNS answer.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a connection may go, and how its name got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    /// Every address the name may use, all checked.
    pub addresses: Vec<SocketAddr>,
    /// The name's CNAME chain (empty for a name that is not an alias, a pin or a literal).
    pub aliases: Vec<String>,
}

/// A `--resolve` mapping: the name reaches `ip`, on `port` only when one was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pin {
    ip: IpAddr,
    port: Option<u16>,
}

/// Where scans may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Host names pinned to an address, like curl's `--resolve`. A pinned name may reach its
    /// address even when it is private; nothing else may.
    resolve: BTreeMap<String, Pin>,
    /// Turns the guard off: every destination is allowed.
    allow_private: bool,
    /// The name server to ask instead of the system's (`--dns-server`).
    dns_server: Option<SocketAddr>,
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{host} is a {}", .kind.describe())]
    NonPublicLiteral { host: String, kind: NonPublic },
    /// The address stays out of the message: scans are shown to tenants, and which private
    /// address a name leads to is the operator's business (it is in the operator's log).
    #[error("{host} resolves to a non-public address ({})", .kind.describe())]
    NonPublicName {
        host: String,
        address: IpAddr,
        kind: NonPublic,
    },
    #[error("{host} could not be resolved: {reason}")]
    Unresolvable { host: String, reason: String },
}

impl Refusal {
    /// The refused address, for the operator's log.
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            Refusal::NonPublicLiteral { host, .. } => host.parse().ok(),
            Refusal::NonPublicName { address, .. } => Some(*address),
            Refusal::Unresolvable { .. } => None,
        }
    }

    /// The refused address where the page itself named it (an IP literal), for the snapshot; a
    /// name's private address is not disclosed.
    pub fn address_named_by_page(&self) -> Option<IpAddr> {
        match self {
            Refusal::NonPublicLiteral { host, .. } => host.parse().ok(),
            Refusal::NonPublicName { .. } | Refusal::Unresolvable { .. } => None,
        }
    }
}

/// A `--resolve HOST=IP` argument that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --resolve {0:?}: expected HOST=IP or HOST:PORT=IP, e.g. shop.test:8080=127.0.0.1")]
pub struct InvalidResolve(pub String);

impl EgressPolicy {
    /// The default: public destinations only.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Pins `host` to `ip`; that mapping is allowed even for a private address.
    pub fn with_resolve(mut self, host: &str, ip: IpAddr) -> Self {
        self.resolve
            .insert(normalize_host(host), Pin { ip, port: None });
        self
    }

    /// Pins `host` to `ip` for connections to `port` only.
    pub fn with_resolve_port(mut self, host: &str, port: u16, ip: IpAddr) -> Self {
        self.resolve.insert(
            normalize_host(host),
            Pin {
                ip,
                port: Some(port),
            },
        );
        self
    }

    /// Parses and adds a `HOST=IP` mapping.
    pub fn with_resolve_arg(self, arg: &str) -> Result<Self, InvalidResolve> {
        let invalid = || InvalidResolve(arg.to_owned());
        let (host, ip) = arg.split_once('=').ok_or_else(invalid)?;
        let (host, port) = match host.trim().split_once(':') {
            Some((host, port)) => (host, Some(port.parse::<u16>().map_err(|_| invalid())?)),
            None => (host.trim(), None),
        };
        let ip: IpAddr = ip
            .trim()
            .trim_matches(['[', ']'])
            .parse()
            .map_err(|_| invalid())?;
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid_host {
            return Err(invalid());
        }
        Ok(match port {
            Some(port) => self.with_resolve_port(host, port, ip),
            None => self.with_resolve(host, ip),
        })
    }

    /// Switches the guard off. Only for trusted, self-hosted targets.
    pub fn allowing_private(mut self) -> Self {
        self.allow_private = true;
        self
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Asks `server` for names instead of the system's name servers and hosts file.
    pub fn with_dns_server(mut self, server: SocketAddr) -> Self {
        self.dns_server = Some(server);
        self
    }

    pub fn dns_server(&self) -> Option<SocketAddr> {
        self.dns_server
    }

    fn pin(&self, name: &str, port: u16) -> Option<IpAddr> {
        self.resolve
            .get(name)
            .filter(|pin| pin.port.is_none_or(|p| p == port))
            .map(|pin| pin.ip)
    }

    /// The pinned names as `host=ip`, sorted.
    pub fn resolve_entries(&self) -> Vec<String> {
        self.resolve
            .iter()
            .map(|(host, pin)| match pin.port {
                Some(port) => format!("{host}:{port}={}", pin.ip),
                None => format!("{host}={}", pin.ip),
            })
            .collect()
    }

    /// The addresses a connection to `host:port` may use, all checked, or why it may not be made.
    ///
    /// A pinned name reaches its pin. So does a name whose DNS answer is an alias of a pinned name
    /// (as a hosts-file entry would answer the resolver's last step): the page could have asked
    /// for the pinned name directly, so this opens nothing new.
    pub async fn destinations(
        &self,
        resolver: &NameResolver,
        host: &str,
        port: u16,
    ) -> Result<Destinations, Refusal> {
        let name = normalize_host(host);
        let fixed = |ip: IpAddr, aliases: Vec<String>| Destinations {
            addresses: vec![SocketAddr::new(ip, port)],
            aliases,
        };
        if let Some(ip) = self.pin(&name, port) {
            return Ok(fixed(ip, Vec::new()));
        }
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>() {
            if !self.allow_private {
                address::classify(ip).map_err(|kind| Refusal::NonPublicLiteral {
                    host: name.clone(),
                    kind,
                })?;
            }
            return Ok(fixed(ip, Vec::new()));
        }
        let unresolvable = |reason: String| Refusal::Unresolvable {
            host: name.clone(),
            reason,
        };
        let resolution = tokio::time::timeout(DNS_TIMEOUT, resolver.resolve(&name))
            .await
            .map_err(|_| unresolvable(format!("no answer within {} s", DNS_TIMEOUT.as_secs())))?
            .map_err(unresolvable)?;
        if let Some(ip) = resolution
            .aliases
            .last()
            .and_then(|canonical| self.pin(canonical, port))
        {
            return Ok(fixed(ip, resolution.aliases));
        }
        if resolution.addresses.is_empty() {
            return Err(unresolvable("no addresses".into()));
        }
        if !self.allow_private {
            // A name that resolves to any non-public address is refused outright, even if it also
            // has public ones: that mix is what rebinding attacks look like.
            for ip in &resolution.addresses {
                address::classify(*ip).map_err(|kind| Refusal::NonPublicName {
                    host: name.clone(),
                    address: *ip,
                    kind,
                })?;
            }
        }
        Ok(Destinations {
            addresses: resolution
                .addresses
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect(),
            aliases: resolution.aliases,
        })
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The destinations of `host:port` under `policy`, with the system's resolver.
    fn destinations(policy: &EgressPolicy, host: &str, port: u16) -> Result<Destinations, Refusal> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let resolver = NameResolver::new(policy.dns_server()).expect("resolver");
                policy.destinations(&resolver, host, port).await
            })
    }

    #[test]
    fn pinned_private_name_is_allowed_but_the_literal_is_not() {
        let policy = EgressPolicy::public_only()
            .with_resolve_arg("Shop.Test=127.0.0.1")
            .expect("valid");
        let pinned = destinations(&policy, "shop.test.", 8080).expect("pinned name");
        assert_eq!(
            pinned.addresses,
            vec!["127.0.0.1:8080".parse().expect("addr")]
        );
        let literal = destinations(&policy, "127.0.0.1", 8080);
        assert!(matches!(
            literal,
            Err(Refusal::NonPublicLiteral {
                kind: NonPublic::Loopback,
                ..
            })
        ));
    }

    #[test]
    fn a_pin_with_a_port_opens_only_that_port() {
        let policy = EgressPolicy::public_only()
            .with_resolve_arg("shop.test:8080=127.0.0.1")
            .expect("valid");
        assert!(destinations(&policy, "shop.test", 8080).is_ok());
        assert!(
            destinations(&policy, "shop.test", 9200).is_err(),
            "another port of the pinned name"
        );
        assert_eq!(
            policy.resolve_entries(),
            vec!["shop.test:8080=127.0.0.1".to_string()]
        );
        assert!(
            EgressPolicy::public_only()
                .with_resolve_arg("shop.test:http=127.0.0.1")
                .is_err()
        );
    }

    #[test]
    fn names_resolving_to_private_addresses_are_refused() {
        let policy = EgressPolicy::public_only();
        let refused = destinations(&policy, "localhost", 80).expect_err("refused");
        assert!(
            matches!(
                refused,
                Refusal::NonPublicName {
                    kind: NonPublic::Loopback,
                    ..
                }
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn an_alias_reaches_its_pinned_canonical_name_and_an_unpinned_private_one_is_refused() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let sites = fixture_sites::FixtureSites::start().await.expect("sites");
                let metrics = fixture_sites::dns::CLOAKED_METRICS;
                let unpinned = EgressPolicy::public_only().with_dns_server(sites.dns_server());
                let resolver = NameResolver::new(unpinned.dns_server()).expect("resolver");
                // The answer ends at 127.0.0.1: a CNAME is no way around the guard.
                let refused = unpinned.destinations(&resolver, metrics, 80).await;
                assert!(
                    matches!(
                        refused,
                        Err(Refusal::NonPublicName {
                            kind: NonPublic::Loopback,
                            ..
                        })
                    ),
                    "{refused:?}"
                );
                let pinned = unpinned
                    .clone()
                    .with_resolve_arg("analytics.test=127.0.0.1")
                    .expect("valid");
                let reached = pinned
                    .destinations(&resolver, metrics, 80)
                    .await
                    .expect("reaches the pin");
                assert_eq!(
                    reached,
                    Destinations {
                        addresses: vec!["127.0.0.1:80".parse().expect("addr")],
                        aliases: vec!["analytics.test".to_owned()],
                    }
                );
                let unknown = pinned.destinations(&resolver, "nowhere.test", 80).await;
                assert!(
                    matches!(unknown, Err(Refusal::Unresolvable { .. })),
                    "{unknown:?}"
                );
            });
    }

    #[test]
    fn bracketed_ipv6_and_metadata_literals_are_refused() {
        let policy = EgressPolicy::public_only();
        assert!(destinations(&policy, "[::1]", 80).is_err());
        assert!(destinations(&policy, "169.254.169.254", 80).is_err());
        assert!(destinations(&policy, "[::ffff:169.254.169.254]", 80).is_err());
    }

    #[test]
    fn allow_private_turns_the_guard_off() {
        let policy = EgressPolicy::public_only().allowing_private();
        assert!(destinations(&policy, "127.0.0.1", 80).is_ok());
        assert!(destinations(&policy, "localhost", 80).is_ok());
    }

    #[test]
    fn malformed_resolve_arguments_are_rejected() {
        for bad in [
            "shop.test",
            "=127.0.0.1",
            "shop.test=",
            "shop.test=999.1.1.1",
            "a b=1.2.3.4",
            "x/y=1.2.3.4",
        ] {
            assert!(
                EgressPolicy::public_only().with_resolve_arg(bad).is_err(),
                "{bad}"
            );
        }
        let ok = EgressPolicy::public_only()
            .with_resolve_arg("v6.test=[::1]")
            .expect("v6");
        assert_eq!(ok.resolve_entries(), vec!["v6.test=::1".to_string()]);
    }
}
