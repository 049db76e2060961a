//! `wsgiref.validate` for Rust: a middleware that checks both sides of the
//! contract at run time and reports each broken rule by its id.
//!
//! ```
//! use wsgi_spec::lint::Lint;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//! use http::{HeaderMap, HeaderValue, StatusCode};
//!
//! // `Connection` is a hop-by-hop header: applications must not send it (SR-7).
//! fn bad(_env: Environ, start_response: StartResponse) -> Result<Body, AppError> {
//!     let mut headers = HeaderMap::new();
//!     headers.insert("content-type", HeaderValue::from_static("text/plain"));
//!     headers.insert("connection", HeaderValue::from_static("close"));
//!     start_response.start(StatusCode::OK, headers)?;
//!     Ok(Body::full("hello"))
//! }
//!
//! let lint = Lint::new(bad);
//! let report = lint.report().clone();
//! let resp = TestClient::new(lint).get("/");
//! // The default mode fails the request, like validate's AssertionError.
//! assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
//! assert_eq!(report.rules(), ["SR-7"]);
//! assert_eq!(report.violations()[0].to_string(), "SR-7: hop-by-hop header 'connection' (app)");
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};

use crate::{
    is_hop_by_hop, AppError, Application, Body, BodyIter, Environ, Error, Errors, LintViolation, Side, StartResponse,
    Status, Write,
};

/// What [`Lint`] does about an application-side violation besides recording it.
///
/// Server-side (environ) violations, warnings and `BODY-6` are only ever
/// recorded, whatever the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LintMode {
    /// Fail the request, like `wsgiref.validate`'s `AssertionError`: the
    /// wrapper that detects the violation returns `Err(Error::Lint(..))`
    /// (from `call`, from `start_response`, from `write()`, or as an `Err`
    /// item of the body) instead of passing the faulty call on.
    #[default]
    Fail,
    /// Only record: the request proceeds exactly as without the lint.
    Record,
}

/// The shared record of what a [`Lint`] found: a cheaply cloneable handle.
///
/// All clones see the same violations; every [`Lint`] made by one
/// [`LintLayer`] shares one report.
#[derive(Clone, Default)]
pub struct LintReport {
    inner: Arc<ReportInner>,
}

#[derive(Default)]
struct ReportInner {
    violations: Mutex<Vec<LintViolation>>,
    warnings: Mutex<Vec<LintViolation>>,
    open_bodies: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LintReport {
    /// An empty report.
    #[must_use]
    pub fn new() -> LintReport {
        LintReport::default()
    }

    /// The violations recorded so far, oldest first.
    #[must_use]
    pub fn violations(&self) -> Vec<LintViolation> {
        lock(&self.inner.violations).clone()
    }

    /// The rule ids of [`violations`](Self::violations), oldest first.
    #[must_use]
    pub fn rules(&self) -> Vec<&'static str> {
        lock(&self.inner.violations).iter().map(|v| v.rule).collect()
    }

    /// Things `wsgiref.validate` only warns about (an unknown method,
    /// ENV-28; an empty reason phrase, SR-2). They never fail a request and
    /// do not make the report unclean.
    #[must_use]
    pub fn warnings(&self) -> Vec<LintViolation> {
        lock(&self.inner.warnings).clone()
    }

    /// True when no violation was recorded (warnings do not count).
    #[must_use]
    pub fn is_clean(&self) -> bool {
        lock(&self.inner.violations).is_empty()
    }

    /// Forget the violations and warnings recorded so far. The count of open
    /// bodies is live state and is not reset.
    pub fn clear(&self) {
        lock(&self.inner.violations).clear();
        lock(&self.inner.warnings).clear();
    }

    /// Bodies returned through the lint and not dropped (closed) yet
    /// (BODY-3). After a server finished its requests this must be 0.
    #[must_use]
    pub fn open_bodies(&self) -> usize {
        self.inner.open_bodies.load(Ordering::SeqCst)
    }

    fn push(&self, v: LintViolation) {
        lock(&self.inner.violations).push(v);
    }

    fn push_warning(&self, v: LintViolation) {
        lock(&self.inner.warnings).push(v);
    }
}

