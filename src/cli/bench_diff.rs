//! `siteward bench-diff`: the diff engine on large inputs — two snapshots with 5 MB DOMs and 2,000
//! requests each, and two 1280×8000 full-page screenshots — with each step timed on its own.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use image::RgbaImage;

use crate::diff::{self, DiffOptions, visual};

#[derive(Debug, Args)]
pub struct BenchDiffArgs {
    /// Rounds per measurement (the median is printed).
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
}

#[derive(Debug, Args)]
pub struct ParseBaselineArgs {
    /// Rounds (the median is printed).
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// The HTML file to parse.
    pub file: std::path::PathBuf,
}

/// Parses the file `rounds` times and prints the median in milliseconds. Runs without a logger
/// (see `Command::installs_logging`): the cost of siteward's logging on every HTML parse is what
/// the baseline must not include.
pub fn parse_baseline(args: ParseBaselineArgs) -> ExitCode {
    let html = match std::fs::read_to_string(&args.file) {
        Ok(html) => html,
        Err(error) => return super::fail(format!("cannot read {}: {error}", args.file.display())),
    };
    let (median, _) = time(args.rounds, || bare_parse(&html));
    println!("{:.3}", ms(median));
    ExitCode::SUCCESS
}

fn bare_parse(html: &str) -> usize {
    scraper::Html::parse_document(html).tree.nodes().count()
}

