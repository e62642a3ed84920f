//! Checking an uploaded logo: a PNG that decodes, or an SVG made only of drawing elements and
//! presentation attributes — no script, no event handlers, no external references, no foreign
//! content — and small either way. Anything else is refused with the reason.

use std::io::Cursor;

/// The largest logo accepted.
pub const MAX_LOGO_BYTES: usize = 192 * 1024;
/// The largest PNG logo, in pixels either way.
const MAX_SIDE: u32 = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogoError {
    #[error("the logo is larger than {} KiB", MAX_LOGO_BYTES / 1024)]
    TooLarge,
    #[error("send the logo as image/png or image/svg+xml")]
    Type,
    #[error("the PNG cannot be read: {0}")]
    BadPng(String),
    #[error("the PNG is larger than {MAX_SIDE}×{MAX_SIDE} pixels")]
    TooManyPixels,
    #[error("the SVG cannot be read: {0}")]
    BadSvg(String),
    #[error("the SVG contains <{0}>, which a logo may not (only drawing elements are allowed)")]
    Element(String),
    #[error("the SVG's attribute `{0}` is not allowed in a logo (no scripts, events or links)")]
    Attribute(String),
}

/// The kinds of logo accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoType {
    Png,
    Svg,
}

impl LogoType {
    pub fn parse(content_type: &str) -> Option<LogoType> {
        match content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "image/png" => Some(LogoType::Png),
            "image/svg+xml" => Some(LogoType::Svg),
            _ => None,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            LogoType::Png => "image/png",
            LogoType::Svg => "image/svg+xml",
        }
    }
}

/// Drawing elements an SVG logo may use.
const ELEMENTS: &[&str] = &[
    "svg",
    "g",
    "path",
    "rect",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "text",
    "tspan",
    "defs",
    "lineargradient",
    "radialgradient",
    "stop",
    "title",
    "desc",
    "clippath",
    "mask",
    "symbol",
    "use",
];

/// Attributes an SVG logo may use (compared lower-case, without namespace prefix).
const ATTRIBUTES: &[&str] = &[
    "xmlns",
    "version",
    "id",
    "class",
    "viewbox",
    "width",
    "height",
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "cx",
    "cy",
    "r",
    "rx",
    "ry",
    "d",
    "points",
    "fill",
    "fill-opacity",
    "fill-rule",
    "clip-rule",
    "stroke",
    "stroke-width",
    "stroke-opacity",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-miterlimit",
    "stroke-dasharray",
    "opacity",
    "transform",
    "offset",
    "stop-color",
    "stop-opacity",
    "gradientunits",
    "gradienttransform",
    "preserveaspectratio",
    "font-family",
    "font-size",
    "font-weight",
    "text-anchor",
    "clip-path",
    "mask",
    "href",
    "space",
    "style",
    "dominant-baseline",
    "letter-spacing",
];

/// Checks `bytes` as a logo of `kind`.
pub fn check(kind: LogoType, bytes: &[u8]) -> Result<(), LogoError> {
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(LogoError::TooLarge);
    }
    match kind {
        LogoType::Png => check_png(bytes),
        LogoType::Svg => check_svg(bytes),
    }
}

fn check_png(bytes: &[u8]) -> Result<(), LogoError> {
    let reader = image::ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Png);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| LogoError::BadPng(e.to_string()))?;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(LogoError::TooManyPixels);
    }
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| LogoError::BadPng(e.to_string()))?;
    Ok(())
}

