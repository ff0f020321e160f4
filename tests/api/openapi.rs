//! The OpenAPI description at `GET /api/v1/openapi.json`: served to anyone, OpenAPI 3,
//! and in step with the router. The router and the document come from the same
//! `utoipa_axum::routes!` registrations; these tests catch the ways that could still
//! drift: a route registered around it, a documented route the server does not
//! answer, a status it answers but does not document, and the README's route table.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

async fn document(srv: &Server) -> Value {
    let (status, _, body) = srv.get("openapi.json", None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Every `(METHOD, path)` the document describes.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_document_is_openapi_3_and_served_to_anyone() {
    let srv = Server::start().await;
    let doc = document(&srv).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi is {version:?}");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["userId"]["name"], "X-User-Id", "{schemes}");
    assert_eq!(schemes["authToken"]["name"], "X-Auth-Token", "{schemes}");
    let set_status = &doc["paths"]["/api/v1/users.setStatus"]["post"];
    assert!(set_status["requestBody"].is_object(), "{set_status}");
    for code in ["200", "400", "401", "403", "429"] {
        assert!(
            set_status["responses"][code].is_object(),
            "no {code}: {set_status}"
        );
    }
    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let id = doc["paths"][&path][method.to_lowercase()]["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
            .to_string();
        assert!(ids.insert(id.clone()), "operationId {id} is not unique");
    }
    assert!(
        ids.contains("users.setStatus") && ids.contains("logout.get"),
        "{ids:?}"
    );
    let login = &doc["paths"]["/api/v1/login"]["post"]["requestBody"]["content"];
    assert!(
        login["application/x-www-form-urlencoded"].is_object(),
        "{login}"
    );
}

/// Every documented operation reaches its handler (no 404 or 405 from the router),
/// and the status it answers with a trivial request is one the document lists.
#[tokio::test]
async fn every_documented_operation_is_routed_with_a_documented_status() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let doc = document(&srv).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 38, "only {} operations", ops.len());
    // Logging out revokes the token, so the logouts go last, on their own session.
    let (logouts, others): (Vec<_>, Vec<_>) =
        ops.into_iter().partition(|(_, p)| p.ends_with("logout"));
    for (method, path) in others.into_iter().chain(logouts) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let session = if path.ends_with("logout") {
            srv.login(ADMIN_USER, ADMIN_PASS).await
        } else {
            admin.clone()
        };
        let url_path = path.replace("{id}", "Site_Name");
        let body = (method == "POST").then(|| b"{}".to_vec());
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("Content-Type", "application/json")]
        } else {
            &[]
        };
        let (status, _, text) = srv
            .request_text(
                method.parse().expect("a method"),
                &url_path,
                secured.then_some(&session),
                headers,
                body,
            )
            .await;
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed: {status} {text}"
        );
        let code = status.as_u16().to_string();
        assert!(
            op["responses"][&code].is_object(),
            "{method} {path} answered {status}, which it does not document: {text}"
        );
    }
}

/// No route is registered around `routes!` (which would leave it undocumented).
#[test]
fn every_route_is_registered_through_utoipa() {
    let mut offenders = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                for (n, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if code.starts_with("//") {
                        continue;
                    }
                    if [".route(", ".route_service(", ".nest_service("]
                        .iter()
                        .any(|call| code.contains(call))
                    {
                        offenders.push(format!("{}:{}: {code}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "register routes with utoipa_axum::routes! so /api/v1/openapi.json describes them:\n{}",
        offenders.join("\n")
    );
}

/// Every type that describes itself in the document has a name no other has: utoipa
/// names a component after the type, so two `LogoutBody`s were one component, and one
/// route's answer was checked against the other's schema.
#[test]
fn every_schema_type_has_its_own_name() {
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    let mut clashes = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            let mut derives_schema = false;
            for line in text.lines().map(str::trim_start) {
                if line.starts_with("#[derive(") && line.contains("ToSchema") {
                    derives_schema = true;
                } else if derives_schema && !line.starts_with("#[") && !line.starts_with("//") {
                    let name = line
                        .split_whitespace()
                        .skip_while(|w| !matches!(*w, "struct" | "enum"))
                        .nth(1)
                        .map(|n| {
                            n.trim_end_matches(['{', ';', '('])
                                .split('<')
                                .next()
                                .unwrap_or_default()
                                .to_string()
                        });
                    if let Some(name) = name.filter(|n| !n.is_empty()) {
                        let at = path.display().to_string();
                        if let Some(first) = seen.insert(name.clone(), at.clone()) {
                            clashes.push(format!("{name}: {first} and {at}"));
                        }
                    }
                    derives_schema = false;
                }
            }
        }
    }
    assert!(seen.len() > 20, "only {} schema types found", seen.len());
    assert!(
        clashes.is_empty(),
        "schema names used twice:\n{}",
        clashes.join("\n")
    );
}

/// The routes README.md's table names, as document paths.
fn readme_routes() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let table = readme
        .split("\n## Routes")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Routes section in README.md");
    let mut routes = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        // The first cell, before any prose: " — DDP: …" and "(…)" name no routes.
        let cell = row.split(" | ").next().unwrap_or_default();
        let cell = cell.split(" — ").next().unwrap_or_default();
        let mut bare = String::new();
        let mut depth = 0;
        for c in cell.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => bare.push(c),
                _ => {}
            }
        }
        for code in bare.split('`').skip(1).step_by(2) {
            // `POST\|GET /api/v1/logout`, `GET custom-user-status.create\|update`, …
            let words: Vec<&str> = code.split_whitespace().collect();
            let Some(name) = words.iter().rev().find(|w| {
                !w.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '\\' || c == '|')
            }) else {
                continue;
            };
            let mut parts = name.split("\\|");
            let first = parts.next().unwrap_or_default().to_string();
            let mut names = vec![first.clone()];
            if let Some((family, _)) = first.rsplit_once('.') {
                names.extend(parts.map(|p| format!("{family}.{p}")));
            }
            for n in names {
                let n = n.replace(":id", "{id}");
                routes.insert(if n.starts_with('/') {
                    n
                } else {
                    format!("/api/v1/{n}")
                });
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_readme_route_table_matches_the_document() {
    let srv = Server::start().await;
    let doc = document(&srv).await;
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let listed = readme_routes();
    let missing: Vec<_> = listed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "in README.md but not documented: {missing:?}"
    );
    // The page and its assets are described under "The presence page", not the table.
    let unlisted: Vec<_> = documented
        .iter()
        .filter(|p| *p != "/" && !p.starts_with("/assets/"))
        .filter(|p| !listed.contains(*p))
        .collect();
    assert!(
        unlisted.is_empty(),
        "documented but missing from README.md's route table: {unlisted:?}"
    );
}

