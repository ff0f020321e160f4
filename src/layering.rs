//! The layering check (ARCHITECTURE.md), run by `cargo test --lib` and so by CI: no
//! module imports a module that imports it back, and the entry points other than REST
//! (`cli`, the importer, `realtime`) import nothing from `http`.
//!
//! It reads `src/**/*.rs` and collects every path into the crate: `crate::a::b`,
//! grouped `use crate::{a, b::{c, d}}`, `super::` and `self::`, and a module's
//! references to its own submodules (`users::routes()` in `http/mod.rs`). The graph's
//! nodes are the top-level modules, with `http`, `realtime` and `bus` split into their
//! files (`http::users`, `bus::nats`, …): a parent declaring a submodule is not an
//! edge, only a path that names it is. Comments are left out (a doc comment may name
//! any module); test modules count like the code they test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules whose files are nodes of their own.
const SPLIT: &[&str] = &["http", "realtime", "bus"];

/// Edges allowed to close a cycle, as (from, to) pairs. Each names the change that
/// removes it; drop the entry once that change is in.
const ALLOWED: &[(&str, &str)] = &[];

/// Entry points that must not reach into the REST layer.
const NOT_INTO_HTTP: &[&str] = &["cli", "import", "realtime"];

type Module = Vec<String>;

/// A source file: its module path and its text without comments.
struct Source {
    module: Module,
    file: PathBuf,
    code: String,
}

fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    match stem {
        "lib" | "main" if parts.is_empty() => return None,
        "mod" => {}
        s => parts.push(s.to_string()),
    }
    Some(parts)
}

/// The text without comments: whole-line comments, and ` // …` after code.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                ""
            } else {
                match line.find(" //") {
                    Some(i) => &line[..i],
                    None => line,
                }
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn read_sources(src: &Path) -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let module = module_of(src, &file)?;
            // This check's own examples are not code of the server.
            if module == ["layering"] {
                return None;
            }
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            Some(Source {
                module,
                file,
                code: without_comments(&text),
            })
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = Vec::new();
    expand_into(&tree, &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    // Split at top-level commas.
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items.into_iter().filter(|i| !i.is_empty()) {
        let (head, group) = match item.find('{') {
            Some(i) => (&item[..i], Some(&item[i + 1..item.len().saturating_sub(1)])),
            None => (item, None),
        };
        let before = prefix.len();
        for seg in head.split("::").filter(|s| !s.is_empty()) {
            let seg = seg.split(" as ").next().unwrap_or(seg);
            let seg: String = seg.chars().take_while(|c| is_ident(*c)).collect();
            if !seg.is_empty() {
                prefix.push(seg);
            }
        }
        match group {
            Some(g) => expand_into(g, prefix, out),
            None => out.push(prefix.clone()),
        }
        prefix.truncate(before);
    }
}

/// Every path in `code` that starts at `crate`, `super` or `self`, or at a submodule
/// of `module` (one of `children`): the segments as written.
fn paths_in(code: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // `use` declarations, with their groups.
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let at_start = rest[..i].chars().last().is_none_or(|c| !is_ident(c));
        let after = &rest[i + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if at_start {
            out.extend(expand_use(&after[..end]));
        }
        rest = &after[end.min(after.len())..];
    }
    // Paths anywhere in the code: `crate::a::b`, `super::x`, `child::y`.
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_path =
            (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':')) && is_ident(chars[i]);
        if !starts_path {
            i += 1;
            continue;
        }
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            segments.push(chars[start..j].iter().collect::<String>());
            if j + 2 < chars.len()
                && chars[j] == ':'
                && chars[j + 1] == ':'
                && is_ident(chars[j + 2])
            {
                j += 2;
            } else {
                break;
            }
        }
        let first = segments[0].as_str();
        if segments.len() > 1
            && (matches!(first, "crate" | "super" | "self") || children.contains(first))
        {
            out.push(segments);
        }
        i = j.max(i + 1);
    }
    out
}

/// The module a path names, as a module path: `super`/`self` resolved against `base`.
fn absolute(path: &[String], base: &Module, children: &BTreeSet<String>) -> Option<Module> {
    let mut segs = path.iter().peekable();
    let mut module: Module = match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        Some("self") => {
            segs.next();
            base.clone()
        }
        Some("super") => {
            let mut m = base.clone();
            while segs.peek().map(|s| s.as_str()) == Some("super") {
                segs.next();
                m.pop()?;
            }
            m
        }
        Some(first) if children.contains(first) => base.clone(),
        _ => return None,
    };
    module.extend(segs.cloned());
    Some(module)
}

