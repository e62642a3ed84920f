//! Sitemaps (sitemaps.org 0.9): a `<urlset>` of pages or a `<sitemapindex>` of further sitemaps,
//! plain or gzipped. Hostile input: sizes are capped before and after decompression.

use std::io::Read;

use quick_xml::Reader;
use quick_xml::events::Event;

/// Bytes of one sitemap after decompression at most (the protocol's own limit is 50 MB; a crawl
/// needs far less and a gzip bomb must not get far).
pub const MAX_SITEMAP_BYTES: u64 = 10 * 1024 * 1024;
/// `<loc>` entries read from one sitemap at most (the protocol's limit).
const MAX_ENTRIES: usize = 50_000;
/// Characters of one `<loc>` at most.
const MAX_LOC_CHARS: usize = 2_048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sitemap {
    /// A `<urlset>`: page URLs.
    Pages(Vec<String>),
    /// A `<sitemapindex>`: the URLs of further sitemaps.
    Index(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SitemapError {
    #[error("the sitemap is larger than {MAX_SITEMAP_BYTES} bytes once decompressed")]
    TooLarge,
    #[error("the sitemap is gzipped but does not decompress: {0}")]
    Gzip(String),
    #[error("the sitemap is not XML: {0}")]
    Xml(String),
    #[error("the document is neither a <urlset> nor a <sitemapindex>")]
    NotASitemap,
}

/// Parses a sitemap from its bytes as fetched; gzip is recognized by its magic number, whatever
/// the URL or content type said.
pub fn parse_sitemap(bytes: &[u8]) -> Result<Sitemap, SitemapError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut xml = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_SITEMAP_BYTES + 1)
            .read_to_end(&mut xml)
            .map_err(|e| SitemapError::Gzip(e.to_string()))?;
        return parse_xml(&xml);
    }
    parse_xml(bytes)
}

fn parse_xml(xml: &[u8]) -> Result<Sitemap, SitemapError> {
    if xml.len() as u64 > MAX_SITEMAP_BYTES {
        return Err(SitemapError::TooLarge);
    }
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut root: Option<bool> = None; // Some(true): a sitemap index
    let mut in_loc = false;
    let mut loc = String::new();
    let mut locs = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| SitemapError::Xml(e.to_string()))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name();
                let name: &str = name.as_ref();
                match (root, name) {
                    (None, "urlset") => root = Some(false),
                    (None, "sitemapindex") => root = Some(true),
                    (None, _) => return Err(SitemapError::NotASitemap),
                    (Some(_), "loc") => {
                        in_loc = true;
                        loc.clear();
                    }
                    _ => {}
                }
            }
            Event::Empty(e) if root.is_none() => {
                let name = e.local_name();
                return match name.as_ref() {
                    "urlset" => Ok(Sitemap::Pages(Vec::new())),
                    "sitemapindex" => Ok(Sitemap::Index(Vec::new())),
                    _ => Err(SitemapError::NotASitemap),
                };
            }
            Event::Text(text) if in_loc => push_bounded(&mut loc, &text),
            Event::CData(text) if in_loc => push_bounded(&mut loc, &text),
            Event::GeneralRef(reference) if in_loc => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    _ => match &*reference {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => None,
                    },
                };
                if let Some(c) = resolved {
                    push_bounded(&mut loc, c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::End(e) if in_loc && e.local_name().as_ref() == "loc" => {
                in_loc = false;
                let value = loc.trim();
                if !value.is_empty() && value.chars().count() <= MAX_LOC_CHARS {
                    locs.push(value.to_owned());
                }
                if locs.len() >= MAX_ENTRIES {
                    break;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    match root {
        Some(true) => Ok(Sitemap::Index(locs)),
        Some(false) => Ok(Sitemap::Pages(locs)),
        None => Err(SitemapError::NotASitemap),
    }
}

fn push_bounded(into: &mut String, text: &str) {
    if into.len() <= MAX_LOC_CHARS * 4 {
        into.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const URLSET: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://shop.test/</loc><lastmod>2026-11-01</lastmod></url>
  <url><loc> https://shop.test/search?q=a&amp;page=2 </loc></url>
  <url><loc><![CDATA[https://shop.test/blog/a-post]]></loc></url>
</urlset>"#;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_urlset_and_an_index_plain_or_gzipped() {
        let pages = Sitemap::Pages(vec![
            "https://shop.test/".into(),
            "https://shop.test/search?q=a&page=2".into(),
            "https://shop.test/blog/a-post".into(),
        ]);
        assert_eq!(parse_sitemap(URLSET.as_bytes()), Ok(pages.clone()));
        assert_eq!(parse_sitemap(&gzip(URLSET.as_bytes())), Ok(pages));
        let index = r#"<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>https://shop.test/sitemap-products.xml.gz</loc></sitemap></sitemapindex>"#;
        assert_eq!(
            parse_sitemap(index.as_bytes()),
            Ok(Sitemap::Index(vec![
                "https://shop.test/sitemap-products.xml.gz".into()
            ]))
        );
    }

    #[test]
    fn hostile_or_wrong_documents_are_refused_with_a_reason() {
        assert_eq!(
            parse_sitemap(b"<html><body>Not found</body></html>"),
            Err(SitemapError::NotASitemap)
        );
        assert!(matches!(
            parse_sitemap(b"<urlset><url><loc>https://a</url>"),
            Err(SitemapError::Xml(_))
        ));
        assert!(matches!(
            parse_sitemap(&[0x1f, 0x8b, 0, 1, 2]),
            Err(SitemapError::Gzip(_))
        ));
        // A gzip bomb stops at the cap.
        let bomb = gzip(&vec![b' '; (MAX_SITEMAP_BYTES + 10) as usize]);
        assert!(bomb.len() < 100_000);
        assert_eq!(parse_sitemap(&bomb), Err(SitemapError::TooLarge));
        let long = format!(
            "<urlset><url><loc>https://shop.test/{}</loc></url></urlset>",
            "a".repeat(5_000)
        );
        assert_eq!(
            parse_sitemap(long.as_bytes()),
            Ok(Sitemap::Pages(Vec::new()))
        );
    }
}
