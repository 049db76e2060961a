//! # wsgi-conformance: a black-box conformance kit for wsgi-spec servers
//!
//! Give the kit a way to start your server on `127.0.0.1:0` with an app, and
//! it talks raw HTTP/1.x to it over real sockets and judges what the client
//! received and what the app saw. It uses no server internals, only the
//! [`wsgi_spec`] contract, so it runs against any server that implements it.
//!
//! Two sections ([`Section`]):
//! - **corpus**: every case of the gunicorn request corpus
//!   (`fixtures/gunicorn-corpus.txt`), byte for byte: valid requests must
//!   reach the app exactly as expected, invalid ones must be refused without
//!   calling it ([`corpus`]).
//! - **server-rules**: one check per observable rule of SPEC.md / PEP 3333
//!   (environ values, `wsgi.input`, `Expect: 100-continue`, head timing,
//!   streaming, `close()`, Content-Length, HEAD/204/304, errors, keep-alive,
//!   pipelining, and refusal of malformed requests), each named by its rule id.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use wsgi_conformance::{run_all, RunningServer, ServerUnderTest};
//! use wsgi_spec::SharedApp;
//!
//! struct MyServer;
//! struct Running(SocketAddr);
//! impl RunningServer for Running {
//!     fn addr(&self) -> SocketAddr { self.0 }
//! }
//! impl ServerUnderTest for MyServer {
//!     fn start(&self, app: SharedApp) -> Box<dyn RunningServer> {
//!         # let addr: SocketAddr = "127.0.0.1:8000".parse().unwrap();
//!         // start your server on 127.0.0.1:0 serving `app`, return its address
//!         Box::new(Running(addr))
//!     }
//! }
//! let report = run_all(&MyServer);
//! println!("{report}");
//! report.assert_all_passed();
//! ```
//!
//! Checks run on several servers at once ("lanes", [`Options::lanes`]), each
//! lane running its checks one after the other, so that every app call is
//! attributed to the check that caused it. A lane whose server stops
//! answering is restarted and the check that broke it gets an extra failure.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsgi_spec::SharedApp;

pub mod apps;
pub mod client;
pub mod corpus;
mod rules;

use apps::{KitApp, LaneState};

/// A server started by [`ServerUnderTest::start`]; dropping it stops the
/// server.
pub trait RunningServer {
    /// The TCP address it listens on (HTTP/1.x, cleartext).
    fn addr(&self) -> SocketAddr;
}

/// How the kit starts the server under test.
///
/// `start` must start a new server on `127.0.0.1:0` (any free port) serving
/// `app`, ready to accept connections when it returns. The kit may start
/// several at once, from several threads. A closure
/// `Fn(SharedApp) -> Box<dyn RunningServer>` implements it.
pub trait ServerUnderTest: Sync {
    /// Start a server serving `app`.
    fn start(&self, app: SharedApp) -> Box<dyn RunningServer>;
}

impl<F> ServerUnderTest for F
where
    F: Fn(SharedApp) -> Box<dyn RunningServer> + Sync,
{
    fn start(&self, app: SharedApp) -> Box<dyn RunningServer> {
        self(app)
    }
}

/// The sections of the kit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The gunicorn request corpus.
    Corpus,
    /// The server rules of SPEC.md / PEP 3333 observable over the wire.
    ServerRules,
}

impl Section {
    /// All sections.
    pub const ALL: [Section; 2] = [Section::Corpus, Section::ServerRules];

    /// `corpus` or `server-rules`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Section::Corpus => "corpus",
            Section::ServerRules => "server-rules",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server behaved as the rule says.
    Pass,
    /// It did not (see the detail).
    Fail,
    /// Not applicable (corpus cases that need non-default gunicorn settings
    /// or whose corpus file contradicts itself).
    Skip,
}

/// The result of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The section.
    pub section: Section,
    /// The rule id (`CL-1`, `RFC9112-6.3`...) or the corpus case (`valid/001`).
    pub id: String,
    /// What the check does (server rules) or the case's group (corpus).
    pub name: String,
    /// Pass, fail or skip.
    pub outcome: Outcome,
    /// What was observed.
    pub detail: String,
    /// How long the check took.
    pub elapsed: Duration,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        };
        write!(f, "[{tag}] {} {} ({}): {}", self.section, self.id, self.name, self.detail)
    }
}

