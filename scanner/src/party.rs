//! First or third party, by registrable domain (eTLD+1 from the public suffix list).

use crate::snapshot::Party;

/// The registrable domain of `host` (`shop.example.co.uk` → `example.co.uk`). IP addresses and
/// names without a known suffix are their own registrable domain.
pub fn registrable_domain(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_start_matches('.');
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host.to_owned();
    }
    match psl::domain(host.as_bytes()) {
        Some(domain) if domain.suffix().is_known() => {
            String::from_utf8_lossy(domain.as_bytes()).into_owned()
        }
        // An unknown suffix (`shop.test`, `intranet`): treat the last two labels as the
        // registrable domain, as browsers do for the implicit `*` rule.
        _ => {
            let labels: Vec<&str> = host.rsplitn(3, '.').collect();
            match labels.as_slice() {
                [tld, name, ..] => format!("{name}.{tld}"),
                _ => host.to_owned(),
            }
        }
    }
}

/// Classifies `host` against the first party's registrable domain.
pub fn party_of(host: &str, first_party_domain: &str) -> Party {
    if registrable_domain(host) == first_party_domain {
        Party::First
    } else {
        Party::Third
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains_follow_the_public_suffix_list() {
        assert_eq!(registrable_domain("www.example.com"), "example.com");
        assert_eq!(registrable_domain("shop.example.co.uk"), "example.co.uk");
        assert_eq!(registrable_domain("a.b.github.io"), "b.github.io");
        assert_eq!(registrable_domain(".Example.COM."), "example.com");
        assert_eq!(registrable_domain("cdn.shop.test"), "shop.test");
        assert_eq!(registrable_domain("127.0.0.1"), "127.0.0.1");
        assert_eq!(registrable_domain("localhost"), "localhost");
    }

    #[test]
    fn subdomains_are_first_party_and_lookalikes_are_not() {
        assert_eq!(party_of("static.example.com", "example.com"), Party::First);
        assert_eq!(
            party_of("example.com.evil.net", "example.com"),
            Party::Third
        );
        assert_eq!(party_of("user.github.io", "other.github.io"), Party::Third);
    }
}
