//! The public API of `wsgi-spec` exposes no types but its own and those of
//! `http`, `bytes` and `tower-layer` (STYLE.md rule 2; SPEC.md "What the
//! crate may expose"). Checked two ways: the crate's dependencies, and a
//! line-based scan of the public signatures in `src/` for paths into any
//! other crate. The scanner is tested on samples so it cannot silently pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Dependencies `wsgi-spec` may have. `thiserror` only derives impls of
/// `std` traits; it never appears in a signature.
const ALLOWED_DEPS: [&str; 4] = ["bytes", "http", "thiserror", "tower-layer"];

/// First path segments a public signature may use.
const ALLOWED_ROOTS: [&str; 9] = ["std", "core", "alloc", "crate", "self", "super", "http", "bytes", "tower_layer"];

/// Primitive types: `u64::MAX`, `str::as_bytes`...
const PRIMITIVES: [&str; 15] =
    ["u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "bool", "char", "str"];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The source files of the crate, `(file name, text)`.
fn sources() -> Vec<(String, String)> {
    let dir = crate_dir().join("src");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("src/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let name = p.file_name().expect("a file").to_string_lossy().into_owned();
            (name, read(&p))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10, "found the sources");
    out
}

/// Names in `[dependencies]` (and `[target.*.dependencies]`) of a manifest.
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let mut in_deps = false;
    let mut depth = 0i32;
    for line in manifest.lines() {
        let t = line.trim();
        if depth == 0 && t.starts_with('[') && !t.starts_with("[[") {
            let header = t.trim_start_matches('[').trim_end_matches(']').trim();
            in_deps = header == "dependencies" || header.ends_with(".dependencies");
            if let Some((_, name)) = header.rsplit_once("dependencies.") {
                if header.starts_with("dependencies.") || header.contains(".dependencies.") {
                    deps.insert(name.trim_matches('"').to_owned());
                }
            }
            continue;
        }
        if in_deps && depth == 0 && !t.is_empty() && !t.starts_with('#') {
            let name = t.split(['=', '.']).next().unwrap_or("").trim().trim_matches('"');
            if !name.is_empty() {
                deps.insert(name.to_owned());
            }
        }
        for c in t.chars() {
            match c {
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                _ => {}
            }
        }
    }
    deps
}