/// Every check's result.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// In the kit's order: sections, then checks as listed.
    pub results: Vec<CheckResult>,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// Checks that passed.
    #[must_use]
    pub fn passed(&self) -> usize {
        self.count(Outcome::Pass)
    }

    /// Checks that failed.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.count(Outcome::Fail)
    }

    /// Checks skipped as not applicable.
    #[must_use]
    pub fn skipped(&self) -> usize {
        self.count(Outcome::Skip)
    }

    fn count(&self, o: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == o).count()
    }

    /// The failed checks.
    #[must_use]
    pub fn failures(&self) -> Vec<&CheckResult> {
        self.results.iter().filter(|r| r.outcome == Outcome::Fail).collect()
    }

    /// `conformance: N passed, M failed` (plus the skipped count and the
    /// time taken).
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "conformance: {} passed, {} failed ({} skipped, {:.1}s)",
            self.passed(),
            self.failed(),
            self.skipped(),
            self.elapsed.as_secs_f64()
        )
    }

    /// True when no check failed.
    #[must_use]
    pub fn all_passed(&self) -> bool {
        self.failed() == 0
    }

    /// # Panics
    /// When a check failed; the message lists every failure.
    pub fn assert_all_passed(&self) {
        if !self.all_passed() {
            let list: Vec<String> = self.failures().iter().map(ToString::to_string).collect();
            panic!("{}\n{}", self.summary(), list.join("\n"));
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            writeln!(f, "{r}")?;
        }
        write!(f, "{}", self.summary())
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The sections to run.
    pub sections: Vec<Section>,
    /// When not empty, only checks whose id equals or starts with one of
    /// these (`"CL-"`, `"ENV-4"`, `"valid/"`, `"invalid/040"`...).
    pub only: Vec<String>,
    /// Servers started at once for each section; checks are spread over
    /// them (at least 1).
    pub lanes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { sections: Section::ALL.to_vec(), only: Vec::new(), lanes: 4 }
    }
}

impl Options {
    fn selects(&self, section: Section, id: &str) -> bool {
        self.sections.contains(&section)
            && (self.only.is_empty() || self.only.iter().any(|p| id.starts_with(p.as_str())))
    }
}

/// Run every check.
#[must_use]
pub fn run_all(server: &dyn ServerUnderTest) -> Report {
    run_with(server, &Options::default())
}

/// Run one section.
#[must_use]
pub fn run_section(server: &dyn ServerUnderTest, section: Section) -> Report {
    run_with(server, &Options { sections: vec![section], ..Options::default() })
}

/// Run the checks whose id equals or starts with one of `ids` (rule ids
/// such as `"CL-1"` or `"HTTP-"`, corpus cases such as `"valid/001"`).
#[must_use]
pub fn run_only(server: &dyn ServerUnderTest, ids: &[&str]) -> Report {
    run_with(server, &Options { only: ids.iter().map(|s| (*s).to_owned()).collect(), ..Options::default() })
}

/// A check as listed by [`checks`].
#[derive(Debug, Clone)]
pub struct CheckInfo {
    /// The section.
    pub section: Section,
    /// The rule id or corpus case.
    pub id: String,
    /// What it checks (server rules) or the group (corpus).
    pub name: String,
}

/// Every check of the kit, without running anything.
#[must_use]
pub fn checks() -> Vec<CheckInfo> {
    let mut out: Vec<CheckInfo> =
        corpus::cases().into_iter().map(|c| CheckInfo { section: Section::Corpus, id: c.id, name: c.group }).collect();
    out.extend(rules::RULES.iter().map(|r| CheckInfo {
        section: Section::ServerRules,
        id: r.id.to_owned(),
        name: r.name.to_owned(),
    }));
    out
}

/// One server under test with the kit's app and what the app recorded.
pub(crate) struct Lane<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) state: Arc<LaneState>,
    server: &'a dyn ServerUnderTest,
    running: Option<Box<dyn RunningServer>>,
    seq: AtomicU64,
}

