//! The real EasyPrivacy and EasyList, as Debian's `webext-ublock-origin-chromium` ships them,
//! classify the requests real tag managers and pixels make. No browser: the scan-level test is in
//! `consent_journeys.rs`.

use std::path::Path;
use std::time::Instant;

use scanner::classify::{DEBIAN_LIST_FOLDER, FilterLists};

fn debian_lists() -> FilterLists {
    let folder = Path::new(DEBIAN_LIST_FOLDER);
    let started = Instant::now();
    let lists = FilterLists::load_folder(folder).unwrap_or_else(|e| {
        panic!("{e}: install Debian's webext-ublock-origin-chromium (scripts/test does)")
    });
    eprintln!("loaded both lists in {:?}", started.elapsed());
    lists
}

#[test]
fn debian_lists_name_tag_managers_and_pixels() {
    let lists = debian_lists();
    let infos = lists.infos();
    assert_eq!(
        infos.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["easyprivacy", "easylist"]
    );
    for info in &infos {
        assert!(info.rules > 10_000, "{info:?}");
        assert!(
            info.title.as_deref().is_some_and(|t| t.starts_with("Easy")),
            "{info:?}"
        );
        assert!(!info.file_date.is_empty());
    }
    let page = "https://shop.example/";
    for (url, kind) in [
        (
            "https://www.googletagmanager.com/gtag/js?id=G-TEST123",
            "Script",
        ),
        (
            "https://www.google-analytics.com/g/collect?v=2&tid=G-TEST123",
            "Ping",
        ),
        ("https://connect.facebook.net/en_US/fbevents.js", "Script"),
        ("https://www.facebook.com/tr/?id=123&ev=PageView", "Image"),
    ] {
        let hit = lists
            .classify(url, page, kind)
            .unwrap_or_else(|| panic!("{url} is not classified"));
        assert_eq!(hit.list, "easyprivacy", "{url}: {hit:?}");
        assert!(!hit.rule.is_empty());
    }
    for (url, kind) in [
        ("https://shop.example/app.js", "Script"),
        (
            "https://cdn.jsdelivr.net/npm/vue@3/dist/vue.global.js",
            "Script",
        ),
    ] {
        assert_eq!(lists.classify(url, page, kind), None, "{url}");
    }
}