/// The code of each line: comments removed, string and char literal contents
/// blanked (so `"a::b"` in a message is not a path).
fn code_lines(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in src.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut code = String::new();
        let mut i = 0;
        let mut in_str = false;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if in_block {
                if c == '*' && next == Some('/') {
                    in_block = false;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            if in_str {
                if c == '\\' {
                    i += 2;
                    continue;
                }
                if c == '"' {
                    in_str = false;
                    code.push('"');
                } else {
                    code.push(' ');
                }
                i += 1;
                continue;
            }
            match (c, next) {
                ('/', Some('/')) => break,
                ('/', Some('*')) => {
                    in_block = true;
                    i += 2;
                }
                ('"', _) => {
                    in_str = true;
                    code.push('"');
                    i += 1;
                }
                ('\'', Some('\\')) => {
                    // '\n', '\'', '\u{..}'
                    let close = chars[i + 2..].iter().position(|&c| c == '\'');
                    i += close.map_or(1, |p| p + 3);
                    code.push_str("' '");
                }
                ('\'', Some(_)) if chars.get(i + 2) == Some(&'\'') => {
                    code.push_str("' '");
                    i += 3;
                }
                _ => {
                    code.push(c);
                    i += 1;
                }
            }
        }
        out.push(code);
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn braces(s: &str) -> i32 {
    s.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

/// One problem found by [`scan`]: line number (1-based) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    line: usize,
    what: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Block {
    Trait,
    Enum,
    Struct,
}

/// The `use` statements and public signatures of a file, each with its
/// first line number.
type Statements = (Vec<(usize, String)>, Vec<(usize, String)>);

fn statements(src: &str) -> Statements {
    let lines = code_lines(src);

    // Statements: `use` trees and public signatures, with their first line.
    let mut uses: Vec<(usize, String)> = Vec::new();
    let mut sigs: Vec<(usize, String)> = Vec::new();
    let mut acc: Option<(usize, String, Option<Block>, bool)> = None;
    let mut block: Option<(Block, i32)> = None;

    for (idx, line) in lines.iter().enumerate() {
        let n = idx + 1;
        let t = line.trim();
        if let Some((start, mut text, kind, is_use)) = acc.take() {
            text.push(' ');
            text.push_str(t);
            let done = if is_use { t.contains(';') } else { t.contains('{') || t.ends_with(';') };
            if done {
                if is_use {
                    uses.push((start, text));
                } else {
                    if let Some(kind) = kind {
                        let depth = braces(&text);
                        if depth > 0 {
                            block = Some((kind, depth));
                        }
                    } else if let Some((_, d)) = block.as_mut() {
                        *d += braces(t);
                    }
                    sigs.push((start, text));
                }
            } else {
                acc = Some((start, text, kind, is_use));
            }
            continue;
        }
        if t.is_empty() || t.starts_with("#[") || t.starts_with("#![") {
            continue;
        }
        if let Some((kind, depth)) = block {
            let member = match kind {
                Block::Enum => true,
                Block::Struct => depth == 1 && t.starts_with("pub "),
                Block::Trait => depth == 1,
            };
            let new_depth = depth + braces(t);
            if member {
                if kind == Block::Trait
                    && ["fn ", "type ", "const ", "unsafe fn "].iter().any(|p| t.starts_with(p))
                    && !(t.contains('{') || t.ends_with(';'))
                {
                    // A multi-line method signature: collect it, keeping the
                    // block depth (the body's braces are counted on the way).
                    block = Some((kind, depth));
                    acc = Some((n, t.to_owned(), None, false));
                    continue;
                }
                sigs.push((n, t.to_owned()));
            }
            block = if new_depth <= 0 { None } else { Some((kind, new_depth)) };
            continue;
        }
        let is_use = ["use ", "pub use ", "pub(crate) use ", "extern crate "].iter().any(|p| t.starts_with(p));
        let kind = if t.starts_with("pub trait ") || t.starts_with("pub unsafe trait ") {
            Some(Block::Trait)
        } else if t.starts_with("pub enum ") {
            Some(Block::Enum)
        } else if t.starts_with("pub struct ") {
            Some(Block::Struct)
        } else {
            None
        };
        let is_sig = kind.is_some()
            || [
                "pub fn ",
                "pub const fn ",
                "pub unsafe fn ",
                "pub async fn ",
                "pub type ",
                "pub const ",
                "pub static ",
                "impl ",
                "impl<",
                "unsafe impl",
            ]
            .iter()
            .any(|p| t.starts_with(p));
        if is_use || is_sig {
            let done = if is_use { t.contains(';') } else { t.contains('{') || t.ends_with(';') };
            if done {
                if is_use {
                    uses.push((n, t.to_owned()));
                } else {
                    if let Some(kind) = kind {
                        let depth = braces(t);
                        if depth > 0 {
                            block = Some((kind, depth));
                        }
                    }
                    sigs.push((n, t.to_owned()));
                }
            } else {
                acc = Some((n, t.to_owned(), kind, is_use));
            }
        }
    }

    (uses, sigs)
}

/// Scan one source file. `local_mods` are the crate's own module names
/// (first segments like `body::Body` in `pub use`).
fn scan(src: &str, local_mods: &[&str]) -> Vec<Finding> {
    let (uses, sigs) = statements(src);
    let mut findings = Vec::new();
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    let local = |s: &str| ["crate", "self", "super"].contains(&s) || local_mods.contains(&s);
    for (n, text) in &uses {
        let body = text
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ")
            .trim_start_matches("extern crate ")
            .trim_start_matches("use ")
            .trim_start_matches("::");
        let root: String = body.chars().take_while(|&c| is_ident(c)).collect();
        let root = if local(&root) { "crate".to_owned() } else { root };
        if !ALLOWED_ROOTS.contains(&root.as_str()) {
            findings.push(Finding { line: *n, what: format!("use of crate `{root}`") });
        }
        let mut word = String::new();
        for c in body.chars().chain(std::iter::once(' ')) {
            if is_ident(c) {
                word.push(c);
            } else if !word.is_empty() {
                if !["as", "self", "crate", "super", "use"].contains(&word.as_str()) {
                    aliases.entry(word.clone()).or_insert_with(|| root.clone());
                }
                word.clear();
            }
        }
    }

    for (n, text) in &sigs {
        let bytes: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i + 1 < bytes.len() {
            if !(bytes[i] == ':' && bytes[i + 1] == ':') {
                i += 1;
                continue;
            }
            let mut j = i;
            while j > 0 && is_ident(bytes[j - 1]) {
                j -= 1;
            }
            let ident: String = bytes[j..i].iter().collect();
            let continued = j >= 2 && bytes[j - 1] == ':' && bytes[j - 2] == ':';
            i += 2;
            if continued {
                continue;
            }
            let root = if ident.is_empty() {
                let before = bytes[..j].iter().rev().find(|c| !c.is_whitespace());
                if before == Some(&'>') {
                    continue; // `<T as Trait>::Item`
                }
                bytes[i..].iter().take_while(|&&c| is_ident(c)).collect::<String>()
            } else {
                ident
            };
            if root.starts_with(|c: char| c.is_ascii_uppercase()) || root.starts_with('$') {
                continue; // a type: Self, a generic, an imported type
            }
            let resolved =
                if ALLOWED_ROOTS.contains(&root.as_str()) || PRIMITIVES.contains(&root.as_str()) || local(&root) {
                    "std".to_owned()
                } else {
                    aliases.get(&root).cloned().unwrap_or_else(|| root.clone())
                };
            if !ALLOWED_ROOTS.contains(&resolved.as_str()) {
                findings.push(Finding { line: *n, what: format!("path into `{resolved}` in `{text}`") });
            }
        }
    }
    findings
}

fn local_mods() -> Vec<String> {
    let lib = read(&crate_dir().join("src/lib.rs"));
    code_lines(&lib)
        .iter()
        .filter_map(|l| {
            let t = l.trim().trim_start_matches("pub ");
            let name = t.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_owned())
        })
        .collect()
}

fn scan_sample(src: &str) -> Vec<Finding> {
    scan(src, &["body", "environ"])
}

#[test]
fn dependencies_are_only_http_bytes_tower_layer_thiserror() {
    let manifest = read(&crate_dir().join("Cargo.toml"));
    let deps = dependencies(&manifest);
    assert!(deps.contains("http") && deps.contains("bytes"), "parsed: {deps:?}");
    for dep in &deps {
        assert!(ALLOWED_DEPS.contains(&dep.as_str()), "wsgi-spec must not depend on `{dep}`");
    }
}

#[test]
fn dependency_parser_sees_every_form() {
    let manifest = r#"
[package]
name = "x"

[dependencies]
bytes.workspace = true
http = { version = "1",
    features = ["std"] }
"tokio" = "1"

[dependencies.hyper]
version = "1"

[target.'cfg(unix)'.dependencies]
libc = "0.2"

[dev-dependencies]
tempfile = "3"
"#;
    let deps: Vec<_> = dependencies(manifest).into_iter().collect();
    assert_eq!(deps, ["bytes", "http", "hyper", "libc", "tokio"]);
}

#[test]
fn no_thiserror_path_in_any_pub_line() {
    for (file, src) in sources() {
        for (n, line) in code_lines(&src).iter().enumerate() {
            let t = line.trim();
            if t.starts_with("pub") {
                assert!(!t.contains("thiserror"), "src/{file}:{}: {t}", n + 1);
            }
        }
    }
}

#[test]
fn public_signatures_use_only_allowed_crates() {
    let mods = local_mods();
    assert!(mods.iter().any(|m| m == "body"), "found the modules: {mods:?}");
    let mods: Vec<&str> = mods.iter().map(String::as_str).collect();
    let mut all = Vec::new();
    for (file, src) in sources() {
        for f in scan(&src, &mods) {
            all.push(format!("src/{file}:{}: {}", f.line, f.what));
        }
    }
    assert!(all.is_empty(), "foreign types in the public API:\n{}", all.join("\n"));
}

#[test]
fn scanner_flags_a_foreign_return_type() {
    let f = scan_sample("pub fn x() -> tokio::sync::Mutex<()> {\n    todo!()\n}\n");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].line, 1);
    assert!(f[0].what.contains("`tokio`"));
}