impl<'a> Lane<'a> {
    fn start(server: &'a dyn ServerUnderTest) -> Lane<'a> {
        let state = Arc::new(LaneState::default());
        let running = server.start(Arc::new(KitApp::new(Arc::clone(&state))));
        Lane { addr: running.addr(), state, server, running: Some(running), seq: AtomicU64::new(0) }
    }

    fn restart(&mut self) {
        drop(self.running.take());
        let running = self.server.start(Arc::new(KitApp::new(Arc::clone(&self.state))));
        self.addr = running.addr();
        self.running = Some(running);
    }

    /// A plain good request on a new connection; true if served with 200.
    pub(crate) fn sync(&self) -> bool {
        client::simple_get(self.addr, "/__kit/sync", Duration::from_secs(3)).is_some_and(|r| r.status == 200)
    }

    /// A unique id for query strings and paths.
    pub(crate) fn uid(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }
}

enum Job<'a> {
    Case(&'a corpus::Case),
    Rule(&'static rules::Rule),
}

impl Job<'_> {
    fn section(&self) -> Section {
        match self {
            Job::Case(_) => Section::Corpus,
            Job::Rule(_) => Section::ServerRules,
        }
    }
}

/// Run the checks `options` selects.
#[must_use]
pub fn run_with(server: &dyn ServerUnderTest, options: &Options) -> Report {
    let t0 = Instant::now();
    let cases = corpus::cases();
    let mut groups: Vec<Vec<(usize, Job<'_>)>> = Vec::new();
    let lanes = options.lanes.max(1);
    let mut index = 0;
    for section in Section::ALL {
        let jobs: Vec<Job<'_>> = match section {
            Section::Corpus => cases.iter().filter(|c| options.selects(section, &c.id)).map(Job::Case).collect(),
            Section::ServerRules => {
                rules::RULES.iter().filter(|r| options.selects(section, r.id)).map(Job::Rule).collect()
            }
        };
        if jobs.is_empty() {
            continue;
        }
        let n = lanes.min(jobs.len());
        let mut lanes_jobs: Vec<Vec<(usize, Job<'_>)>> = (0..n).map(|_| Vec::new()).collect();
        for (i, job) in jobs.into_iter().enumerate() {
            lanes_jobs[i % n].push((index, job));
            index += 1;
        }
        groups.extend(lanes_jobs);
    }
    let mut results: Vec<(usize, CheckResult)> = std::thread::scope(|s| {
        let handles: Vec<_> = groups.into_iter().map(|jobs| s.spawn(move || run_lane(server, jobs))).collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    });
    results.sort_by_key(|(i, r)| (*i, r.id.starts_with("server-restarted")));
    Report { results: results.into_iter().map(|(_, r)| r).collect(), elapsed: t0.elapsed() }
}

fn run_lane(server: &dyn ServerUnderTest, jobs: Vec<(usize, Job<'_>)>) -> Vec<(usize, CheckResult)> {
    let mut lane = Lane::start(server);
    let mut out = Vec::new();
    for (i, job) in jobs {
        let t = Instant::now();
        let section = job.section();
        let (id, name, outcome, detail) = match job {
            Job::Case(case) => {
                let (o, d) = match corpus::run_case(&lane, case) {
                    corpus::Verdict::Pass(d) => (Outcome::Pass, d),
                    corpus::Verdict::Fail(d) => (Outcome::Fail, d),
                    corpus::Verdict::Skip(d) => (Outcome::Skip, d),
                };
                (case.id.clone(), case.group.clone(), o, d)
            }
            Job::Rule(rule) => {
                let (o, d) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (rule.check)(&lane))) {
                    Ok(Ok(d)) => (Outcome::Pass, d),
                    Ok(Err(d)) => (Outcome::Fail, d),
                    Err(_) => (Outcome::Fail, "the check panicked (kit bug)".to_owned()),
                };
                (rule.id.to_owned(), rule.name.to_owned(), o, d)
            }
        };
        out.push((i, CheckResult { section, id: id.clone(), name, outcome, detail, elapsed: t.elapsed() }));
        if !lane.sync() && !lane.sync() {
            lane.restart();
            out.push((
                i,
                CheckResult {
                    section,
                    id: format!("server-restarted-after {id}"),
                    name: "server keeps serving".to_owned(),
                    outcome: Outcome::Fail,
                    detail: "the server stopped answering after this check; the kit restarted it".to_owned(),
                    elapsed: Duration::ZERO,
                },
            ));
        }
    }
    out
}