impl fmt::Debug for LintReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LintReport")
            .field("violations", &self.violations())
            .field("warnings", &self.warnings())
            .field("open_bodies", &self.open_bodies())
            .finish()
    }
}

/// The violation a lint error carries, found anywhere in an error's
/// `source()` chain.
///
/// Applications return [`AppError`], so a lint failure usually reaches the
/// server as `Error::App` wrapping `Error::Lint`; this finds it either way.
///
/// ```
/// use wsgi_spec::{lint::find_violation, Error, LintViolation, Side};
/// let v = LintViolation { rule: "WR-5", side: Side::App, message: "late write".into() };
/// let err = Error::App(Box::new(Error::Lint(v.clone())));
/// assert_eq!(find_violation(&err), Some(&v));
/// assert_eq!(find_violation(&Error::AlreadyStarted), None);
/// ```
#[must_use]
pub fn find_violation<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a LintViolation> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(Error::Lint(v)) = e.downcast_ref::<Error>() {
            return Some(v);
        }
        cur = e.source();
    }
    None
}

/// Configuration for [`Lint`]: a `tower_layer::Layer` that wraps any
/// application.
///
/// Every [`Lint`] it makes records into the layer's one [`LintReport`].
///
/// ```
/// use tower_layer::Layer;
/// use wsgi_spec::lint::{LintLayer, LintMode};
/// use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
///
/// // No Content-Type: validate's check_content_type (V-15) objects.
/// fn app(_env: Environ, start_response: StartResponse) -> Result<Body, AppError> {
///     start_response.start(http::StatusCode::OK, http::HeaderMap::new())?;
///     Ok(Body::full("hi"))
/// }
///
/// let layer = LintLayer::new().with_mode(LintMode::Record);
/// let resp = TestClient::new(layer.layer(app)).get("/");
/// assert_eq!(resp.body, "hi"); // Record mode changes nothing
/// assert_eq!(layer.report().rules(), ["V-15"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct LintLayer {
    mode: LintMode,
    report: LintReport,
}

impl LintLayer {
    /// A layer in [`LintMode::Fail`] with a new report.
    #[must_use]
    pub fn new() -> LintLayer {
        LintLayer::default()
    }

    /// Use `mode` for the applications it wraps.
    #[must_use]
    pub fn with_mode(mut self, mode: LintMode) -> LintLayer {
        self.mode = mode;
        self
    }

    /// Record into `report` (e.g. one report shared by several layers).
    #[must_use]
    pub fn with_report(mut self, report: LintReport) -> LintLayer {
        self.report = report;
        self
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> LintMode {
        self.mode
    }

    /// The report all its [`Lint`]s record into.
    #[must_use]
    pub fn report(&self) -> &LintReport {
        &self.report
    }
}

impl<A> tower_layer::Layer<A> for LintLayer {
    type Service = Lint<A>;