#[test]
fn scanner_flags_foreign_types_in_every_public_position() {
    let cases = [
        "pub fn x(\n    a: u8,\n    b: hyper::body::Incoming,\n) -> u8 {\n    a\n}\n",
        "pub struct S {\n    pub f: hyper::Body,\n    private: u8,\n}\n",
        "pub struct T(pub ::tokio::net::TcpStream);\n",
        "pub trait Tr {\n    fn f(&self) -> futures::stream::BoxStream<'_, u8>;\n}\n",
        "pub trait Tr {\n    fn g(\n        &self,\n    ) -> futures::Never;\n}\n",
        "pub enum E {\n    A(serde_json::Error),\n    B { inner: anyhow::Error },\n}\n",
        "impl From<anyhow::Error> for X {\n}\n",
        "pub type T = tokio::task::JoinHandle<()>;\n",
        "pub const C: once_cell::sync::Lazy<u8> = todo!();\n",
        "use tokio::sync::Mutex;\npub fn x() -> Mutex<()> {\n    todo!()\n}\n",
        "pub use hyper::Body;\n",
        "use tokio::sync;\npub fn x() -> sync::Mutex<()> {\n    todo!()\n}\n",
    ];
    for src in cases {
        assert!(!scan_sample(src).is_empty(), "not flagged:\n{src}");
    }
}

