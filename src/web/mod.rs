//! The live presence page at `/`: plain HTML, CSS and JavaScript embedded in the
//! binary (no CDN, no build step). The page is a client like any other: it signs in
//! through `POST /api/v1/login`, reads `users.list`, `settings.public` and
//! `permissions.listAll`, changes statuses through `users.setStatus`, and follows
//! every change live over the DDP websocket (`stream-notify-logged` `user-status`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::Ctx;

mod docs;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");
const FAVICON_SVG: &str = include_str!("favicon.svg");

/// Only this origin's scripts, styles, images and connections (the websocket included).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(app_js))
        .routes(routes!(style_css))
        .routes(routes!(favicon_svg))
        .merge(docs::routes())
}

/// The presence page.
#[utoipa::path(get, path = "/", tag = "web", responses(
    (status = 200, description = "HTML", body = String, content_type = "text/html; charset=utf-8")))]
async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// The page's script.
#[utoipa::path(get, path = "/assets/app.js", tag = "web", responses(
    (status = 200, description = "JavaScript", body = String,
     content_type = "text/javascript; charset=utf-8")))]
async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The page's style sheet.
#[utoipa::path(get, path = "/assets/style.css", tag = "web", responses(
    (status = 200, description = "CSS", body = String, content_type = "text/css; charset=utf-8")))]
async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// The page's icon.
#[utoipa::path(get, path = "/assets/favicon.svg", tag = "web", responses(
    (status = 200, description = "SVG", body = String, content_type = "image/svg+xml")))]
async fn favicon_svg() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small and embedded: always revalidate, so a new binary serves its own page.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_embedded_assets() {
        for asset in ["/assets/app.js", "/assets/style.css", "/assets/favicon.svg"] {
            assert!(INDEX_HTML.contains(asset), "{asset}");
        }
        // Nothing from elsewhere: no CDN, no remote fonts.
        for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }
}
