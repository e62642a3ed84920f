//! Consent signals a page sends: Google Consent Mode parameters on tag requests, and the IAB TCF
//! v2 consent string its CMP keeps. Pure functions over hostile input: anything malformed reads
//! as absent.

use base64::Engine as _;

use crate::snapshot::{ConsentState, GoogleConsentSignal, Request, TcfConsent};

/// The Consent Mode state of every request that carries `gcs` or `gcd` (Google Analytics 4,
/// Google Ads, Floodlight, and server-side tagging endpoints on the site's own domain alike).
pub(crate) fn google_signals(requests: &[Request]) -> Vec<GoogleConsentSignal> {
    requests
        .iter()
        .filter_map(|r| {
            let mut signal = google_signal(&r.url)?;
            signal.after_answer = r.after_answer;
            Some(signal)
        })
        .collect()
}

fn google_signal(url: &str) -> Option<GoogleConsentSignal> {
    let parsed = url::Url::parse(url).ok()?;
    let mut gcs = None;
    let mut gcd = None;
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "gcs" => gcs = Some(value.chars().take(16).collect::<String>()),
            "gcd" => gcd = Some(value.chars().take(32).collect::<String>()),
            _ => {}
        }
    }
    if gcs.is_none() && gcd.is_none() {
        return None;
    }
    let from_gcd = gcd.as_deref().map(decode_gcd).unwrap_or_default();
    let from_gcs = gcs.as_deref().map(decode_gcs).unwrap_or_default();
    Some(GoogleConsentSignal {
        request_url: url.chars().take(2_000).collect(),
        after_answer: false,
        ad_storage: from_gcd[0].or(from_gcs[0]),
        analytics_storage: from_gcd[1].or(from_gcs[1]),
        ad_user_data: from_gcd[2],
        ad_personalization: from_gcd[3],
        gcs,
        gcd,
    })
}

/// `gcs=G1xy`: ad_storage x, analytics_storage y (1 granted, 0 denied, `-` not set).
fn decode_gcs(gcs: &str) -> [Option<ConsentState>; 2] {
    let bit = |c: Option<char>| match c {
        Some('1') => Some(ConsentState::Granted),
        Some('0') => Some(ConsentState::Denied),
        _ => None,
    };
    let Some(rest) = gcs.strip_prefix("G1") else {
        return [None, None];
    };
    let mut chars = rest.chars();
    [bit(chars.next()), bit(chars.next())]
}

/// `gcd=1<sep><ad_storage><sep><analytics_storage><sep><ad_user_data><sep><ad_personalization>…`:
/// each purpose is a letter that says its default and its update.
fn decode_gcd(gcd: &str) -> [Option<ConsentState>; 4] {
    let letters: Vec<char> = gcd
        .chars()
        .skip(1)
        .filter(|c| c.is_ascii_lowercase())
        .take(4)
        .collect();
    let state = |c: char| match c {
        't' => Some(ConsentState::GrantedByDefault),
        'p' => Some(ConsentState::DeniedByDefault),
        'r' | 'n' | 'v' => Some(ConsentState::GrantedByUpdate),
        'q' | 'm' | 'u' => Some(ConsentState::DeniedByUpdate),
        _ => None, // `l`: not set
    };
    let mut out = [None; 4];
    for (slot, letter) in out.iter_mut().zip(letters) {
        *slot = state(letter);
    }
    out
}

/// Decodes the core segment of a TCF v2 consent string. `None` for anything that is not one.
pub(crate) fn decode_tc_string(
    tc: &str,
    source: &str,
    answered: Option<bool>,
) -> Option<TcfConsent> {
    let core = tc.split('.').next()?.trim();
    if core.is_empty() || core.len() > 8_192 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(core.trim_end_matches('='))
        .ok()?;
    let mut bits = Bits {
        bytes: &bytes,
        at: 0,
    };
    if bits.read(6)? != 2 {
        return None;
    }
    bits.skip(36 + 36)?; // created, last updated
    let cmp_id = bits.read(12)? as u16;
    bits.skip(12 + 6 + 12 + 12)?; // CMP version, consent screen, language, vendor list version
    let policy_version = bits.read(6)? as u8;
    bits.skip(1 + 1 + 12)?; // service specific, non-standard texts, special features
    let purposes_consent = bits.flags(24)?;
    let purposes_legitimate_interest = bits.flags(24)?;
    bits.skip(1 + 12)?; // purpose one treatment, publisher country
    let max_vendor = bits.read(16)? as u32;
    let vendors_consented = if bits.read(1)? == 0 {
        (0..max_vendor).try_fold(0u32, |n, _| Some(n + bits.read(1)? as u32))?
    } else {
        let entries = bits.read(12)?;
        let mut count = 0u32;
        for _ in 0..entries {
            let is_range = bits.read(1)? == 1;
            let start = bits.read(16)? as u32;
            let end = if is_range {
                bits.read(16)? as u32
            } else {
                start
            };
            count += end.checked_sub(start)? + 1;
        }
        count
    };
    Some(TcfConsent {
        source: source.to_owned(),
        cmp_id,
        policy_version,
        purposes_consent,
        purposes_legitimate_interest,
        vendors_consented,
        answered,
    })
}