#[test]
fn scanner_accepts_the_allowed_crates_and_local_code() {
    let cases = [
        "use std::io;\npub fn f() -> io::Result<http::HeaderMap> {\n    todo!()\n}\n",
        "use std::fmt;\nimpl fmt::Display for X {\n}\n",
        "pub use body::{Body, FileBody};\npub use environ::Environ;\n",
        "pub fn f(b: bytes::Bytes) -> crate::Body {\n    todo!()\n}\n",
        "impl<A> tower_layer::Layer<A> for L {\n    type Service = A;\n}\n",
        "impl<T> X<T> where T: Iterator, <T as Iterator>::Item: Send {\n}\n",
        "#[derive(Debug, thiserror::Error)]\npub enum E {\n    #[error(\"bad {0:?}\")]\n    A(std::io::Error),\n}\n",
        "/// pub fn x() -> tokio::X\n// pub fn y() -> tokio::Y\npub fn z() {}\n",
        "pub fn s() -> &'static str {\n    \"tokio::X\"\n}\n",
        "pub(crate) fn x() -> tokio::X {\n    todo!()\n}\n",
        "fn private() {\n    let x = serde::X::new();\n}\n",
        "pub fn m() -> usize {\n    usize::MAX\n}\n",
        "pub fn g<I: IntoIterator>(i: I) where I::Item: Send {}\n",
    ];
    for src in cases {
        let f = scan_sample(src);
        assert!(f.is_empty(), "wrongly flagged {f:?}:\n{src}");
    }
}

fn source(name: &str) -> String {
    sources().into_iter().find(|(f, _)| f == name).unwrap_or_else(|| panic!("src/{name}")).1
}

#[test]
fn scanner_sees_the_real_public_signatures() {
    let sigs = |name: &str| -> Vec<String> { statements(&source(name)).1.into_iter().map(|(_, s)| s).collect() };
    let has = |name: &str, needle: &str| {
        let all = sigs(name);
        assert!(all.iter().any(|s| s.contains(needle)), "src/{name}: `{needle}` not among {all:#?}");
    };
    has("error.rs", "Disconnected(");
    has("error.rs", "expected: u64");
    has("run.rs", "fn send_head(");
    has("run.rs", "pub fn run<");
    has("input.rs", "pub fn new(");
    has("environ.rs", "pub software:");
    has("errors.rs", "impl std::io::Write for &Errors");
    has("start_response.rs", "f: impl Fn(Status, HeaderMap");
    for private in ["fn fill(&mut self)", "fn joined<'a>", "fn commit(&mut self"] {
        for name in ["input.rs", "environ.rs", "driver.rs"] {
            assert!(!sigs(name).iter().any(|s| s.contains(private)), "{private} is not public");
        }
    }
}

#[test]
fn scanner_catches_a_foreign_type_added_to_the_real_sources() {
    let mods = local_mods();
    let mods: Vec<&str> = mods.iter().map(String::as_str).collect();
    let edits = [
        (
            "run.rs",
            "fn send_data(&mut self, data: Bytes) -> io::Result<()>;",
            "fn send_data(&mut self, data: Bytes) -> tokio::io::Result<()>;",
        ),
        ("error.rs", "Disconnected(#[source] std::io::Error),", "Disconnected(#[source] hyper::Error),"),
        ("environ.rs", "pub errors: Errors,", "pub errors: slog::Logger,"),
        ("body.rs", "pub fn len_hint(&self) -> Option<u64> {", "pub fn len_hint(&self) -> Option<futures::Never> {"),
        ("lib.rs", "pub use status::Status;", "pub use status::Status;\npub use tokio::runtime::Runtime;"),
    ];
    for (name, from, to) in edits {
        let src = source(name);
        assert!(src.contains(from), "src/{name} changed: update this test ({from})");
        assert!(scan(&src, &mods).is_empty());
        let edited = src.replacen(from, to, 1);
        assert!(!scan(&edited, &mods).is_empty(), "src/{name}: `{to}` not caught");
    }
}
