//! The user documentation keeps to the real command.
//!
//! Checked against the settings table (`wsgi_server::settings::SETTINGS`,
//! from which `docs/settings.md` is generated):
//!
//! - every flag the docs give as `wsgi-server`'s exists: in
//!   `docs/quickstart.md`, `docs/deployment.md` and `docs/migrating-*.md`,
//!   in `wsgi-server` command lines (code blocks and inline code), in inline
//!   code that starts with a flag, and in the `wsgi-server` column of the
//!   migration tables. In the migration guides, inline code may also name
//!   the other server's flags, when its table lists them in its first column;
//! - those `wsgi-server` command lines parse with the real parser (values
//!   included) unless they hold shell placeholders;
//! - TOML settings examples parse as config files; `WSGI_SERVER_*` names
//!   are real environment variables;
//! - `deploy/Dockerfile`'s command and `deploy/k8s/deployment.yaml`'s args
//!   parse; the Kubernetes probes check the `--health-path` the args give,
//!   on the port the server binds, and the grace period covers the preStop
//!   sleep, the health drain and `--graceful-timeout`;
//! - `README.md` links every document, and relative links and anchors in
//!   these documents resolve.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use wsgi_server::settings::{self, split_args, SETTINGS};
use wsgi_server::Bind;

/// The documents whose flags are checked.
const DOCS: &[&str] = &[
    "docs/quickstart.md",
    "docs/deployment.md",
    "docs/migrating-from-gunicorn.md",
    "docs/migrating-from-uwsgi.md",
    "docs/migrating-from-granian.md",
];

/// What a worker keeps serving with its health path at 503 after `TERM`
/// (`HEALTH_DRAIN` in main.rs), and the master's kill margin past the
/// graceful timeout (master.rs), in seconds.
const HEALTH_DRAIN: u64 = 1;
const KILL_MARGIN: u64 = 2;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn fail_with(problems: &[String]) {
    assert!(problems.is_empty(), "{} problem(s):\n  {}", problems.len(), problems.join("\n  "));
}

/// The real flags, setting names and environment variables.
struct Known {
    flags: BTreeSet<&'static str>,
    env: BTreeSet<String>,
}

impl Known {
    fn new() -> Known {
        let mut env: BTreeSet<String> = SETTINGS.iter().map(settings::Setting::env_var).collect();
        env.insert("WSGI_SERVER_CMD_ARGS".to_owned());
        Known { flags: SETTINGS.iter().flat_map(|s| s.flags.iter().copied()).collect(), env }
    }
}

/// `--name`, `--name=value` or `-x`: the flag part; `None` for other words.
fn flag_of(token: &str) -> Option<&str> {
    let b = token.as_bytes();
    let is_flag = match b {
        [b'-', b'-', c, ..] => c.is_ascii_alphabetic(),
        [b'-', c, ..] => c.is_ascii_alphabetic(),
        _ => false,
    };
    is_flag.then(|| token.split_once('=').map_or(token, |(f, _)| f))
}

fn is_wsgi_server(word: &str) -> bool {
    word == "wsgi-server" || word.ends_with("/wsgi-server")
}

/// A Markdown file split into prose (fenced blocks blanked) and fenced
/// blocks (language, text).
struct Markdown {
    prose: String,
    blocks: Vec<(String, String)>,
}

impl Markdown {
    fn parse(text: &str) -> Markdown {
        let mut prose = String::new();
        let mut blocks = Vec::new();
        let mut open: Option<(String, String)> = None;
        for line in text.lines() {
            let fence = line.trim_start().starts_with("```");
            match (&mut open, fence) {
                (None, true) => {
                    open = Some((line.trim_start().trim_start_matches('`').trim().to_owned(), String::new()))
                }
                (Some(_), true) => blocks.extend(open.take()),
                (Some((_, body)), false) => {
                    body.push_str(line);
                    body.push('\n');
                }
                (None, false) => prose.push_str(line),
            }
            prose.push('\n');
        }
        Markdown { prose, blocks }
    }
}

