//! An outdoor-gear shop built like a real site, for crawls: 65 pages over two hosts of one
//! registrable domain (`www.outdoor.test` and `blog.outdoor.test`).
//!
//! - `/` links to the catalogue, the blog, contact, about, the cart, the checkout, the account,
//!   a redirect loop and another site (the fixture shop);
//! - `/products` lists 40 product pages `/product/item-01` … `/product/item-40` (one template);
//! - `blog.outdoor.test/` lists 10 posts `/2026/11/post-01` … (one template);
//! - `/contact` is the only page that loads a tracker (`ads.test`'s script, whose pixel sets the
//!   `IDE` cookie);
//! - `/checkout` is a payment page (card fields in `pay.test`'s iframe);
//! - `/account/` and `/account/orders` are disallowed by `robots.txt`;
//! - `/loop-a` and `/loop-b` redirect to each other for ever;
//! - `/crash-tour` (linked from nowhere) links to `/crashing`, whose script eats memory until
//!   the renderer dies, and then to `/about` and `/faq`;
//! - `/faq` and `/shipping` are linked from nowhere: only the sitemap lists them. `robots.txt`
//!   names `/sitemap.xml`, a sitemap index whose one sitemap is gzipped
//!   (`/sitemaps/pages.xml.gz`).

use std::io::Write;

use actix_web::HttpResponse;

use crate::{ADS, PAY, SHOP};

/// The shop's main host.
pub const OUTDOOR: &str = "www.outdoor.test";
/// Its blog, on a subdomain: the same site.
pub const OUTDOOR_BLOG: &str = "blog.outdoor.test";
/// Product pages in the catalogue.
pub const PRODUCTS: usize = 40;
/// Posts on the blog.
pub const POSTS: usize = 10;
/// Every page the site has, on both hosts, redirect loop included.
pub const PAGES: usize = 65;

/// The pages a crawl with the default rules visits, as (host, path and query): every page
/// linked from the start, two of each template (the sitemap's `item-07` and the catalogue's
/// first product; two posts), the two pages only the gzipped sitemap lists, and the products'
/// add-to-cart link. `/account/` is disallowed by robots.txt and `/loop-a` never loads.
pub const DEFAULT_CRAWL: [(&str, &str); 14] = [
    (OUTDOOR, "/"),
    (OUTDOOR, "/products"),
    (OUTDOOR_BLOG, "/"),
    (OUTDOOR, "/contact"),
    (OUTDOOR, "/about"),
    (OUTDOOR, "/cart"),
    (OUTDOOR, "/checkout"),
    (OUTDOOR, "/faq"),
    (OUTDOOR, "/shipping"),
    (OUTDOOR, "/product/item-07"),
    (OUTDOOR, "/product/item-01"),
    (OUTDOOR_BLOG, "/2026/11/post-01"),
    (OUTDOOR_BLOG, "/2026/11/post-02"),
    (OUTDOOR, "/cart?add=1"),
];

const HTML: &str = "text/html; charset=utf-8";

/// The URL paths of the main host's pages linked from `/`, in order.
pub const HOME_LINKS: [&str; 8] = [
    "/products",
    "/contact",
    "/about",
    "/cart",
    "/checkout",
    "/account/",
    "/loop-a",
    "/about#team",
];