fn check_svg(bytes: &[u8]) -> Result<(), LogoError> {
    let text = std::str::from_utf8(bytes).map_err(|_| LogoError::BadSvg("not UTF-8".into()))?;
    let mut saw_svg = false;
    for token in xmlparser::Tokenizer::from(text) {
        let token = token.map_err(|e| LogoError::BadSvg(e.to_string()))?;
        match token {
            xmlparser::Token::ElementStart { local, .. } => {
                let name = local.as_str().to_ascii_lowercase();
                if !ELEMENTS.contains(&name.as_str()) {
                    return Err(LogoError::Element(name));
                }
                saw_svg |= name == "svg";
            }
            xmlparser::Token::Attribute { local, value, .. } => {
                let name = local.as_str().to_ascii_lowercase();
                if !ATTRIBUTES.contains(&name.as_str()) {
                    return Err(LogoError::Attribute(name));
                }
                let value = value.as_str().to_ascii_lowercase();
                // Links may only point inside the logo; styles may not fetch or run anything.
                let outward = (name == "href" && !value.trim_start().starts_with('#'))
                    || value.contains("url(") && !value.contains("url(#")
                    || value.contains("javascript:")
                    || value.contains("expression(")
                    || value.contains("@import");
                if outward {
                    return Err(LogoError::Attribute(name));
                }
            }
            xmlparser::Token::DtdStart { .. }
            | xmlparser::Token::EmptyDtd { .. }
            | xmlparser::Token::EntityDeclaration { .. } => {
                return Err(LogoError::BadSvg(
                    "a DOCTYPE or entity is not allowed".into(),
                ));
            }
            xmlparser::Token::ProcessingInstruction { target, .. }
                if !target.as_str().eq_ignore_ascii_case("xml") =>
            {
                return Err(LogoError::BadSvg(
                    "processing instructions are not allowed".into(),
                ));
            }
            _ => {}
        }
    }
    if !saw_svg {
        return Err(LogoError::BadSvg("there is no <svg> element".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = r##"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><defs><linearGradient id="g"><stop offset="0" stop-color="#123456"/></linearGradient></defs><rect width="10" height="10" fill="url(#g)"/><text x="1" y="8">Agency</text></svg>"##;

    #[test]
    fn a_drawing_passes_and_anything_that_could_run_or_fetch_is_refused() {
        assert_eq!(check(LogoType::Svg, CLEAN.as_bytes()), Ok(()));
        let refused = [
            (r#"<svg><script>alert(1)</script></svg>"#, "script"),
            (r#"<svg onload="alert(1)"><rect/></svg>"#, "onload"),
            (
                r#"<svg><foreignObject><p>x</p></foreignObject></svg>"#,
                "foreignobject",
            ),
            (
                r#"<svg><a href="javascript:alert(1)"><rect/></a></svg>"#,
                "<a>",
            ),
            (
                r#"<svg><use href="https://evil.test/x.svg#a"/></svg>"#,
                "href",
            ),
            (
                r#"<svg><rect style="fill:url(https://evil.test/)"/></svg>"#,
                "style",
            ),
            (r#"<!DOCTYPE svg [<!ENTITY x "y">]><svg/>"#, "DOCTYPE"),
            (r#"<svg><image href="data:x"/></svg>"#, "image"),
        ];
        for (svg, why) in refused {
            let error = check(LogoType::Svg, svg.as_bytes()).unwrap_err();
            assert!(
                error
                    .to_string()
                    .to_lowercase()
                    .contains(&why.to_lowercase().replace(['<', '>'], "")),
                "{svg}: {error}"
            );
        }
        assert_eq!(
            check(LogoType::Svg, &vec![b' '; MAX_LOGO_BYTES + 1]),
            Err(LogoError::TooLarge)
        );
    }

    #[test]
    fn a_png_must_decode_and_stay_small() {
        let mut png = Vec::new();
        image::RgbaImage::new(4, 4)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(check(LogoType::Png, &png), Ok(()));
        assert!(matches!(
            check(LogoType::Png, b"\x89PNG\r\n\x1a\nnot really"),
            Err(LogoError::BadPng(_))
        ));
        let mut big = Vec::new();
        image::GrayImage::new(3000, 1)
            .write_to(&mut Cursor::new(&mut big), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(check(LogoType::Png, &big), Err(LogoError::TooManyPixels));
    }
}
