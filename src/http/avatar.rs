//! `GET /avatar/:username`: Rocket.Chat's default avatar (`crate::avatar`), served for
//! any name as Rocket.Chat does when no picture was uploaded, so the `avatarUrl` of a
//! login answer (`ROOT_URL` + `/avatar/` + username) shows something in every client.

use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::Ctx;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(avatar))
}

/// A user's avatar: an SVG with the name's initial on a colour derived from the name.
#[utoipa::path(get, path = "/avatar/{username}", tag = "web",
    params(
        ("username" = String, Path, description = "A username; `@name` works too, as in Rocket.Chat"),
        ("size" = Option<u32>, Query, description = "Pixels, 16 to 1024 (default 200)"),
    ),
    responses((status = 200, description = "SVG", body = String, content_type = "image/svg+xml")))]
async fn avatar(Path(username): Path<String>, RawQuery(query): RawQuery) -> Response {
    // `/avatar/@name` forces the letters in Rocket.Chat; here they are all there is.
    let name = username.strip_prefix('@').unwrap_or(&username);
    // An image URL never fails on its query: the first `size` counts, anything
    // unreadable (repeated, not a number, not UTF-8) gives the default size, as in
    // Rocket.Chat, whose avatar route reads `size` leniently.
    let pairs: Vec<(String, String)> = query
        .as_deref()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let size_param = pairs
        .iter()
        .find(|(k, _)| k == "size")
        .map(|(_, v)| v.as_str());
    let size = crate::avatar::size(size_param);
    let mut resp = (StatusCode::OK, crate::avatar::svg(name, size)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    // The picture depends on the name alone: caches may keep it.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline"),
    );
    // An SVG opened on its own is a document: no script, no fetch.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