struct Bits<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, width: usize) -> Option<u64> {
        let mut value = 0u64;
        for _ in 0..width {
            let byte = *self.bytes.get(self.at / 8)?;
            let bit = (byte >> (7 - self.at % 8)) & 1;
            value = (value << 1) | u64::from(bit);
            self.at += 1;
        }
        Some(value)
    }

    fn skip(&mut self, width: usize) -> Option<()> {
        self.at += width;
        (self.at <= self.bytes.len() * 8).then_some(())
    }

    /// The 1-based numbers of the set bits among the next `width`.
    fn flags(&mut self, width: usize) -> Option<Vec<u8>> {
        let mut set = Vec::new();
        for n in 1..=width {
            if self.read(1)? == 1 {
                set.push(n as u8);
            }
        }
        Some(set)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a TC string core segment with the given purposes and vendor ids (bit field).
    pub(crate) fn encode_tc_string(cmp_id: u16, purposes: &[u8], vendors: &[u32]) -> String {
        let mut bits: Vec<bool> = Vec::new();
        let mut put = |value: u64, width: usize| {
            for i in (0..width).rev() {
                bits.push(i < 64 && (value >> i) & 1 == 1);
            }
        };
        put(2, 6);
        put(0, 72);
        put(u64::from(cmp_id), 12);
        put(0, 42);
        put(4, 6);
        put(0, 14);
        let purpose_bits = purposes.iter().fold(0u64, |v, p| v | 1 << (24 - p));
        put(purpose_bits, 24);
        put(0, 24 + 13);
        let max = vendors.iter().copied().max().unwrap_or(0);
        put(u64::from(max), 16);
        put(0, 1);
        for id in 1..=max {
            put(u64::from(vendors.contains(&id)), 1);
        }
        let bytes: Vec<u8> = bits
            .chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, &on)| b | (u8::from(on) << (7 - i)))
            })
            .collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn a_tc_string_decodes_to_purposes_and_vendor_count() {
        let tc = encode_tc_string(300, &[1, 3, 4], &[2, 5, 755]);
        let decoded =
            decode_tc_string(&format!("{tc}.YAAAAAAAAAAA"), "cookie", None).expect("decodes");
        assert_eq!(decoded.cmp_id, 300);
        assert_eq!(decoded.policy_version, 4);
        assert_eq!(decoded.purposes_consent, vec![1, 3, 4]);
        assert!(decoded.purposes_legitimate_interest.is_empty());
        assert_eq!(decoded.vendors_consented, 3);
    }

    #[test]
    fn anything_else_reads_as_absent() {
        for junk in [
            "",
            "!!!",
            "AAAA",
            "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA",
            "x".repeat(9_000).as_str(),
        ] {
            assert!(
                decode_tc_string(junk, "cookie", None).is_none(),
                "{junk:.20}"
            );
        }
    }

    fn request(url: &str) -> Request {
        Request {
            url: url.into(),
            method: "GET".into(),
            resource_type: "Ping".into(),
            host: String::new(),
            party: crate::snapshot::Party::Third,
            status: None,
            failure: None,
            blocked: false,
            started_ms: 0,
            duration_ms: None,
            encoded_bytes: None,
            after_hide: false,
            after_answer: false,
            initiator: None,
            listed: None,
            initiator_type: None,
            request_headers: Vec::new(),
            response: None,
            timing: None,
        }
    }

    #[test]
    fn consent_mode_parameters_decode_per_purpose() {
        let signals = google_signals(&[
            request("https://www.google-analytics.com/g/collect?v=2&gcs=G100&gcd=13p3p3p3p5"),
            request("https://www.google-analytics.com/g/collect?v=2&gcs=G111&gcd=13r3r3r3r5"),
            request("https://www.google-analytics.com/g/collect?v=2&gcs=G101"),
            request("https://shop.example/app.js?v=1"),
        ]);
        assert_eq!(signals.len(), 3);
        assert_eq!(signals[0].ad_storage, Some(ConsentState::DeniedByDefault));
        assert_eq!(
            signals[0].ad_personalization,
            Some(ConsentState::DeniedByDefault)
        );
        assert_eq!(
            signals[1].analytics_storage,
            Some(ConsentState::GrantedByUpdate)
        );
        assert_eq!(signals[1].ad_user_data, Some(ConsentState::GrantedByUpdate));
        assert_eq!(signals[2].ad_storage, Some(ConsentState::Denied));
        assert_eq!(signals[2].analytics_storage, Some(ConsentState::Granted));
        assert_eq!(signals[2].ad_user_data, None);
    }
}
