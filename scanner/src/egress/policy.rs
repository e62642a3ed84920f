//! The egress policy: turns a host name and port into the one address a connection may use.
//!
//! The guard resolves names itself and connects to exactly the address it checked, so a DNS answer
//! that changes between check and connect (rebinding) has nothing to slip through.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::address::{self, NonPublic};

/// Where scans may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Host names pinned to an address, like curl's `--resolve`. A pinned name may reach its
    /// address even when it is private; nothing else may.
    resolve: BTreeMap<String, IpAddr>,
    /// Turns the guard off: every destination is allowed.
    allow_private: bool,
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{host} is a {}", .kind.describe())]
    NonPublicLiteral { host: String, kind: NonPublic },
    #[error("{host} resolves to {address}, a {}", .kind.describe())]
    NonPublicName {
        host: String,
        address: IpAddr,
        kind: NonPublic,
    },
    #[error("{host} could not be resolved: {reason}")]
    Unresolvable { host: String, reason: String },
}

impl Refusal {
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            Refusal::NonPublicLiteral { host, .. } => host.parse().ok(),
            Refusal::NonPublicName { address, .. } => Some(*address),
            Refusal::Unresolvable { .. } => None,
        }
    }
}

/// A `--resolve HOST=IP` argument that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --resolve {0:?}: expected HOST=IP, e.g. shop.test=127.0.0.1")]
pub struct InvalidResolve(pub String);

impl EgressPolicy {
    /// The default: public destinations only.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Pins `host` to `ip`; that mapping is allowed even for a private address.
    pub fn with_resolve(mut self, host: &str, ip: IpAddr) -> Self {
        self.resolve.insert(normalize_host(host), ip);
        self
    }

    /// Parses and adds a `HOST=IP` mapping.
    pub fn with_resolve_arg(self, arg: &str) -> Result<Self, InvalidResolve> {
        let invalid = || InvalidResolve(arg.to_owned());
        let (host, ip) = arg.split_once('=').ok_or_else(invalid)?;
        let host = host.trim();
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
        Ok(self.with_resolve(host, ip))
    }

    /// Switches the guard off. Only for trusted, self-hosted targets.
    pub fn allowing_private(mut self) -> Self {
        self.allow_private = true;
        self
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// The pinned names as `host=ip`, sorted.
    pub fn resolve_entries(&self) -> Vec<String> {
        self.resolve
            .iter()
            .map(|(h, ip)| format!("{h}={ip}"))
            .collect()
    }

    /// The single address a connection to `host:port` must use, or why it may not be made.
    pub async fn destination(&self, host: &str, port: u16) -> Result<SocketAddr, Refusal> {
        let name = normalize_host(host);
        if let Some(ip) = self.resolve.get(&name) {
            return Ok(SocketAddr::new(*ip, port));
        }
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>() {
            if !self.allow_private {
                address::classify(ip).map_err(|kind| Refusal::NonPublicLiteral {
                    host: name.clone(),
                    kind,
                })?;
            }
            return Ok(SocketAddr::new(ip, port));
        }
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|e| Refusal::Unresolvable {
                host: name.clone(),
                reason: e.to_string(),
            })?
            .collect();
        let first = *resolved.first().ok_or_else(|| Refusal::Unresolvable {
            host: name.clone(),
            reason: "no addresses".into(),
        })?;
        if !self.allow_private {
            // A name that resolves to any non-public address is refused outright, even if it also
            // has public ones: that mix is what rebinding attacks look like.
            for addr in &resolved {
                address::classify(addr.ip()).map_err(|kind| Refusal::NonPublicName {
                    host: name.clone(),
                    address: addr.ip(),
                    kind,
                })?;
            }
        }
        Ok(first)
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn pinned_private_name_is_allowed_but_the_literal_is_not() {
        let policy = EgressPolicy::public_only()
            .with_resolve_arg("Shop.Test=127.0.0.1")
            .expect("valid");
        let pinned = block_on(policy.destination("shop.test.", 8080)).expect("pinned name");
        assert_eq!(pinned, "127.0.0.1:8080".parse().expect("addr"));
        let literal = block_on(policy.destination("127.0.0.1", 8080));
        assert!(matches!(
            literal,
            Err(Refusal::NonPublicLiteral {
                kind: NonPublic::Loopback,
                ..
            })
        ));
    }

    #[test]
    fn names_resolving_to_private_addresses_are_refused() {
        let policy = EgressPolicy::public_only();
        let refused = block_on(policy.destination("localhost", 80)).expect_err("refused");
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
    fn bracketed_ipv6_and_metadata_literals_are_refused() {
        let policy = EgressPolicy::public_only();
        assert!(block_on(policy.destination("[::1]", 80)).is_err());
        assert!(block_on(policy.destination("169.254.169.254", 80)).is_err());
        assert!(block_on(policy.destination("[::ffff:169.254.169.254]", 80)).is_err());
    }

    #[test]
    fn allow_private_turns_the_guard_off() {
        let policy = EgressPolicy::public_only().allowing_private();
        assert!(block_on(policy.destination("127.0.0.1", 80)).is_ok());
        assert!(block_on(policy.destination("localhost", 80)).is_ok());
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