/// The bare parse of `html`, timed in a child process of ours with no logger installed.
fn bare_parse_in_a_bare_process(html: &str, rounds: usize) -> Result<Duration, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find our own binary: {e}"))?;
    let file =
        std::env::temp_dir().join(format!("siteward-bench-parse-{}.html", std::process::id()));
    std::fs::write(&file, html).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let output = std::process::Command::new(exe)
        .arg("bench-parse-baseline")
        .arg("--rounds")
        .arg(rounds.to_string())
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    let output = output.map_err(|e| format!("cannot run the parse baseline: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse::<f64>()
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .map_err(|_| {
            format!(
                "the parse baseline failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median of `rounds` timed runs of `work`, after one untimed run (so that the first
/// measurement does not pay for warming caches and the allocator).
fn time<T>(rounds: usize, mut work: impl FnMut() -> T) -> (Duration, T) {
    std::hint::black_box(work());
    let mut samples = Vec::new();
    let mut last = None;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        last = Some(work());
        samples.push(started.elapsed());
    }
    (median(samples), last.expect("at least one round"))
}

/// A page of about `bytes` of paragraphs; `variant` changes a few of them.
fn dom(bytes: usize, variant: u32) -> String {
    let mut html = String::from("<html><head><style>p{margin:0}</style></head><body>");
    let mut i = 0u32;
    while html.len() < bytes {
        let changed = variant > 0 && i.is_multiple_of(997);
        html.push_str(&format!(
            "<div class=\"item\" id=\"i{i}\"><p>Product {i} {} with a description of the item, its price and delivery times.</p><script>track({i})</script></div>",
            if changed { "now discounted" } else { "in stock" }
        ));
        i += 1;
    }
    html.push_str("</body></html>");
    html
}

fn snapshot(variant: u32) -> scanner::Snapshot {
    let requests: Vec<serde_json::Value> = (0u32..2000)
        .map(|i| {
            let host = if variant > 0 && i.is_multiple_of(200) { format!("new{i}.test") } else { format!("host{}.test", i % 150) };
            serde_json::json!({"url": format!("http://{host}/r{i}"), "method": "GET", "resource_type": "Script",
                "host": host, "party": "third", "status": 200, "failure": null, "blocked": false,
                "started_ms": i, "duration_ms": 1, "encoded_bytes": 100})
        })
        .collect();
    let scripts: Vec<serde_json::Value> = (0u32..300)
        .map(|i| serde_json::json!({"kind": "external", "url": format!("http://host{}.test/s{i}.js", i % 150),
            "host": format!("host{}.test", i % 150), "party": "third",
            "sha256": format!("{:064x}", i + if variant > 0 && i.is_multiple_of(50) { 1_000_000 } else { 0 }),
            "size_bytes": 1000, "frame_url": "http://shop.test/"}))
        .collect();
    let cookies: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!({"name": format!("c{i}"), "domain": format!("host{}.test", i % 150), "path": "/",
            "expires": null, "session": true, "secure": variant > 0 && i == 7, "http_only": false,
            "same_site": "lax", "party": "third", "set_by_host": null, "set_by": null, "value_size": 10,
            "classification": null}))
        .collect();
    let hosts: Vec<String> = (0..150).map(|i| format!("host{i}.test")).collect();
    let html = dom(5 * 1024 * 1024, variant);
    serde_json::from_value(serde_json::json!({
        "format_version": 1, "scanner_version": "bench",
        "requested_url": "http://shop.test/", "final_url": "http://shop.test/",
        "redirect_chain": [], "status": 200, "title": "Shop", "first_party_domain": "shop.test",
        "started_at": "2026-11-23T10:00:00Z", "finished_at": "2026-11-23T10:00:01Z",
        "timings": {"load_ms": 1, "network_quiet_ms": 1, "total_ms": 2},
        "browser": {"product": "p", "user_agent": "u", "third_party_cookies_allowed": true},
        "options": {"viewport_width": 1280, "viewport_height": 800, "quiet_period_ms": 1,
            "load_timeout_ms": 1, "scan_timeout_ms": 1, "consent_mode": "no_interaction",
            "policy_pages": false, "resolve": [], "private_destinations_allowed": false},
        "dom": {"size_bytes": html.len(), "html": html, "truncated": false},
        "scripts": scripts, "cookies": cookies, "storage": [], "requests": requests,
        "blocked": [], "console_errors": [], "dialogs": [], "downloads": [],
        "third_party_hosts": hosts, "listed_hosts": [],
        "screenshots": {"viewport": {"width": 1, "height": 1, "sha256": "a", "size_bytes": 1},
            "full_page": {"width": 1, "height": 1, "sha256": "b", "size_bytes": 1},
            "page_height": 1, "full_page_truncated": false, "full_page_max_height": 1},
        "policy_pages": [], "consent": null, "limits_hit": []
    }))
    .expect("a valid synthetic snapshot")
}

/// A 1280×8000 page-like picture: bands of text-like stripes; `variant` recolours a banner.
fn screenshot(variant: bool) -> RgbaImage {
    RgbaImage::from_fn(1280, 8000, |x, y| {
        if variant && (400..520).contains(&y) && (100..1180).contains(&x) {
            return image::Rgba([220, 40, 40, 255]);
        }
        let ink = (y % 24 < 14) && (x % 9 < 6) && ((x / 90 + y / 24) % 7 != 0);
        let shade = if ink { 40 } else { 245 - ((y / 800) as u8 * 3) };
        image::Rgba([shade, shade, shade.saturating_add(5), 255])
    })
}

fn encode(image: &RgbaImage) -> Result<Vec<u8>, String> {
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(image.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(png)
}

pub fn run(args: BenchDiffArgs) -> ExitCode {
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => super::fail(error),
    }
}

fn bench(args: &BenchDiffArgs) -> Result<(), String> {
    let before = snapshot(0);
    let after = snapshot(1);
    let options = DiffOptions::default();
    let (inventory, changes) = time(args.rounds, || diff::inventory::changes(&before, &after));
    let bare_parse = bare_parse_in_a_bare_process(&before.dom.html, args.rounds)?;
    let (text, _) = time(args.rounds, || {
        diff::text::visible_text(&before.dom.html, &[])
    });
    let (old_text, new_text) = (
        diff::text::visible_text(&before.dom.html, &[]),
        diff::text::visible_text(&after.dom.html, &[]),
    );
    let (words, _) = time(args.rounds, || diff::text::word_diff(&old_text, &new_text));
    let (whole, all) = time(args.rounds, || diff::snapshots(&before, &after, &options));
    println!(
        "diff of two snapshots: {:.1} MB DOMs, {} requests, {} scripts, {} cookies each (median of {})",
        before.dom.html.len() as f64 / 1e6,
        before.requests.len(),
        before.scripts.len(),
        before.cookies.len(),
        args.rounds
    );
    println!(
        "  inventory diff                   {:>7.1} ms  ({} changes)",
        ms(inventory),
        changes.len()
    );
    println!(
        "  bare HTML parse of one 5 MB DOM  {:>7.1} ms  (baseline: html5ever through scraper, in a process with no logger)",
        ms(bare_parse)
    );
    println!(
        "  visible text of one 5 MB DOM     {:>7.1} ms  (HTML parse + text walk; {:.2}× the bare parse)",
        ms(text),
        text.as_secs_f64() / bare_parse.as_secs_f64()
    );
    println!(
        "  word diff of the two texts       {:>7.1} ms  ({} words each)",
        ms(words),
        old_text.split_whitespace().count()
    );
    println!(
        "  DOM + inventory diff, whole      {:>7.1} ms  ({} changes; both pages parsed at once; target ≤ 200 ms)",
        ms(whole),
        all.len()
    );

    super::print_figure(
        "diff.visible_text_vs_bare_parse",
        text.as_secs_f64() / bare_parse.as_secs_f64(),
    );
    super::print_figure(
        "diff.whole_vs_bare_parse",
        whole.as_secs_f64() / bare_parse.as_secs_f64(),
    );

    let (png_before, png_after) = (encode(&screenshot(false))?, encode(&screenshot(true))?);
    let (decode, (a, b)) = time(args.rounds, || visual::decode_pair(&png_before, &png_after));
    let (a, b) = (a.map_err(|e| e.to_string())?, b.map_err(|e| e.to_string())?);
    let (compare, (result, mask)) = time(args.rounds, || {
        visual::compare(&a, &b, &visual::VisualOptions::default())
    });
    let (image, png) = time(args.rounds, || visual::diff_image(&b, &result, &mask));
    let png = png.map_err(|e| e.to_string())?;
    println!(
        "visual diff of two 1280×8000 full-page screenshots (PNG {:.1} and {:.1} MB; median of {})",
        png_before.len() as f64 / 1e6,
        png_after.len() as f64 / 1e6,
        args.rounds
    );
    println!("  decode both PNGs (side by side)  {:>7.1} ms", ms(decode));
    println!(
        "  compare (share, regions)         {:>7.1} ms  ({:.2} % changed, {} region(s); target ≤ 150 ms)",
        ms(compare),
        result.changed_share * 100.0,
        result.regions.len()
    );
    println!(
        "  diff image (PNG, {:.1} MB)        {:>7.1} ms",
        png.len() as f64 / 1e6,
        ms(image)
    );
    println!(
        "  all three                        {:>7.1} ms  (target ≤ 150 ms)",
        ms(decode + compare + image)
    );
    super::print_figure(
        "diff.visual_all_vs_decode",
        (decode + compare + image).as_secs_f64() / decode.as_secs_f64(),
    );
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