/// The graph node of a module path: the longest known module it lies in, cut to the
/// node granularity.
fn node_of(path: &Module, known: &BTreeSet<Module>) -> Option<String> {
    let module = (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains(m))?;
    let keep = if SPLIT.contains(&module[0].as_str()) {
        2
    } else {
        1
    };
    Some(module[..module.len().min(keep)].join("::"))
}

struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
    /// (file, referenced module) of every reference into `http` from `NOT_INTO_HTTP`.
    into_http: Vec<(String, String)>,
}

fn graph(src: &Path) -> Graph {
    let sources = read_sources(src);
    let known: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut into_http = Vec::new();
    for source in &sources {
        let children: BTreeSet<String> = known
            .iter()
            .filter(|m| m.len() == source.module.len() + 1 && m.starts_with(&source.module))
            .map(|m| m[m.len() - 1].clone())
            .collect();
        let from = node_of(&source.module, &known).expect("a file's own module is known");
        edges.entry(from.clone()).or_default();
        // Inside the inline test module at the end of a file, `super` is the file's module.
        let (code, tests) = match source.code.find("mod tests {") {
            Some(i) => source.code.split_at(i),
            None => (source.code.as_str(), ""),
        };
        let mut inner = source.module.clone();
        inner.push("tests".into());
        for (text, base) in [(code, &source.module), (tests, &inner)] {
            for path in paths_in(text, &children) {
                let Some(target) = absolute(&path, base, &children) else {
                    continue;
                };
                let Some(to) = node_of(&target, &known) else {
                    continue;
                };
                if NOT_INTO_HTTP.contains(&source.module[0].as_str()) && target[0] == "http" {
                    into_http.push((source.file.display().to_string(), target.join("::")));
                }
                if to != from {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    Graph { edges, into_http }
}

/// A cycle through the graph, as the list of its nodes, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let at = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(next, edges, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(node, edges, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut g = graph(&src_dir());
    // The parse found the layers (a check that reads nothing would pass vacuously).
    for (from, to) in [
        ("http", "http::users"),
        ("http::users", "accounts"),
        ("accounts", "state"),
        ("cli", "accounts"),
        ("realtime::methods", "login"),
        ("bus::nats", "state"),
    ] {
        assert!(
            g.edges.get(from).is_some_and(|t| t.contains(to)),
            "expected {from} → {to}; the graph: {:#?}",
            g.edges
        );
    }
    for (from, to) in ALLOWED {
        if let Some(targets) = g.edges.get_mut(*from) {
            targets.remove(*to);
        }
    }
    if let Some(cycle) = find_cycle(&g.edges) {
        panic!("module cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn cli_importer_and_realtime_import_nothing_from_http() {
    let g = graph(&src_dir());
    assert!(
        g.into_http.is_empty(),
        "entry points reaching into http: {:#?}",
        g.into_http
    );
}

#[test]
fn paths_are_read_in_every_form() {
    let children: BTreeSet<String> = ["users".to_string()].into();
    let code = without_comments(
        "use crate::{app::Ctx, error::{Error, Result}};\n\
         use super::extract::Body; // crate::fake::path\n\
         /// crate::doc::comment\n\
         fn f() { crate::change::set(x); users::routes(); axum::http::x(); }\n",
    );
    let paths: BTreeSet<String> = paths_in(&code, &children)
        .iter()
        .map(|p| p.join("::"))
        .collect();
    for want in [
        "crate::app::Ctx",
        "crate::error::Error",
        "crate::error::Result",
        "super::extract::Body",
        "crate::change::set",
        "users::routes",
    ] {
        assert!(paths.contains(want), "{want} not in {paths:?}");
    }
    for not in ["crate::fake::path", "crate::doc::comment", "http::x"] {
        assert!(
            !paths.iter().any(|p| p.starts_with(not)),
            "{not} in {paths:?}"
        );
    }
    let base = vec!["http".to_string(), "users".to_string()];
    let known: BTreeSet<Module> = [
        vec!["http".to_string()],
        base.clone(),
        vec!["http".to_string(), "extract".to_string()],
        vec!["change".to_string()],
    ]
    .into();
    let to = |p: &str| {
        let path: Vec<String> = p.split("::").map(str::to_string).collect();
        node_of(&absolute(&path, &base, &children)?, &known)
    };
    assert_eq!(to("super::extract::Body").as_deref(), Some("http::extract"));
    assert_eq!(to("super::ok").as_deref(), Some("http"));
    assert_eq!(to("crate::change::set").as_deref(), Some("change"));
    assert_eq!(to("self::x").as_deref(), Some("http::users"));
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "d")] {
        edges.entry(a.into()).or_default().insert(b.into());
    }
    assert_eq!(find_cycle(&edges), None);
    edges.entry("d".into()).or_default().insert("b".into());
    assert_eq!(
        find_cycle(&edges).map(|c| c.join(" → ")).as_deref(),
        Some("b → c → d → b")
    );
}
