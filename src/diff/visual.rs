//! Visual diff of two screenshots: which pixels changed (beyond a small colour tolerance, outside
//! ignored rectangles), what share of the picture that is, the bounding boxes of the changed
//! regions, and a diff image that dims what stayed and paints what changed.

use image::{ImageFormat, RgbaImage};
use serde::{Deserialize, Serialize};

/// A rectangle in screenshot pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x - self.x < self.width && y - self.y < self.height
    }
}

#[derive(Debug, Clone)]
pub struct VisualOptions {
    /// A pixel changed when a colour channel moved by more than this (anti-aliasing, JPEG noise).
    pub tolerance: u8,
    /// Regions to leave out (carousels, dates, ads).
    pub ignore: Vec<Rect>,
}

impl Default for VisualOptions {
    fn default() -> Self {
        VisualOptions {
            tolerance: 24,
            ignore: Vec::new(),
        }
    }
}

/// What changed between two screenshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VisualDiff {
    pub width: u32,
    pub height: u32,
    pub changed_pixels: u64,
    /// Changed pixels over compared pixels (ignored regions left out), 0–1.
    pub changed_share: f64,
    /// Bounding boxes of connected changed areas, largest first (at most 50).
    pub regions: Vec<Rect>,
    /// The two screenshots differ in size (the part only one has counts as changed).
    pub size_changed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VisualError {
    #[error("the screenshot is not a readable PNG: {0}")]
    Decode(String),
    #[error("the diff image could not be encoded: {0}")]
    Encode(String),
}

/// The size of the grid cells changed pixels are grouped in to find regions.
const CELL: u32 = 16;
const MAX_REGIONS: usize = 50;

pub fn decode(png: &[u8]) -> Result<RgbaImage, VisualError> {
    image::load_from_memory_with_format(png, ImageFormat::Png)
        // `into_rgba8` keeps an RGBA image's buffer instead of copying it.
        .map(image::DynamicImage::into_rgba8)
        .map_err(|e| VisualError::Decode(e.to_string()))
}

/// Two screenshots decoded side by side (decoding dominates a visual diff, and the cores are
/// there).
pub fn decode_pair(
    before: &[u8],
    after: &[u8],
) -> (
    Result<RgbaImage, VisualError>,
    Result<RgbaImage, VisualError>,
) {
    std::thread::scope(|scope| {
        let old = scope.spawn(|| decode(before));
        let new = decode(after);
        let old = old
            .join()
            .unwrap_or_else(|_| Err(VisualError::Decode("the decoder panicked".into())));
        (old, new)
    })
}

/// Compares two screenshots; returns the figures and a mask of changed pixels (row-major over
/// `width × height`).
pub fn compare(
    before: &RgbaImage,
    after: &RgbaImage,
    options: &VisualOptions,
) -> (VisualDiff, Vec<bool>) {
    let width = before.width().max(after.width());
    let height = before.height().max(after.height());
    let size_changed = before.dimensions() != after.dimensions();
    let mut mask = vec![false; width as usize * height as usize];
    let (cells_x, cells_y) = (width.div_ceil(CELL), height.div_ceil(CELL));
    let mut cells = vec![false; (cells_x * cells_y) as usize];
    let mut changed = 0u64;
    let mut compared = 0u64;
    let tolerance = options.tolerance;
    let (bw, bh) = before.dimensions();
    let (aw, ah) = after.dimensions();
    let (braw, araw) = (before.as_raw(), after.as_raw());
    for y in 0..height {
        let row_ignored = options
            .ignore
            .iter()
            .any(|r| y >= r.y && y - r.y < r.height);
        // Most rows of two screenshots of one page are byte for byte the same: one comparison
        // of the whole row settles them.
        if !row_ignored && !size_changed {
            let row = (y * width * 4) as usize..((y + 1) * width * 4) as usize;
            if braw[row.clone()] == araw[row] {
                compared += u64::from(width);
                continue;
            }
        }
        for x in 0..width {
            if row_ignored && options.ignore.iter().any(|r| r.contains(x, y)) {
                continue;
            }
            compared += 1;
            let differs = if x < bw && y < bh && x < aw && y < ah {
                let b = ((y * bw + x) * 4) as usize;
                let a = ((y * aw + x) * 4) as usize;
                braw[b..b + 4]
                    .iter()
                    .zip(&araw[a..a + 4])
                    .any(|(p, q)| p.abs_diff(*q) > tolerance)
            } else {
                true
            };
            if differs {
                changed += 1;
                mask[(y * width + x) as usize] = true;
                cells[((y / CELL) * cells_x + x / CELL) as usize] = true;
            }
        }
    }
    let regions = regions(&cells, cells_x, cells_y, width, height);
    let diff = VisualDiff {
        width,
        height,
        changed_pixels: changed,
        changed_share: if compared == 0 {
            0.0
        } else {
            changed as f64 / compared as f64
        },
        regions,
        size_changed,
    };
    (diff, mask)
}