/// The inline code spans of a piece of prose.
fn code_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        let ticks = rest[start..].bytes().take_while(|&b| b == b'`').count();
        let fence = &rest[start..start + ticks];
        let after = &rest[start + ticks..];
        let Some(end) = after.find(fence) else { break };
        spans.push(after[..end].replace('\n', " ").trim().to_owned());
        rest = &after[end + ticks..];
    }
    spans
}

/// The cells of a table row, split on `|` outside code spans.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut in_code = false;
    for c in inner.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.last_mut().unwrap().push(c);
            }
            '|' if !in_code => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The tables of a piece of prose: header cells and rows of cells.
fn tables(prose: &str) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in prose.lines().chain(std::iter::once("")) {
        if line.trim_start().starts_with('|') {
            current.push(line);
        } else if !current.is_empty() {
            if current.len() >= 2 {
                out.push((cells(current[0]), current[2..].iter().map(|r| cells(r)).collect()));
            }
            current.clear();
        }
    }
    out
}

/// Shell lines of a code block: comments dropped, `\` continuations joined.
fn logical_lines(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in block.lines() {
        let line = line.trim();
        if line.starts_with('#') && cur.is_empty() {
            continue;
        }
        let line = strip_shell_comment(line);
        match line.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(line);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn strip_shell_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') if prev_space => return line[..i].trim_end(),
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// Checks the flags of one document, collecting problems.
struct Checker<'a> {
    known: &'a Known,
    doc: &'a str,
    /// Flags of the other server, from the first column of its tables.
    foreign: BTreeSet<String>,
    problems: Vec<String>,
    /// `wsgi-server` command lines seen.
    commands: usize,
}

impl Checker<'_> {
    fn ours(&mut self, flag: &str, context: &str) {
        if !self.known.flags.contains(flag) {
            self.problems.push(format!("{}: `{flag}` is not a wsgi-server flag (in `{context}`)", self.doc));
        }
    }

    /// A command line or inline code: a `wsgi-server` command is checked
    /// (and parsed), a span starting with a flag is ours or the other
    /// server's, anything else is another program's.
    fn words(&mut self, text: &str) {
        let tokens = split_args(text);
        let Some(first) = tokens.first() else { return };
        if flag_of(first).is_some() {
            for t in &tokens {
                if let Some(f) = flag_of(t) {
                    if !self.foreign.contains(f) {
                        self.ours(f, text);
                    }
                }
            }
            return;
        }
        // Environment assignments before the command, as in a shell.
        let mut env = HashMap::new();
        let mut i = 0;
        while let Some((k, v)) = tokens.get(i).and_then(|t| t.split_once('=')) {
            if !k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') || k.is_empty() {
                // `ExecStart=/path/wsgi-server ...` in a unit file.
                break;
            }
            env.insert(k.to_owned(), v.to_owned());
            i += 1;
        }
        let before = self.problems.len();
        if let Some(cmd) = env.get("WSGI_SERVER_CMD_ARGS") {
            for t in split_args(cmd) {
                if let Some(f) = flag_of(&t) {
                    self.ours(f, text);
                }
            }
        }
        let start = tokens[i..].iter().position(|t| is_wsgi_server(t.rsplit_once('=').map_or(t, |(_, v)| v)));
        let Some(start) = start else { return };
        self.commands += 1;
        let args: Vec<String> = tokens[i + start + 1..]
            .iter()
            .take_while(|t| !matches!(t.as_str(), "&&" | "||" | "|" | ";" | ">" | "2>&1"))
            .cloned()
            .collect();
        for t in &args {
            if let Some(f) = flag_of(t) {
                self.ours(f, text);
            }
        }
        let placeholder = args.iter().any(|a| a.contains('$') || a.contains("...") || a.contains('<'));
        let config_file = args.iter().any(|a| a == "-c" || a == "--config" || a.starts_with("--config="));
        if !placeholder && !config_file && self.problems.len() == before {
            if let Err(e) = settings::parse(&args, &|k| env.get(k).cloned()) {
                self.problems.push(format!("{}: `{text}` does not parse: {e}", self.doc));
            }
        }
    }
}