/// Issue 17: `/api/docs` is browsable documentation of this same description, and
/// works with no internet: the page and every file it references are served by
/// statusd (resolved relative to the page, as a browser does), none from elsewhere.
#[tokio::test]
async fn api_docs_page_and_its_assets_are_served_by_statusd() {
    let srv = Server::start().await;
    let (status, headers, page) = srv
        .request_text(Method::GET, "/api/docs", None, &[], None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap_or("");
    assert!(csp.contains("script-src 'self'"), "{csp}");

    // Every src= and href= of the page.
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in page.split(attr).skip(1) {
            refs.push(part.split('"').next().unwrap_or_default().to_string());
        }
    }
    assert!(refs.len() >= 5, "{refs:?}");
    let mut scripts = String::new();
    for r in &refs {
        assert!(
            !r.contains("//"),
            "the page loads {r} from elsewhere; every asset must be embedded"
        );
        // Relative to /api/docs: `../assets/x` is /assets/x, `v1/x` is /api/v1/x.
        let path = match r.strip_prefix("../") {
            Some(rest) => format!("/{rest}"),
            None => format!("/api/{r}"),
        };
        let (status, headers, body) = srv.request_text(Method::GET, &path, None, &[], None).await;
        assert_eq!(status, 200, "{r} -> {path}: {body}");
        let ct = headers["content-type"].to_str().unwrap_or("").to_string();
        let want = match path.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            Some("json") => "application/json",
            other => panic!("unexpected asset {path} ({other:?})"),
        };
        assert!(ct.starts_with(want), "{path}: {ct}");
        if want == "text/javascript" {
            scripts.push_str(&body);
        }
    }
    // Swagger UI itself, started on the description, with no validator service.
    assert!(scripts.contains("SwaggerUIBundle"), "Swagger UI is missing");
    assert!(scripts.contains("url: 'v1/openapi.json'"), "{refs:?}");
    assert!(scripts.contains("validatorUrl: null"));
}

/// Issue 17: the repository stands alone. No file points at documents outside it (the
/// API reference is docs/API.md) or at a path of the machine it was written on.
#[test]
fn no_file_refers_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed");
    // Spelled in pieces, so this file does not match itself.
    let needles = [concat!("../", "shared"), concat!("/", "work/")];
    let mut offenders = Vec::new();
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).to_string();
        let Ok(text) = std::fs::read_to_string(root.join(&name)) else {
            continue; // binary or removed in the work tree
        };
        for (n, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                offenders.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "\n{}", offenders.join("\n"));
    assert!(root.join("docs/API.md").is_file());
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    assert!(
        readme.contains("(docs/API.md)"),
        "README.md does not link docs/API.md"
    );
}

#[tokio::test]
async fn the_dnd_routes_are_described() {
    let srv = Server::start().await;
    let doc = document(&srv).await;
    for (path, method, body) in [
        ("/api/v1/statusd.dnd.set", "post", true),
        ("/api/v1/statusd.dnd.clear", "post", true),
        ("/api/v1/statusd.dnd.get", "get", false),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["tags"], json!(["dnd"]), "{path}: {op}");
        assert!(op["responses"]["200"].is_object(), "{path}: {op}");
        assert!(op["responses"]["401"].is_object(), "{path}: {op}");
        assert_eq!(op["requestBody"].is_object(), body, "{path}: {op}");
    }
    let set = &doc["paths"]["/api/v1/statusd.dnd.set"]["post"];
    assert!(set["responses"]["400"].is_object(), "{set}");
}