    fn layer(&self, inner: A) -> Lint<A> {
        Lint { inner, mode: self.mode, report: self.report.clone() }
    }
}

/// `wsgiref.validate` for Rust: wraps an [`Application`] and checks what the
/// server hands it and what it does with `start_response`, `write()` and its
/// body. It never changes a conforming request or response.
///
/// Each violation is a [`LintViolation`] whose `Display` starts with the rule
/// id (`SR-7: hop-by-hop header 'connection' (app)`). It is added to the
/// [`LintReport`] and written as one line (`lint: ` + the violation;
/// `lint warning: ` for warnings) to the request's `wsgi.errors`. In
/// [`LintMode::Fail`] (the default) an application-side violation also fails
/// the request; a violation the application swallowed (it got the `Err`
/// from `start_response` or `write()` and carried on) still fails it: `call`
/// returns the error, or the body yields it as its next item.
///
/// # Server side: checked on the environ when the request comes in (recorded only)
/// | rule | flagged when |
/// |---|---|
/// | ENV-8 | `server_name` is empty or `server_port` is 0 |
/// | ENV-10 | a request header name contains `_` |
/// | ENV-11 | [`vars`](Environ::vars) holds `HTTP_CONTENT_TYPE` or `HTTP_CONTENT_LENGTH` |
/// | UNI-1 | a `vars` key or value, or `server_name`, holds a character above U+00FF (native strings are latin-1, ENV-15) |
/// | ENV-24 | a `vars` key has a lower-case letter and no dot (extension names need a prefix such as `myserver.`), or uses the reserved `wsgi.` prefix |
/// | ENV-26 | `SCRIPT_NAME` or `PATH_INFO` is non-empty and does not start with `/` (`*` is allowed as `PATH_INFO` of `OPTIONS *`), `SCRIPT_NAME` is `/`, or both are empty. validate asks that `PATH_INFO` *exists* when `SCRIPT_NAME` is empty; ours always exists, so the lint asks for it to be at least `/` |
/// | ENV-27 | `CONTENT_LENGTH` is present, non-empty and not all digits |
/// | ENV-28 | *warning*: the method is not one of validate's `GET HEAD POST OPTIONS PATCH PUT DELETE TRACE` (extension methods are legal HTTP, so, like validate, only a warning) |
///
/// # Application side
/// | rule | flagged when | in Fail mode |
/// |---|---|---|
/// | SR-2 | the status is 1xx (interim responses are not WSGI responses; use [`EarlyHints`](crate::ext::EarlyHints) for 103), or the reason phrase is one [`Status::parse`] rejects (control characters, surrounding blanks; [`Status::with_reason`] does not check). An empty reason phrase is only a *warning*, as in validate | fails at `start_response` |
/// | SR-4 | a header name is `status`, or does not match validate's `^[a-zA-Z][a-zA-Z0-9_-]*$` or ends in `-` or `_` (`http` accepts more) | fails at `start_response` |
/// | SR-5 | a header value holds a control character, tab included (PEP 3333's wording and validate's check; stricter than [`check_headers`](crate::check_headers)) | fails at `start_response` |
/// | SR-7 | a header is hop-by-hop ([`is_hop_by_hop`]) | fails at `start_response` |
/// | V-15 | no `Content-Type` unless the status is 1xx, 204 or 304, or a `Content-Type` on 204/304 (validate's `check_content_type`, stricter than the PEP) | fails at `start_response` |
/// | CL-1 | the `Content-Length` header is not a number (or has conflicting values), or `write()` plus the body produce more bytes than it says | fails at `start_response`, at the `write()`, or as the body item that crosses the length |
/// | CL-2 | the body ended (was iterated to its end) with fewer bytes than `Content-Length` | the body yields an `Err` instead of ending |
/// | SR-15 | `start_response` is called again without `exc_info` (even when the first call failed) | fails at `start_response` |
/// | SR-14 | `start_response` returned [`Error::HeadersSent`] and the application did not propagate it (its `call` returned `Ok`, or its body went on) | fails at `call`, or the body yields an `Err` |
/// | SR-17 | the body yields a non-empty chunk before `start_response` succeeded; the body ends, or a file body is returned, without it (empty chunks before the call are allowed, as the driver allows them; validate is stricter) | the body yields an `Err` / `call` fails |
/// | WR-5 | `write()` is called after the application returned its body (from inside the iterable) | fails at `write()` |
/// | BODY-6 | body bytes are produced for a `HEAD` request or a 1xx/204/304 response (the server drops them) | *recorded only* |
///
/// Content-Length (CL-1, CL-2) and BODY-6 are not checked against `HEAD`
/// requests' and bodiless responses' lengths. For a [`Body::file`] the lint
/// compares the file's length with `Content-Length` when `call` returns.
///
/// # BODY-3: close
/// A body returned through the lint counts in [`LintReport::open_bodies`]
/// until it is dropped (PEP 3333's `close()`). Iterator bodies are wrapped
/// one output item per input item (STRM-2) and keep their
/// [`len_hint`](Body::len_hint); file bodies stay files (only a close hook is
/// added) and are not checked chunk by chunk.
///
/// # Not checked: the types already guarantee it
/// ENV-2 (an `http::Method` is never empty), ENV-5/V-6 (`QUERY_STRING`
/// always exists), ENV-9, ENV-15's "is a `str`", ENV-17…ENV-23 and V-3, V-4,
/// V-8, V-9 (typed fields), SR-1, SR-3 and the type half of V-14, SR-11/V-16
/// (`exc_info` is an [`AppError`]), SR-18 (names, values and reasons are
/// bytes), WR-1/V-17/UNI-2 (`write()` takes bytes), WR-6 (a [`Write`] only
/// comes from a `start_response` call that succeeded), APP-4/V-2/BODY-5/V-21
/// (a [`Body`] yields [`Bytes`]), V-20 (a dropped body cannot be read),
/// V-18 (`wsgi.input` reads are typed), IN-7 and ERR-5/V-19 (not applicable:
/// [`Input`](crate::Input) and [`Errors`] have no `close()`).
///
/// ```
/// use wsgi_spec::lint::{find_violation, Lint};
/// use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
///
/// // Calls start_response twice without exc_info (SR-15).
/// fn twice(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
///     let mut headers = http::HeaderMap::new();
///     headers.insert("content-type", http::HeaderValue::from_static("text/plain"));
///     sr.start(http::StatusCode::OK, headers.clone())?;
///     sr.start(http::StatusCode::NOT_FOUND, headers)?;
///     Ok(Body::empty())
/// }
/// let lint = Lint::new(twice);
/// let report = lint.report().clone();
/// let resp = TestClient::new(lint).get("/");
/// let violation = find_violation(resp.error.as_ref().unwrap()).unwrap();
/// assert_eq!(violation.rule, "SR-15");
/// assert_eq!(report.rules(), ["SR-15"]);
/// ```
#[derive(Debug, Clone)]
pub struct Lint<A> {
    inner: A,
    mode: LintMode,
    report: LintReport,
}

impl<A> Lint<A> {
    /// Check `inner` in [`LintMode::Fail`], recording into a new report.
    pub fn new(inner: A) -> Lint<A> {
        Lint { inner, mode: LintMode::Fail, report: LintReport::new() }
    }

