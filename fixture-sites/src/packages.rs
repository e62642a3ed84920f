//! Open-source front-end packages (a bot detector, consent managers) installed from the npm
//! registry outside the repository and served by the CDN host under `/pkg/`, so that fixture pages
//! run code nobody on this project wrote.
//!
//! `scripts/lib.sh` (`ensure_fixture_packages`) installs them and exports their `node_modules`
//! folder as `SITEWARD_FIXTURE_PACKAGES`.

use std::path::{Component, Path, PathBuf};

use actix_web::HttpResponse;

/// The environment variable naming the installed packages' `node_modules` folder.
pub const PACKAGES_ENV: &str = "SITEWARD_FIXTURE_PACKAGES";

/// The packages the fixture pages use (installed by `scripts/lib.sh` at the versions it names).
pub const PACKAGES: [&str; 10] = [
    "@fingerprintjs/botd",
    "vanilla-cookieconsent",
    "klaro",
    "cookieconsent",
    "tarteaucitronjs",
    "cookie-though",
    "cookies-eu-banner",
    "react",
    "react-dom",
    "react-router-dom",
];

/// The installed packages' folder; panics with what to do when it is missing, so a test that
/// needs the packages fails loudly instead of passing on an empty page.
pub fn packages_dir() -> PathBuf {
    let dir = std::env::var_os(PACKAGES_ENV).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{PACKAGES_ENV} is not set: run the tests with scripts/test, or `. scripts/lib.sh && \
             ensure_fixture_packages` first"
        )
    });
    for package in PACKAGES {
        assert!(
            dir.join(package).join("package.json").is_file(),
            "{PACKAGES_ENV}={} lacks the package {package}: run `. scripts/lib.sh && \
             ensure_fixture_packages`",
            dir.display()
        );
    }
    dir
}

/// The file at `/pkg/<path>`, or 404 for anything outside the packages folder.
pub(crate) async fn serve(path: &str) -> HttpResponse {
    let Some(relative) = safe_relative(path) else {
        return HttpResponse::NotFound().finish();
    };
    let Some(root) = std::env::var_os(PACKAGES_ENV) else {
        return HttpResponse::InternalServerError().body(format!(
            "{PACKAGES_ENV} is not set: the fixture packages are not installed"
        ));
    };
    match tokio::fs::read(Path::new(&root).join(relative)).await {
        Ok(body) => HttpResponse::Ok()
            .content_type(content_type(path))
            // Module scripts load across origins only with CORS.
            .insert_header(("Access-Control-Allow-Origin", "*"))
            .body(body),
        Err(_) => HttpResponse::NotFound().finish(),
    }
}

/// `path` as a relative path with only normal components (no `..`, no root).
fn safe_relative(path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    let normal = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    (normal && !path.trim_start_matches('/').is_empty()).then(|| relative.to_path_buf())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        // The packages' files are UTF-8; without a charset a page that declares none would read
        // them as windows-1252 and some (klaro) fail to parse.
        Some("js" | "mjs") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_folder_are_served() {
        assert!(safe_relative("@fingerprintjs/botd/dist/botd.esm.js").is_some());
        for bad in ["", "/", "../secret", "a/../../b", "/etc/passwd/../x"] {
            assert!(safe_relative(bad).is_none(), "{bad:?}");
        }
    }
}