#[test]
fn documented_flags_are_real_flags_and_command_lines_parse() {
    let known = Known::new();
    let mut problems = Vec::new();
    for doc in DOCS {
        let md = Markdown::parse(&read(doc));
        let tables = tables(&md.prose);
        let mut checker = Checker { known: &known, doc, foreign: BTreeSet::new(), problems: Vec::new(), commands: 0 };
        let migration = doc.contains("migrating-");
        if migration {
            for (header, rows) in &tables {
                if ["Gunicorn", "uWSGI", "Granian"].contains(&header[0].as_str()) {
                    for row in rows {
                        for span in code_spans(&row[0]) {
                            checker
                                .foreign
                                .extend(split_args(&span).iter().filter_map(|t| flag_of(t)).map(str::to_owned));
                        }
                    }
                }
            }
        }
        // The `wsgi-server` column of a table holds only our flags.
        let mut ours_cells = 0;
        for (header, rows) in &tables {
            if let Some(col) = header.iter().position(|h| h == "wsgi-server") {
                for row in rows {
                    for span in row.get(col).map(|c| code_spans(c)).unwrap_or_default() {
                        ours_cells += 1;
                        for t in split_args(&span) {
                            if let Some(f) = flag_of(&t) {
                                checker.ours(f, &span);
                            }
                        }
                    }
                }
            }
        }
        if migration {
            assert!(ours_cells > 10, "{doc}: no `wsgi-server` column found in its tables");
        }
        for span in code_spans(&md.prose) {
            checker.words(&span);
        }
        for (lang, body) in &md.blocks {
            if lang != "toml" {
                for line in logical_lines(body) {
                    checker.words(&line);
                }
            }
        }
        if checker.commands == 0 {
            problems.push(format!("{doc}: no `wsgi-server` command line found"));
        }
        problems.extend(checker.problems);
    }
    fail_with(&problems);
}

