//! Which IP addresses a scan may connect to.
//!
//! Only globally routable unicast addresses are public. Everything a page could use to reach the
//! machine running the scan, its network or a cloud metadata service is refused, including the
//! forms that embed an IPv4 address inside IPv6 (mapped, compatible, NAT64, 6to4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a public destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonPublic {
    Unspecified,
    Loopback,
    Private,
    LinkLocal,
    SharedAddressSpace,
    Multicast,
    Broadcast,
    Reserved,
    Documentation,
    UniqueLocal,
}

impl NonPublic {
    pub fn describe(self) -> &'static str {
        match self {
            NonPublic::Unspecified => "unspecified address",
            NonPublic::Loopback => "loopback address",
            NonPublic::Private => "private network address",
            NonPublic::LinkLocal => "link-local address (cloud metadata range)",
            NonPublic::SharedAddressSpace => "carrier-grade NAT address",
            NonPublic::Multicast => "multicast address",
            NonPublic::Broadcast => "broadcast address",
            NonPublic::Reserved => "reserved address",
            NonPublic::Documentation => "documentation or benchmarking address",
            NonPublic::UniqueLocal => "unique local IPv6 address",
        }
    }
}

/// `Ok(())` when `ip` is a public unicast address a scan may reach.
pub fn classify(ip: IpAddr) -> Result<(), NonPublic> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Result<(), NonPublic> {
    let [a, b, c, _] = ip.octets();
    let verdict = match (a, b, c) {
        (0, _, _) => NonPublic::Unspecified,
        (10, _, _) => NonPublic::Private,
        (100, 64..=127, _) => NonPublic::SharedAddressSpace,
        (127, _, _) => NonPublic::Loopback,
        (169, 254, _) => NonPublic::LinkLocal,
        (172, 16..=31, _) => NonPublic::Private,
        (192, 0, 0) => NonPublic::Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => NonPublic::Documentation,
        (192, 88, 99) => NonPublic::Reserved,
        (192, 168, _) => NonPublic::Private,
        (198, 18..=19, _) => NonPublic::Documentation,
        (224..=239, _, _) => NonPublic::Multicast,
        (255, 255, 255) if ip == Ipv4Addr::BROADCAST => NonPublic::Broadcast,
        (240..=255, _, _) => NonPublic::Reserved,
        _ => return Ok(()),
    };
    Err(verdict)
}

fn classify_v6(ip: Ipv6Addr) -> Result<(), NonPublic> {
    if ip.is_unspecified() {
        return Err(NonPublic::Unspecified);
    }
    if ip.is_loopback() {
        return Err(NonPublic::Loopback);
    }
    if let Some(embedded) = embedded_v4(ip) {
        return classify_v4(embedded);
    }
    let segments = ip.segments();
    let verdict = match segments[0] {
        0xfe80..=0xfebf => NonPublic::LinkLocal,
        0xfec0..=0xfeff => NonPublic::Reserved, // deprecated site-local
        0xfc00..=0xfdff => NonPublic::UniqueLocal,
        0xff00..=0xffff => NonPublic::Multicast,
        0x2001 if segments[1] == 0x0db8 => NonPublic::Documentation,
        // Teredo tunnels (2001::/32) hide an IPv4 peer; benchmarking (2001:2::/48) and the
        // deprecated ORCHID (2001:10::/28) are not destinations either.
        0x2001 if segments[1] == 0 => NonPublic::Reserved,
        0x2001 if segments[1] == 2 && segments[2] == 0 => NonPublic::Documentation,
        0x2001 if (0x10..=0x1f).contains(&segments[1]) => NonPublic::Reserved,
        // Local-use NAT64 (64:ff9b:1::/48) embeds IPv4 addresses at prefix-dependent offsets.
        0x64 if segments[1] == 0xff9b && segments[2] == 1 => NonPublic::Reserved,
        0x3fff if segments[1] <= 0x0fff => NonPublic::Documentation,
        0x0100 if segments[1..4] == [0, 0, 0] => NonPublic::Reserved, // discard-only
        // Only 2000::/3 is allocated global unicast.
        s if !(0x2000..=0x3fff).contains(&s) => NonPublic::Reserved,
        _ => return Ok(()),
    };
    Err(verdict)
}

/// The IPv4 address inside an IPv6 address that routes to it: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(s: &str) -> Result<(), NonPublic> {
        classify(s.parse().expect("test address parses"))
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert_eq!(verdict(ip), Ok(()), "{ip}");
        }
    }

    #[test]
    fn every_non_public_range_is_refused() {
        let cases = [
            ("0.0.0.0", NonPublic::Unspecified),
            ("127.0.0.1", NonPublic::Loopback),
            ("127.255.255.254", NonPublic::Loopback),
            ("10.1.2.3", NonPublic::Private),
            ("172.16.0.1", NonPublic::Private),
            ("172.31.255.255", NonPublic::Private),
            ("192.168.1.1", NonPublic::Private),
            ("169.254.169.254", NonPublic::LinkLocal),
            ("100.64.0.1", NonPublic::SharedAddressSpace),
            ("100.127.255.255", NonPublic::SharedAddressSpace),
            ("224.0.0.1", NonPublic::Multicast),
            ("239.255.255.250", NonPublic::Multicast),
            ("255.255.255.255", NonPublic::Broadcast),
            ("240.0.0.1", NonPublic::Reserved),
            ("192.0.2.1", NonPublic::Documentation),
            ("198.18.0.1", NonPublic::Documentation),
            ("::", NonPublic::Unspecified),
            ("::1", NonPublic::Loopback),
            ("fe80::1", NonPublic::LinkLocal),
            ("fc00::1", NonPublic::UniqueLocal),
            ("fd12:3456::1", NonPublic::UniqueLocal),
            ("ff02::1", NonPublic::Multicast),
            ("2001:db8::1", NonPublic::Documentation),
            ("::ffff:127.0.0.1", NonPublic::Loopback),
            ("::ffff:169.254.169.254", NonPublic::LinkLocal),
            ("::ffff:10.0.0.1", NonPublic::Private),
            ("::127.0.0.1", NonPublic::Loopback),
            ("64:ff9b::a9fe:a9fe", NonPublic::LinkLocal),
            ("2002:7f00:1::", NonPublic::Loopback),
            ("2002:c0a8:101::", NonPublic::Private),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", NonPublic::Reserved),
            ("2001:2::1", NonPublic::Documentation),
            ("64:ff9b:1::a00:1", NonPublic::Reserved),
            ("64:ff9b:1:0:1:200:1:1", NonPublic::Reserved),
        ];
        for (ip, expected) in cases {
            assert_eq!(verdict(ip), Err(expected), "{ip}");
        }
    }

    #[test]
    fn neighbours_of_private_ranges_stay_public() {
        for ip in [
            "11.0.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
        ] {
            assert_eq!(verdict(ip), Ok(()), "{ip}");
        }
    }
}