    /// Use `mode`.
    #[must_use]
    pub fn with_mode(mut self, mode: LintMode) -> Lint<A> {
        self.mode = mode;
        self
    }

    /// Record into `report`.
    #[must_use]
    pub fn with_report(mut self, report: LintReport) -> Lint<A> {
        self.report = report;
        self
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> LintMode {
        self.mode
    }

    /// The report this lint records into; clone it to keep it after the
    /// lint was moved into a server.
    #[must_use]
    pub fn report(&self) -> &LintReport {
        &self.report
    }

    /// The wrapped application.
    #[must_use]
    pub fn get_ref(&self) -> &A {
        &self.inner
    }

    /// The wrapped application, mutably.
    pub fn get_mut(&mut self) -> &mut A {
        &mut self.inner
    }

    /// Unwrap the application.
    pub fn into_inner(self) -> A {
        self.inner
    }
}

impl<A: Application> Application for Lint<A> {
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        let tracker = Arc::new(Tracker {
            mode: self.mode,
            report: self.report.clone(),
            errors: environ.errors.clone(),
            head_request: environ.method == Method::HEAD,
            state: Mutex::new(State::default()),
        });
        tracker.handle(Side::Server, check_environ(&environ));
        let start_response = wrap_start_response(&tracker, start_response);
        let result = self.inner.call(environ, start_response);
        tracker.returned(result)
    }
}

// ---------------------------------------------------------------------------
// Findings

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Fails the request in Fail mode (application side only).
    Fail,
    /// Recorded as a violation, never fails.
    Record,
    /// Recorded as a warning.
    Warn,
}

struct Finding {
    rule: &'static str,
    level: Level,
    message: String,
}