pub(crate) fn route(
    host: &str,
    path: &str,
    http: &dyn Fn(&str, &str) -> String,
) -> Option<HttpResponse> {
    let www = |p: &str| http(OUTDOOR, p);
    let blog = |p: &str| http(OUTDOOR_BLOG, p);
    let page = |title: &str, body: &str| {
        HttpResponse::Ok().content_type(HTML).body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><header><a href=\"{home}\">Outdoor</a> <a href=\"{products}\">Products</a> \
             <a href=\"{blog}\">Blog</a></header><main><h1>{title}</h1>{body}</main></body></html>",
            home = www("/"),
            products = www("/products"),
            blog = blog("/"),
        ))
    };
    let response = match (host, path) {
        (OUTDOOR, "/") => {
            let links: String = HOME_LINKS
                .iter()
                .map(|p| format!("<a href=\"{p}\">{p}</a> "))
                .collect();
            page(
                "Outdoor",
                &format!(
                    "<p>Gear for the hills.</p><nav>{links}\
                     <a href=\"/products?utm_source=newsletter&amp;utm_medium=mail\">Shop the sale</a> \
                     <a href=\"mailto:hello@outdoor.test\">Mail us</a> \
                     <a href=\"{other}\">Our friends' shop</a></nav>",
                    other = http(SHOP, "/"),
                ),
            )
        }
        (OUTDOOR, "/products") => {
            let items: String = (1..=PRODUCTS)
                .map(|n| format!("<li><a href=\"/product/item-{n:02}\">Item {n}</a></li>"))
                .collect();
            page("Products", &format!("<ul>{items}</ul>"))
        }
        (OUTDOOR, p) if p.starts_with("/product/item-") => {
            let n: usize = p.trim_start_matches("/product/item-").parse().ok()?;
            if !(1..=PRODUCTS).contains(&n) {
                return None;
            }
            page(
                &format!("Item {n}"),
                "<p>A fine piece of gear.</p><a href=\"/cart?add=1\">Add to cart</a>",
            )
        }
        (OUTDOOR, "/contact") => page(
            "Contact",
            &format!(
                "<form><input name=\"email\"><button>Send</button></form><script src=\"{ads}\"></script>",
                ads = http(ADS, "/ads.js"),
            ),
        ),
        (OUTDOOR, "/about") => page("About us", "<p id=\"team\">Our team.</p>"),
        (OUTDOOR, "/crash-tour") => page(
            "Crash tour",
            "<a href=\"/crashing\">Heavy</a> <a href=\"/faq\">FAQ</a>",
        ),
        (OUTDOOR, "/crashing") => HttpResponse::Ok()
            .content_type(HTML)
            .body(crate::pages::CRASH_PAGE),
        (OUTDOOR, "/faq") => page("FAQ", "<p>Questions and answers.</p>"),
        (OUTDOOR, "/shipping") => page("Shipping", "<p>We ship everywhere.</p>"),
        (OUTDOOR, "/cart") => page("Cart", "<p>Your cart is empty.</p>"),
        (OUTDOOR, "/checkout") => page(
            "Checkout",
            &format!(
                "<form data-page-kind=\"payment\"><iframe title=\"Card\" src=\"{card}\"></iframe><button>Pay</button></form>",
                card = http(PAY, "/card-frame"),
            ),
        ),
        (OUTDOOR, "/account/") => page("Account", "<a href=\"/account/orders\">Orders</a>"),
        (OUTDOOR, "/account/orders") => page("Orders", "<p>No orders.</p>"),
        (OUTDOOR, "/loop-a") => redirect("/loop-b"),
        (OUTDOOR, "/loop-b") => redirect("/loop-a"),
        (OUTDOOR, "/robots.txt") => HttpResponse::Ok().content_type("text/plain").body(format!(
            "User-agent: *\nDisallow: /account/\n\nSitemap: {}\n",
            www("/sitemap.xml")
        )),
        (OUTDOOR, "/sitemap.xml") => HttpResponse::Ok().content_type("application/xml").body(
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\
                 <sitemap><loc>{}</loc></sitemap></sitemapindex>",
                www("/sitemaps/pages.xml.gz")
            ),
        ),
        (OUTDOOR, "/sitemaps/pages.xml.gz") => {
            let locs: String = ["/", "/about", "/faq", "/shipping", "/product/item-07"]
                .iter()
                .map(|p| format!("<url><loc>{}</loc></url>", www(p)))
                .collect();
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">{locs}</urlset>"
            );
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(xml.as_bytes()).ok()?;
            HttpResponse::Ok()
                .content_type("application/gzip")
                .body(gz.finish().ok()?)
        }
        (OUTDOOR_BLOG, "/") => {
            let posts: String = (1..=POSTS)
                .map(|n| format!("<li><a href=\"/2026/11/post-{n:02}\">Post {n}</a></li>"))
                .collect();
            page("Blog", &format!("<ul>{posts}</ul>"))
        }
        (OUTDOOR_BLOG, p) if p.starts_with("/2026/11/post-") => {
            let n: usize = p.trim_start_matches("/2026/11/post-").parse().ok()?;
            if !(1..=POSTS).contains(&n) {
                return None;
            }
            page(&format!("Post {n}"), "<p>Out on the hills.</p>")
        }
        (OUTDOOR | OUTDOOR_BLOG, "/favicon.ico") => HttpResponse::NotFound().finish(),
        (OUTDOOR_BLOG, "/robots.txt") => HttpResponse::NotFound().finish(),
        _ => return None,
    };
    Some(response)
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", location.to_owned()))
        .finish()
}
