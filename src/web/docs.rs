//! Browsable API documentation at `/api/docs`: Swagger UI on the OpenAPI description
//! (`/api/v1/openapi.json`), every file embedded in the binary (`src/web/docs/`, where
//! a README says where Swagger UI comes from), so the page works with no internet.
//! The page's files are under `/assets/docs/`, beside the presence page's; its links
//! are relative, so the page also works under a proxy's prefix.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::Ctx;

const INDEX_HTML: &str = include_str!("docs/index.html");
const INIT_JS: &str = include_str!("docs/init.js");
const DOCS_CSS: &str = include_str!("docs/docs.css");
const SWAGGER_UI_JS: &str = include_str!("docs/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &str = include_str!("docs/swagger-ui.css");

/// Swagger UI sets inline styles and uses `data:` images; it fetches only the
/// description (and, with "Try it out", the API itself) from this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(init_js))
        .routes(routes!(docs_css))
        .routes(routes!(swagger_ui_js))
        .routes(routes!(swagger_ui_css))
}

/// The API documentation page.
#[utoipa::path(get, path = "/api/docs", tag = "web", responses(
    (status = 200, description = "HTML", body = String, content_type = "text/html; charset=utf-8")))]
async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML, "no-cache")
}

/// The page's start-up script.
#[utoipa::path(get, path = "/assets/docs/init.js", tag = "web", responses(
    (status = 200, description = "JavaScript", body = String,
     content_type = "text/javascript; charset=utf-8")))]
async fn init_js() -> Response {
    asset("text/javascript; charset=utf-8", INIT_JS, "no-cache")
}

/// The page's own style sheet.
#[utoipa::path(get, path = "/assets/docs/docs.css", tag = "web", responses(
    (status = 200, description = "CSS", body = String, content_type = "text/css; charset=utf-8")))]
async fn docs_css() -> Response {
    asset("text/css; charset=utf-8", DOCS_CSS, "no-cache")
}

/// Swagger UI's script.
#[utoipa::path(get, path = "/assets/docs/swagger-ui-bundle.js", tag = "web", responses(
    (status = 200, description = "JavaScript", body = String,
     content_type = "text/javascript; charset=utf-8")))]
async fn swagger_ui_js() -> Response {
    // 1.7 MB that changes only with a new Swagger UI: cached for a day.
    asset(
        "text/javascript; charset=utf-8",
        SWAGGER_UI_JS,
        "public, max-age=86400",
    )
}

/// Swagger UI's style sheet.
#[utoipa::path(get, path = "/assets/docs/swagger-ui.css", tag = "web", responses(
    (status = 200, description = "CSS", body = String, content_type = "text/css; charset=utf-8")))]
async fn swagger_ui_css() -> Response {
    asset(
        "text/css; charset=utf-8",
        SWAGGER_UI_CSS,
        "public, max-age=86400",
    )
}

fn asset(content_type: &'static str, body: &'static str, cache: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
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