impl Finding {
    fn fail(rule: &'static str, message: impl Into<String>) -> Finding {
        Finding { rule, level: Level::Fail, message: message.into() }
    }
    fn record(rule: &'static str, message: impl Into<String>) -> Finding {
        Finding { rule, level: Level::Record, message: message.into() }
    }
    fn warn(rule: &'static str, message: impl Into<String>) -> Finding {
        Finding { rule, level: Level::Warn, message: message.into() }
    }
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

// ---------------------------------------------------------------------------
// Per-request state

/// One request's lint: shared by the wrapped start_response, write and body.
struct Tracker {
    mode: LintMode,
    report: LintReport,
    errors: Errors,
    head_request: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `start_response` calls so far.
    calls: u32,
    /// A `start_response` call succeeded.
    started: bool,
    /// The status of the head in force.
    status: Option<StatusCode>,
    /// The `Content-Length` of the head in force.
    declared: Option<u64>,
    /// Body bytes produced by `write()` and the body.
    produced: u64,
    /// The application returned its body.
    returned: bool,
    /// `start_response` returned `HeadersSent`; not propagated yet (SR-14).
    headers_sent: bool,
    /// A Fail-mode violation handed to the application, not propagated yet.
    pending: Option<LintViolation>,
    sr17_reported: bool,
    body6_reported: bool,
    cl1_reported: bool,
}

impl State {
    fn bodiless(&self, head_request: bool) -> bool {
        head_request || self.status.is_some_and(bodiless_status)
    }

    /// SR-14: a `HeadersSent` the application did not propagate.
    fn check_propagated(&mut self, found: &mut Vec<Finding>) {
        if std::mem::take(&mut self.headers_sent) {
            found.push(Finding::fail(
                "SR-14",
                "start_response returned HeadersSent (exc_info after the head was sent) \
                 and the application did not propagate it",
            ));
        }
    }

    /// BODY-6 and CL-1 for `len` more body bytes (not yet counted).
    fn check_data(&mut self, head_request: bool, len: u64, found: &mut Vec<Finding>) {
        if len == 0 {
            return;
        }
        if self.bodiless(head_request) {
            if !self.body6_reported {
                self.body6_reported = true;
                let message = match self.status {
                    Some(code) if !head_request => format!(
                        "{len} body bytes for a {} response, which has no body \
                         (the server drops them)",
                        code.as_u16()
                    ),
                    _ => format!("{len} body bytes for a HEAD request (the server drops them)"),
                };
                found.push(Finding::record("BODY-6", message));
            }
            return;
        }
        if let Some(declared) = self.declared {
            let total = self.produced.saturating_add(len);
            if total > declared && !self.cl1_reported {
                self.cl1_reported = true;
                found.push(Finding::fail(
                    "CL-1",
                    format!("{total} body bytes produced, more than Content-Length {declared}"),
                ));
            }
        }
    }

    /// CL-2 at the end of the body.
    fn check_end(&self, head_request: bool, found: &mut Vec<Finding>) {
        if self.bodiless(head_request) {
            return;
        }
        if let Some(declared) = self.declared {
            if self.produced < declared {
                found.push(Finding::fail(
                    "CL-2",
                    format!(
                        "the body ended after {} of the {declared} bytes its Content-Length promised",
                        self.produced
                    ),
                ));
            }
        }
    }
}

impl Tracker {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Record `findings`; return the first that fails the request, if the
    /// mode says failures fail.
    fn handle(&self, side: Side, findings: Vec<Finding>) -> Option<LintViolation> {
        let mut failure = None;
        for f in findings {
            let v = LintViolation { rule: f.rule, side, message: f.message };
            if f.level == Level::Warn {
                self.errors.write(&format!("lint warning: {v}\n"));
                self.report.push_warning(v);
                continue;
            }
            self.errors.write(&format!("lint: {v}\n"));
            if f.level == Level::Fail && side == Side::App && self.mode == LintMode::Fail && failure.is_none() {
                failure = Some(v.clone());
            }
            self.report.push(v);
        }
        failure
    }

    /// A failure handed to the application from `start_response`/`write()`:
    /// remember it until the application propagates it.
    fn hand_out(&self, v: LintViolation) -> Error {
        self.state().pending.get_or_insert_with(|| v.clone());
        Error::Lint(v)
    }