#[test]
fn toml_examples_are_valid_config_files() {
    let dir = std::env::temp_dir().join(format!("wsgi-docs-toml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut problems = Vec::new();
    let mut seen = 0;
    for doc in DOCS {
        for (n, (lang, body)) in Markdown::parse(&read(doc)).blocks.iter().enumerate() {
            // Blocks with tables (`[dependencies]`) are Cargo manifests, not
            // settings files, which have none.
            if lang != "toml" || body.lines().any(|l| l.trim_start().starts_with('[')) {
                continue;
            }
            seen += 1;
            let path = dir.join(format!("{}-{n}.toml", doc.replace('/', "_")));
            std::fs::write(&path, body).unwrap();
            let args = ["--config".to_owned(), path.to_string_lossy().into_owned()];
            if let Err(e) = settings::parse(&args, &|_| None) {
                problems.push(format!("{doc}: TOML block {n} is not a valid config file: {e}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(seen >= 3, "expected the TOML examples of the quick start and the migration guides, found {seen}");
    fail_with(&problems);
}

#[test]
fn environment_variables_named_are_settings() {
    let known = Known::new();
    let mut problems = Vec::new();
    let mut files: Vec<&str> = DOCS.to_vec();
    files.extend(["deploy/Dockerfile", "deploy/k8s/deployment.yaml", "deploy/k8s/service.yaml"]);
    for file in files {
        let text = read(file);
        for (at, _) in text.match_indices("WSGI_SERVER_") {
            let name: String =
                text[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
            // `WSGI_SERVER_<NAME>` names the pattern.
            if name != "WSGI_SERVER_" && !known.env.contains(&name) {
                problems.push(format!("{file}: {name} is not a wsgi-server environment variable"));
            }
        }
    }
    fail_with(&problems);
}

/// The strings of a one-line JSON or YAML flow array: `["a", "b"]`.
fn flow_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(split_args(&inner.replace(',', " ")))
}

/// The port of the first TCP bind.
fn tcp_port(config: &settings::Config) -> Option<u16> {
    config.binds.iter().find_map(|b| match b {
        Bind::Tcp(addr) => Some(addr.port()),
        _ => None,
    })
}

#[test]
fn dockerfile_command_is_a_valid_command_line() {
    let text = read("deploy/Dockerfile");
    let cmd = text.lines().find_map(|l| l.strip_prefix("CMD ")).expect("deploy/Dockerfile has no CMD");
    let argv = flow_list(cmd).expect("CMD is not in exec (JSON array) form");
    assert_eq!(argv.first().map(String::as_str), Some("wsgi-server"), "CMD does not run wsgi-server: {cmd}");
    let config = settings::parse(&argv[1..], &|_| None).unwrap_or_else(|e| panic!("CMD does not parse: {e}: {cmd}"));
    assert!(config.app.is_some(), "CMD gives no application: {cmd}");
    let port = tcp_port(&config).expect("CMD binds no TCP port");
    let exposed: Vec<u16> =
        text.lines().filter_map(|l| l.strip_prefix("EXPOSE ")).filter_map(|p| p.trim().parse().ok()).collect();
    assert_eq!(exposed, vec![port], "EXPOSE differs from the port CMD binds");
    assert!(config.health_path.is_some(), "CMD gives no --health-path");
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The items of the YAML block list under the first `key:` line (`- item`
/// lines, comments skipped), unquoted.
fn block_list(yaml: &str, key: &str) -> Vec<String> {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != key);
    let Some(head) = lines.next() else { return Vec::new() };
    lines
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .take_while(|l| indent(l) >= indent(head) && l.trim_start().starts_with("- "))
        .map(|l| split_args(&l.trim_start()[2..]).concat())
        .collect()
}

/// `(a, b)` for every `- name: a` line directly followed by a `key: b`
/// line (environment variables, named ports).
fn named<'a>(yaml: &'a str, key: &str) -> Vec<(&'a str, &'a str)> {
    let lines: Vec<&str> = yaml.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let name = w[0].trim().strip_prefix("- name:")?;
            let value = w[1].trim().strip_prefix(key)?.strip_prefix(':')?;
            Some((name.trim().trim_matches('"'), value.trim().trim_matches('"')))
        })
        .collect()
}

/// The values of every `key: value` line.
fn yaml_values<'a>(yaml: &'a str, key: &str) -> Vec<&'a str> {
    yaml.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
        .collect()
}

#[test]
fn kubernetes_probes_check_the_health_path_and_the_grace_period_covers_the_drain() {
    let yaml = read("deploy/k8s/deployment.yaml");
    let command = yaml_values(&yaml, "command");
    assert_eq!(
        flow_list(command[0]),
        Some(vec!["wsgi-server".to_owned()]),
        "the container's command is not wsgi-server"
    );
    let args = block_list(&yaml, "args:");
    assert!(args.len() > 4, "no args found: {args:?}");
    // The container's environment (WEB_CONCURRENCY, WSGI_SERVER_*), as the
    // server would see it.
    let env: HashMap<&str, &str> = named(&yaml, "value").into_iter().collect();
    assert!(env.contains_key("WEB_CONCURRENCY") || args.iter().any(|a| a == "--workers"), "no worker count");
    let config = settings::parse(&args, &|k| env.get(k).map(|v| (*v).to_owned()))
        .unwrap_or_else(|e| panic!("the manifest's args do not parse: {e}: {args:?}"));
    assert!(config.app.is_some(), "the args give no application");

    // (b) Both probes check the health path the args give.
    let health = config.health_path.clone().expect("the args give no --health-path");
    let probe_paths = block_paths(&yaml);
    assert!(
        yaml.contains("readinessProbe:") && yaml.contains("livenessProbe:"),
        "readiness and liveness probes expected"
    );
    assert_eq!(probe_paths.len(), 2, "expected two httpGet probes, found paths {probe_paths:?}");
    for p in &probe_paths {
        assert_eq!(p, &health, "a probe checks {p}, the server answers its health check at {health}");
    }
    // On the port the server binds (by number or by the port's name).
    let bound = tcp_port(&config).expect("the args bind no TCP port");
    let container_port: u16 = yaml_values(&yaml, "containerPort")[0].parse().unwrap();
    assert_eq!(container_port, bound, "containerPort differs from the port --bind gives");
    for port in yaml_values(&yaml, "port") {
        assert!(port == "http" || port.parse::<u16>() == Ok(bound), "a probe uses port {port}");
    }
    assert_eq!(
        named(&yaml, "containerPort"),
        vec![("http", container_port.to_string().as_str())],
        "one port, named http"
    );

    // The grace period outlasts preStop, the health drain and the graceful
    // timeout, with the master's kill margin.
    let grace: u64 = yaml_values(&yaml, "terminationGracePeriodSeconds")[0].parse().unwrap();
    let pre_stop = command.iter().filter_map(|c| flow_list(c)).find(|c| c.first().map(String::as_str) == Some("sleep"));
    let pre_stop: u64 = pre_stop.expect("no preStop sleep")[1].parse().unwrap();
    let needed = pre_stop + HEALTH_DRAIN + config.graceful_timeout.as_secs() + KILL_MARGIN;
    assert!(grace > needed, "terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop} + drain + graceful timeout + margin = {needed}");

    // The Service selects these pods and targets the named port.
    let service = read("deploy/k8s/service.yaml");
    let selector = yaml_values(&service, "app.kubernetes.io/name");
    assert!(!selector.is_empty() && selector.iter().all(|s| yaml_values(&yaml, "app.kubernetes.io/name").contains(s)));
    assert_eq!(yaml_values(&service, "targetPort"), vec!["http"]);
}

/// The `path:` of every `httpGet:` block.
fn block_paths(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() == "httpGet:" {
            let indent = l.len() - l.trim_start().len();
            for next in &lines[i + 1..] {
                if next.len() - next.trim_start().len() <= indent {
                    break;
                }
                if let Some(p) = next.trim().strip_prefix("path:") {
                    out.push(p.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    out
}

#[test]
fn readme_links_every_document() {
    let readme = read("README.md");
    let mut missing = Vec::new();
    for doc in DOCS.iter().copied().chain(["docs/settings.md", "docs/ARCHITECTURE.md", "docs/benchmarks.md", "SPEC.md"])
    {
        if !readme.contains(&format!("]({doc})")) {
            missing.push(doc);
        }
    }
    assert!(missing.is_empty(), "README.md does not link {missing:?}");
}

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    Markdown::parse(markdown)
        .prose
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn relative_links_and_anchors_resolve() {
    let mut problems = Vec::new();
    for doc in DOCS.iter().copied().chain(["README.md"]) {
        let text = read(doc);
        let base = Path::new(doc).parent().unwrap_or(Path::new(""));
        let prose = Markdown::parse(&text).prose;
        for (at, _) in prose.match_indices("](") {
            let target = &prose[at + 2..];
            let Some(end) = target.find(')') else { continue };
            let target = &target[..end];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').map_or((target, None), |(f, a)| (f, Some(a)));
            let path = if file.is_empty() { PathBuf::from(doc) } else { base.join(file) };
            let full = repo().join(&path);
            if !full.exists() {
                problems.push(format!("{doc}: link to {target}: {} does not exist", path.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                let text = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    problems.push(format!("{doc}: link to {target}: no heading #{anchor} in {}", path.display()));
                }
            }
        }
    }
    fail_with(&problems);
}