/// Connected changed cells (8-neighbourhood) as pixel bounding boxes, largest first.
fn regions(cells: &[bool], cells_x: u32, cells_y: u32, width: u32, height: u32) -> Vec<Rect> {
    let mut seen = vec![false; cells.len()];
    let mut boxes: Vec<(u64, Rect)> = Vec::new();
    for start in 0..cells.len() {
        if !cells[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![start];
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        let mut count = 0u64;
        while let Some(cell) = stack.pop() {
            count += 1;
            let (cx, cy) = (cell as u32 % cells_x, cell as u32 / cells_x);
            (x0, y0, x1, y1) = (x0.min(cx), y0.min(cy), x1.max(cx), y1.max(cy));
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (cx as i64 + dx, cy as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= cells_x as i64 || ny >= cells_y as i64 {
                        continue;
                    }
                    let next = (ny * cells_x as i64 + nx) as usize;
                    if cells[next] && !seen[next] {
                        seen[next] = true;
                        stack.push(next);
                    }
                }
            }
        }
        let x = x0 * CELL;
        let y = y0 * CELL;
        boxes.push((
            count,
            Rect {
                x,
                y,
                width: ((x1 + 1) * CELL).min(width) - x,
                height: ((y1 + 1) * CELL).min(height) - y,
            },
        ));
    }
    boxes.sort_by_key(|b| std::cmp::Reverse(b.0));
    boxes
        .into_iter()
        .take(MAX_REGIONS)
        .map(|(_, r)| r)
        .collect()
}

/// The diff image: the new screenshot dimmed to grey where nothing changed, painted red where
/// something did, as a PNG.
pub fn diff_image(
    after: &RgbaImage,
    diff: &VisualDiff,
    mask: &[bool],
) -> Result<Vec<u8>, VisualError> {
    // RGB and fast compression: the picture is for people, and encoding dominated its cost.
    let mut out = image::RgbImage::new(diff.width, diff.height);
    let (aw, ah) = after.dimensions();
    let shade = |source: &[u8], changed: bool| -> [u8; 3] {
        let grey =
            ((source[0] as u32 * 30 + source[1] as u32 * 59 + source[2] as u32 * 11) / 100) as u8;
        if changed {
            [230, 30 + grey / 8, 30 + grey / 8]
        } else {
            let light = 160 + grey / 3;
            [light, light, light]
        }
    };
    if (aw, ah) == (diff.width, diff.height) {
        // The usual case, pixel by pixel over the raw buffers.
        for ((target, source), changed) in out
            .chunks_exact_mut(3)
            .zip(after.as_raw().chunks_exact(4))
            .zip(mask)
        {
            target.copy_from_slice(&shade(source, *changed));
        }
    } else {
        for (x, y, pixel) in out.enumerate_pixels_mut() {
            let source = if x < aw && y < ah {
                after.get_pixel(x, y).0
            } else {
                [255, 255, 255, 255]
            };
            pixel.0 = shade(&source, mask[(y * diff.width + x) as usize]);
        }
    }
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    );
    out.write_with_encoder(encoder)
        .map_err(|e| VisualError::Encode(e.to_string()))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas(width: u32, height: u32) -> RgbaImage {
        RgbaImage::from_pixel(width, height, image::Rgba([250, 250, 250, 255]))
    }

    fn paint(image: &mut RgbaImage, rect: Rect, colour: [u8; 4]) {
        for y in rect.y..rect.y + rect.height {
            for x in rect.x..rect.x + rect.width {
                image.put_pixel(x, y, image::Rgba(colour));
            }
        }
    }

    #[test]
    fn identical_screenshots_have_no_change() {
        let (diff, _) = compare(
            &canvas(100, 80),
            &canvas(100, 80),
            &VisualOptions::default(),
        );
        assert_eq!(diff.changed_pixels, 0);
        assert!(diff.regions.is_empty());
    }

    #[test]
    fn a_changed_banner_is_one_region_with_its_share() {
        let before = canvas(200, 100);
        let mut after = canvas(200, 100);
        let banner = Rect {
            x: 20,
            y: 10,
            width: 40,
            height: 20,
        };
        paint(&mut after, banner, [200, 0, 0, 255]);
        // A faint anti-aliasing difference stays under the tolerance.
        after.put_pixel(150, 90, image::Rgba([240, 245, 250, 255]));
        let (diff, mask) = compare(&before, &after, &VisualOptions::default());
        assert_eq!(diff.changed_pixels, 800);
        assert!((diff.changed_share - 800.0 / 20_000.0).abs() < 1e-9);
        assert_eq!(diff.regions.len(), 1);
        let region = diff.regions[0];
        assert!(region.x <= 20 && region.y <= 10);
        assert!(region.x + region.width >= 60 && region.y + region.height >= 30);
        let png = diff_image(&after, &diff, &mask).unwrap();
        let image = decode(&png).unwrap();
        assert_eq!(
            image.get_pixel(30, 15).0[0],
            230,
            "changed pixels are painted red"
        );
    }

    #[test]
    fn ignored_regions_and_size_changes() {
        let before = canvas(100, 100);
        let mut after = canvas(100, 120);
        let clock = Rect {
            x: 0,
            y: 0,
            width: 50,
            height: 10,
        };
        paint(&mut after, clock, [0, 0, 0, 255]);
        let options = VisualOptions {
            ignore: vec![clock],
            ..VisualOptions::default()
        };
        let (diff, _) = compare(&before, &after, &options);
        assert!(diff.size_changed);
        assert_eq!(diff.changed_pixels, 100 * 20, "only the new rows count");
    }

    #[test]
    fn a_taller_page_paints_its_new_rows_and_keeps_unchanged_ones_grey() {
        let before = canvas(40, 30);
        let after = canvas(40, 50);
        let (diff, mask) = compare(&before, &after, &VisualOptions::default());
        assert_eq!(diff.changed_pixels, 40 * 20, "only the new rows changed");
        let image = decode(&diff_image(&after, &diff, &mask).unwrap()).unwrap();
        assert_eq!(image.dimensions(), (40, 50));
        assert_eq!(image.get_pixel(5, 40).0[0], 230, "a new row is red");
        let unchanged = image.get_pixel(5, 5).0;
        assert_eq!(
            (unchanged[0], unchanged[1]),
            (243, 243),
            "an old row is light grey"
        );
    }
}