    /// The application's `call` returned.
    fn returned(self: &Arc<Self>, result: Result<Body, AppError>) -> Result<Body, AppError> {
        let mut found = Vec::new();
        let pending = {
            let mut st = self.state();
            st.returned = true;
            let body = match &result {
                Ok(body) => body,
                Err(_) => {
                    // Propagated: whatever the app was handed is surfacing now.
                    st.headers_sent = false;
                    st.pending = None;
                    return result;
                }
            };
            st.check_propagated(&mut found);
            let pending = st.pending.take();
            if body.is_file() {
                if !st.started {
                    if pending.is_none() {
                        found.push(Finding::fail(
                            "SR-17",
                            "a file body was returned but start_response was never called",
                        ));
                    }
                } else {
                    let len = body.len_hint().unwrap_or(0);
                    let before = found.len();
                    st.check_data(self.head_request, len, &mut found);
                    st.produced = st.produced.saturating_add(len);
                    if found.len() == before {
                        st.check_end(self.head_request, &mut found);
                    }
                }
            }
            pending
        };
        let failure = self.handle(Side::App, found);
        if let Some(v) = pending.or(failure) {
            // The body is dropped (closed) here.
            return Err(Box::new(Error::Lint(v)));
        }
        let body = result?;
        self.report.inner.open_bodies.fetch_add(1, Ordering::SeqCst);
        let report = self.report.clone();
        let body = if body.is_file() {
            body
        } else {
            Body::from_body_iter(LintBody { inner: body, tracker: Arc::clone(self), done: false })
        };
        Ok(body.on_close(move || {
            report.inner.open_bodies.fetch_sub(1, Ordering::SeqCst);
        }))
    }
}

// ---------------------------------------------------------------------------
// start_response and write()

fn wrap_start_response(tracker: &Arc<Tracker>, inner: StartResponse) -> StartResponse {
    let tracker = Arc::clone(tracker);
    StartResponse::from_fn(move |status, headers, exc_info| {
        let mut found = Vec::new();
        {
            let mut st = tracker.state();
            st.calls += 1;
            if st.calls > 1 && exc_info.is_none() {
                found.push(Finding::fail("SR-15", "start_response called again without exc_info"));
            }
        }
        check_head(&status, &headers, &mut found);
        if let Some(v) = tracker.handle(Side::App, found) {
            return Err(tracker.hand_out(v));
        }
        let code = status.code();
        let declared = declared_length(&headers).ok().flatten();
        match inner.call(status, headers, exc_info) {
            Ok(write) => {
                let mut st = tracker.state();
                st.started = true;
                st.status = Some(code);
                st.declared = declared;
                drop(st);
                Ok(wrap_write(&tracker, write))
            }
            Err(Error::HeadersSent(exc)) => {
                tracker.state().headers_sent = true;
                Err(Error::HeadersSent(exc))
            }
            Err(e) => Err(e),
        }
    })
}

fn wrap_write(tracker: &Arc<Tracker>, inner: Write) -> Write {
    let tracker = Arc::clone(tracker);
    Write::from_fn(move |data: Bytes| {
        let len = data.len() as u64;
        let mut found = Vec::new();
        {
            let mut st = tracker.state();
            if st.returned {
                found.push(Finding::fail(
                    "WR-5",
                    "write() called after the application returned its body \
                     (from inside the iterable)",
                ));
            }
            st.check_data(tracker.head_request, len, &mut found);
        }
        if let Some(v) = tracker.handle(Side::App, found) {
            return Err(tracker.hand_out(v));
        }
        inner.write(data)?;
        let mut st = tracker.state();
        st.produced = st.produced.saturating_add(len);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// The body

/// The body wrapper: one item out per item in (STRM-2).
struct LintBody {
    inner: Body,
    tracker: Arc<Tracker>,
    /// A lint error was yielded: the body is over.
    done: bool,
}

impl BodyIter for LintBody {
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        if self.done {
            return None;
        }
        let item = self.inner.next_chunk();
        let head_request = self.tracker.head_request;
        let mut found = Vec::new();
        let pending = {
            let mut st = self.tracker.state();
            match &item {
                Some(Err(_)) => {
                    st.headers_sent = false;
                    st.pending = None;
                    return item;
                }
                Some(Ok(chunk)) => {
                    st.check_propagated(&mut found);
                    let pending = st.pending.take();
                    if !chunk.is_empty() {
                        let len = chunk.len() as u64;
                        if !st.started {
                            if pending.is_none() && !st.sr17_reported {
                                st.sr17_reported = true;
                                found.push(Finding::fail(
                                    "SR-17",
                                    format!("the body yielded {len} bytes before start_response was called"),
                                ));
                            }
                        } else {
                            st.check_data(head_request, len, &mut found);
                            st.produced = st.produced.saturating_add(len);
                        }
                    }
                    pending
                }
                None => {
                    st.check_propagated(&mut found);
                    let pending = st.pending.take();
                    if !st.started {
                        if pending.is_none() && !st.sr17_reported {
                            st.sr17_reported = true;
                            let message = if st.calls == 0 {
                                "the body ended but start_response was never called"
                            } else {
                                "the body ended but no start_response call succeeded"
                            };
                            found.push(Finding::fail("SR-17", message));
                        }
                    } else {
                        st.check_end(head_request, &mut found);
                    }
                    pending
                }
            }
        };
        let failure = self.tracker.handle(Side::App, found);
        if let Some(v) = pending.or(failure) {
            self.done = true;
            return Some(Err(Box::new(Error::Lint(v))));
        }
        item
    }

    fn len_hint(&self) -> Option<u64> {
        if self.done {
            Some(0)
        } else {
            self.inner.len_hint()
        }
    }
}

// ---------------------------------------------------------------------------
// The checks

fn bodiless_status(code: StatusCode) -> bool {
    code.is_informational() || code == StatusCode::NO_CONTENT || code == StatusCode::NOT_MODIFIED
}

/// The methods validate knows (ENV-28).
const KNOWN_METHODS: [&str; 8] = ["GET", "HEAD", "POST", "OPTIONS", "PATCH", "PUT", "DELETE", "TRACE"];

fn non_latin1(s: &str) -> Option<char> {
    s.chars().find(|&c| u32::from(c) > 0xFF)
}

/// The server side: the environ as the application receives it.
fn check_environ(env: &Environ) -> Vec<Finding> {
    let mut found = Vec::new();

    if env.server_name.is_empty() {
        found.push(Finding::record("ENV-8", "SERVER_NAME is empty"));
    }
    if env.server_port == 0 {
        found.push(Finding::record("ENV-8", "SERVER_PORT is 0"));
    }

    for name in env.headers.keys() {
        if name.as_str().contains('_') {
            found.push(Finding::record(
                "ENV-10",
                format!("request header '{name}' contains '_': its HTTP_ key would collide with '-'"),
            ));
        }
    }

    for key in ["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
        if env.vars.contains_key(key) {
            found.push(Finding::record("ENV-11", format!("{key} is in the environ; it must be {}", &key[5..])));
        }
    }

    if let Some(c) = non_latin1(&env.server_name) {
        found.push(Finding::record(
            "UNI-1",
            format!("SERVER_NAME holds U+{:04X}, outside latin-1 (ENV-15)", u32::from(c)),
        ));
    }
    for (key, value) in &env.vars {
        if let Some(c) = non_latin1(key) {
            found.push(Finding::record(
                "UNI-1",
                format!("environ key {key:?} holds U+{:04X}, outside latin-1 (ENV-15)", u32::from(c)),
            ));
        }
        if let Some(c) = non_latin1(value) {
            found.push(Finding::record(
                "UNI-1",
                format!("the value of {key} holds U+{:04X}, outside latin-1 (ENV-15)", u32::from(c)),
            ));
        }
    }

    for key in env.vars.keys() {
        if key.starts_with("wsgi.") {
            found.push(Finding::record("ENV-24", format!("environ variable {key:?} uses the reserved 'wsgi.' prefix")));
        } else if !key.contains('.') && key.chars().any(char::is_lowercase) {
            found.push(Finding::record(
                "ENV-24",
                format!("extension variable {key:?} has no dot: use a prefix such as 'myserver.'"),
            ));
        }
    }

    let script = &env.script_name[..];
    let path = &env.path_info[..];
    if !script.is_empty() && !script.starts_with(b"/") {
        found.push(Finding::record("ENV-26", format!("SCRIPT_NAME '{}' does not start with '/'", show(script))));
    }
    if script == b"/" {
        found.push(Finding::record("ENV-26", "SCRIPT_NAME is '/'; it must be '' with PATH_INFO '/'"));
    }
    let asterisk = env.method == Method::OPTIONS && script.is_empty() && path == b"*";
    if !path.is_empty() && !path.starts_with(b"/") && !asterisk {
        found.push(Finding::record("ENV-26", format!("PATH_INFO '{}' does not start with '/'", show(path))));
    }
    if script.is_empty() && path.is_empty() {
        found.push(Finding::record(
            "ENV-26",
            "SCRIPT_NAME and PATH_INFO are both empty; PATH_INFO must be at least '/'",
        ));
    }

    if let Some(cl) = env.get("CONTENT_LENGTH") {
        if !cl.is_empty() && !cl.iter().all(u8::is_ascii_digit) {
            found.push(Finding::record("ENV-27", format!("CONTENT_LENGTH '{}' is not a number", show(&cl))));
        }
    }

    if !KNOWN_METHODS.contains(&env.method.as_str()) {
        found.push(Finding::warn("ENV-28", format!("unknown REQUEST_METHOD '{}'", env.method)));
    }

    found
}

/// validate's header name rule: `^[a-zA-Z][a-zA-Z0-9\-_]*$`, not ending in
/// `-` or `_`.
fn valid_header_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        && !name.ends_with(['-', '_'])
}

/// The application's head: status and headers passed to `start_response`.
fn check_head(status: &Status, headers: &HeaderMap, found: &mut Vec<Finding>) {
    let code = status.code();
    if code.is_informational() {
        found.push(Finding::fail(
            "SR-2",
            format!(
                "interim status {} cannot be the response (send 103 through the EarlyHints extension)",
                code.as_u16()
            ),
        ));
    }
    if let Some(reason) = status.custom_reason() {
        if reason.is_empty() {
            found.push(Finding::warn("SR-2", format!("status {} has an empty reason phrase", code.as_u16())));
        } else {
            let mut raw = format!("{} ", code.as_u16()).into_bytes();
            raw.extend_from_slice(reason);
            if Status::parse(&raw).is_err() {
                found.push(Finding::fail(
                    "SR-2",
                    format!("reason phrase '{}' has control characters or surrounding blanks", show(reason)),
                ));
            }
        }
    }

    for (name, value) in headers {
        let n = name.as_str();
        if is_hop_by_hop(n) {
            found.push(Finding::fail("SR-7", format!("hop-by-hop header '{n}'")));
        }
        if n == "status" {
            found.push(Finding::fail(
                "SR-4",
                "header 'status' is not allowed: the status is start_response's first argument",
            ));
        } else if !valid_header_name(n) {
            found.push(Finding::fail(
                "SR-4",
                format!(
                    "header name '{n}' does not match ^[a-zA-Z][a-zA-Z0-9_-]*$ \
                     without a trailing '-' or '_'"
                ),
            ));
        }
        if let Some(&b) = value.as_bytes().iter().find(|&&b| b < 0x20 || b == 0x7f) {
            found.push(Finding::fail("SR-5", format!("the value of header '{n}' holds control character 0x{b:02x}")));
        }
    }

    if !code.is_informational() {
        let has_type = headers.contains_key(CONTENT_TYPE);
        let no_body = code == StatusCode::NO_CONTENT || code == StatusCode::NOT_MODIFIED;
        if no_body && has_type {
            found.push(Finding::fail(
                "V-15",
                format!("Content-Type on a {} response, which has no body", code.as_u16()),
            ));
        } else if !no_body && !has_type {
            found.push(Finding::fail(
                "V-15",
                format!("no Content-Type header on a {} response (required unless 1xx, 204 or 304)", code.as_u16()),
            ));
        }
    }

    if let Err(value) = declared_length(headers) {
        found.push(Finding::fail("CL-1", format!("invalid Content-Length '{value}'")));
    }
}

/// The application's `Content-Length`, as the driver reads it; the bad
/// value on error.
fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let mut declared = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let raw = value.as_bytes();
        let n = (!raw.is_empty() && raw.len() <= 19 && raw.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(raw).ok()?.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| show(raw))?;
        match declared {
            Some(d) if d != n => return Err(format!("{d}, {n}")),
            _ => declared = Some(n),
        }
    }
    Ok(declared)
}
