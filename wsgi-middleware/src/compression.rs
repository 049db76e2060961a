//! `Compression`: gzip and brotli response compression chosen by the
//! request's `Accept-Encoding`.
//!
//! The coding is the one the client accepts with the highest q-value;
//! brotli wins a tie. A response is compressed when
//! - its `Content-Type` is compressible: `text/*`, JSON, JavaScript, XML,
//!   SVG, WebAssembly and the like (any `+json` / `+xml` type);
//! - it is big enough: at least [`CompressionLayer::min_size`] bytes (1 KiB)
//!   by its `Content-Length`, or — when the application sent none — by its
//!   body's known length; a body of unknown length (a stream, or data passed
//!   to `write()`) is compressed whatever its size;
//! - and nothing forbids it: the request is not `HEAD`; the status is not
//!   1xx, 204, 206 or 304; the response has no `Content-Encoding`, no
//!   `Content-Range` and no `Cache-Control: no-transform`.
//!
//! A compressed response loses `Content-Length` (the server frames it) and
//! `Accept-Ranges`, gets `Content-Encoding`, `Vary: Accept-Encoding`, and a
//! strong `ETag` becomes weak. Every compressible response gets the `Vary`,
//! compressed or not, so caches keep the variants apart.
//!
//! Compression streams: each chunk of the body and each `write()` is
//! compressed and flushed as it comes (a sync flush), so one output chunk
//! leaves for each input chunk (SPEC.md STRM-2) and a slow stream is never
//! held back; `write()` data goes through this middleware's own `write`
//! (STRM-4). An `Accept-Encoding` that is malformed or larger than 2 KiB
//! means no compression.
//!
//! To see the body's length before deciding, the head of a response without
//! `Content-Length` is held until the application returns its body (or
//! writes); `start_response` checks the headers as the server would
//! (`check_headers`), and an error the server raises later comes out of
//! `call`, `write()` or the body instead.
//!
//! ```
//! use std::io::Read;
//! use tower_layer::Layer;
//! use wsgi_middleware::CompressionLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     let mut headers = http::HeaderMap::new();
//!     headers.insert("content-type", http::HeaderValue::from_static("application/json"));
//!     sr.start(http::StatusCode::OK, headers)?;
//!     Ok(Body::full(format!("[{}0]", "1234567890,".repeat(200))))
//! }
//! let client = TestClient::new(CompressionLayer::new().layer(app));
//! let req = http::Request::get("/").header("accept-encoding", "gzip, br;q=0.8").body(bytes::Bytes::new()).unwrap();
//! let resp = client.request(req);
//! assert_eq!(resp.headers["content-encoding"], "gzip");
//! assert_eq!(resp.headers["vary"], "accept-encoding");
//! assert!(resp.body.len() < 200);
//! let mut json = String::new();
//! flate2::read::GzDecoder::new(&resp.body[..]).read_to_string(&mut json).unwrap();
//! assert!(json.starts_with("[1234567890,"));
//! ```

use std::io::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use flate2::write::GzEncoder;
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use wsgi_spec::{check_headers, AppError, Application, Body, BodyIter, Environ, StartResponse, Status, Write};

use crate::util::{accept_encoding, choose_encoding};
use crate::Error;

type SpecError = wsgi_spec::Error;

/// Configuration for [`Compression`].
#[derive(Debug, Clone, Copy)]
pub struct CompressionLayer {
    min_size: u64,
    gzip: bool,
    brotli: bool,
    gzip_level: u32,
    brotli_quality: u32,
}

impl CompressionLayer {
    /// gzip (level 4) and brotli (quality 4), for responses of 1 KiB or more:
    /// about the size of level 6 at half its time on JSON.
    #[must_use]
    pub fn new() -> CompressionLayer {
        CompressionLayer { min_size: 1024, gzip: true, brotli: true, gzip_level: 4, brotli_quality: 4 }
    }

    /// Leave responses shorter than `bytes` alone (when their length is known).
    #[must_use]
    pub fn min_size(mut self, bytes: u64) -> CompressionLayer {
        self.min_size = bytes;
        self
    }

    /// Offer gzip (default on).
    #[must_use]
    pub fn gzip(mut self, on: bool) -> CompressionLayer {
        self.gzip = on;
        self
    }

    /// Offer brotli (default on).
    #[must_use]
    pub fn brotli(mut self, on: bool) -> CompressionLayer {
        self.brotli = on;
        self
    }

    /// gzip level, 0 (store) to 9 (best); default 4.
    #[must_use]
    pub fn gzip_level(mut self, level: u32) -> CompressionLayer {
        self.gzip_level = level.min(9);
        self
    }

    /// brotli quality, 0 to 11; default 4 (fast enough for dynamic responses).
    #[must_use]
    pub fn brotli_quality(mut self, quality: u32) -> CompressionLayer {
        self.brotli_quality = quality.min(11);
        self
    }

    fn supported(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.brotli {
            out.push("br");
        }
        if self.gzip {
            out.push("gzip");
        }
        out
    }
}

impl Default for CompressionLayer {
    fn default() -> CompressionLayer {
        CompressionLayer::new()
    }
}

impl<A> tower_layer::Layer<A> for CompressionLayer {
    type Service = Compression<A>;

    fn layer(&self, inner: A) -> Compression<A> {
        Compression::new(inner, *self)
    }
}

/// Compresses `A`'s responses; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Compression<A> {
    inner: A,
    config: CompressionLayer,
}

impl<A> Compression<A> {
    /// Wrap `inner` with the configuration `config`.
    pub fn new(inner: A, config: CompressionLayer) -> Compression<A> {
        Compression { inner, config }
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

/// A streaming compressor writing into a buffer that is emptied after each
/// chunk.
enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(coding: &'static str, config: &CompressionLayer) -> Encoder {
        if coding == "br" {
            Encoder::Brotli(Box::new(brotli::CompressorWriter::new(Vec::new(), 4096, config.brotli_quality, 22)))
        } else {
            Encoder::Gzip(GzEncoder::new(Vec::new(), flate2::Compression::new(config.gzip_level)))
        }
    }

    /// Compress `data` and flush: everything so far can be decoded.
    fn compress(&mut self, data: &[u8]) -> io::Result<Bytes> {
        if data.is_empty() {
            return Ok(Bytes::new());
        }
        let out = match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                e.get_mut()
            }
            Encoder::Brotli(e) => {
                e.write_all(data)?;
                e.flush()?;
                e.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// The end of the stream.
    fn finish(self) -> io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.finish().map(Bytes::from),
            Encoder::Brotli(e) => Ok(Bytes::from(e.into_inner())),
        }
    }
}

enum Head {
    /// `start_response` was not called yet.
    NotStarted,
    /// Called; the decision waits for the body's length.
    Pending(Status, HeaderMap),
    /// Passed on unchanged.
    Identity,
    /// Passed on as compressed; `None` once the stream was finished.
    Compressing(Option<Encoder>),
}

struct Shared {
    config: CompressionLayer,
    /// The coding the client takes, if any.
    coding: Option<&'static str>,
    start_response: StartResponse,
    write: Option<Write>,
    head: Head,
    /// The body is wrapped (so a later switch to compressing is possible).
    wrapped: bool,
}

enum Decision {
    /// Pass on as it is (with `Vary` when the bool says so).
    Skip(bool),
    Compress,
    /// Wait for the body's length.
    Defer,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_compressible(content_type: &[u8]) -> bool {
    let Ok(ct) = std::str::from_utf8(content_type) else { return false };
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/xml"
                | "application/wasm"
                | "application/x-ndjson"
                | "application/graphql"
                | "image/x-icon"
                | "image/bmp"
                | "font/ttf"
                | "font/otf"
        )
}

impl Shared {
    fn decide(&self, status: &Status, headers: &HeaderMap) -> Decision {
        let code = status.code();
        let eligible = !(code.is_informational()
            || code == StatusCode::NO_CONTENT
            || code == StatusCode::PARTIAL_CONTENT
            || code == StatusCode::NOT_MODIFIED
            || headers.contains_key(CONTENT_ENCODING)
            || headers.contains_key(CONTENT_RANGE)
            || headers.get_all(CACHE_CONTROL).iter().any(|v| {
                v.to_str().is_ok_and(|v| v.split(',').any(|d| d.trim().eq_ignore_ascii_case("no-transform")))
            }))
            && headers.get(CONTENT_TYPE).is_some_and(|ct| is_compressible(ct.as_bytes()));
        if !eligible {
            return Decision::Skip(false);
        }
        if self.coding.is_none() {
            return Decision::Skip(true);
        }
        let declared: Option<u64> =
            headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        match declared {
            Some(len) if len < self.config.min_size => Decision::Skip(true),
            Some(_) => Decision::Compress,
            None if self.config.min_size == 0 => Decision::Compress,
            None => Decision::Defer,
        }
    }

    /// Call the server's `start_response` with the head as decided.
    fn pass_on(
        &mut self,
        status: Status,
        mut headers: HeaderMap,
        exc_info: Option<AppError>,
        compress: Option<bool>,
    ) -> Result<(), SpecError> {
        let coding = match (compress, self.coding) {
            (Some(true), Some(coding)) => Some(coding),
            _ => None,
        };
        if compress.is_some() {
            add_vary(&mut headers);
        }
        if let Some(coding) = coding {
            headers.remove(CONTENT_LENGTH);
            headers.remove(ACCEPT_RANGES);
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
            if let Some(etag) = headers.get(ETAG).filter(|e| e.as_bytes().starts_with(b"\"")) {
                if let Ok(weak) = HeaderValue::from_bytes(&[b"W/", etag.as_bytes()].concat()) {
                    headers.insert(ETAG, weak);
                }
            }
        }
        let write = self.start_response.call(status, headers, exc_info)?;
        self.write = Some(write);
        self.head = match coding {
            Some(coding) => Head::Compressing(Some(Encoder::new(coding, &self.config))),
            None => Head::Identity,
        };
        Ok(())
    }

    /// Settle a pending head now that the length is known (or not).
    fn commit(&mut self, len: Option<u64>) -> Result<(), SpecError> {
        if !matches!(self.head, Head::Pending(..)) {
            return Ok(());
        }
        let Head::Pending(status, headers) = std::mem::replace(&mut self.head, Head::NotStarted) else {
            return Ok(());
        };
        let compress = len.is_none_or(|n| n >= self.config.min_size);
        self.pass_on(status, headers, None, Some(compress))
    }

    fn start(&mut self, status: Status, headers: HeaderMap, exc_info: Option<AppError>) -> Result<(), SpecError> {
        match self.head {
            Head::NotStarted => {}
            Head::Pending(..) if exc_info.is_none() => return Err(SpecError::AlreadyStarted),
            // Nothing was passed on yet: the new head simply replaces it (SR-12).
            Head::Pending(..) => self.head = Head::NotStarted,
            Head::Identity | Head::Compressing(_) => {
                // The server has a head: it decides (replace, or SR-13/SR-15).
                let compress = match self.decide(&status, &headers) {
                    Decision::Skip(vary) => vary.then_some(false),
                    Decision::Compress | Decision::Defer => Some(self.wrapped),
                };
                return self.pass_on(status, headers, exc_info, compress);
            }
        }
        match self.decide(&status, &headers) {
            Decision::Skip(vary) => self.pass_on(status, headers, exc_info, vary.then_some(false)),
            Decision::Compress => self.pass_on(status, headers, exc_info, Some(true)),
            Decision::Defer => {
                check_headers(&headers)?;
                self.head = Head::Pending(status, headers);
                Ok(())
            }
        }
    }

    /// Transform one chunk of body or `write()` data.
    fn transform(&mut self, data: Bytes, remaining: Option<u64>) -> Result<Bytes, AppError> {
        if data.is_empty() {
            return Ok(data);
        }
        if matches!(self.head, Head::Pending(..)) {
            self.commit(remaining.map(|r| r + data.len() as u64))?;
        }
        match &mut self.head {
            Head::Compressing(Some(encoder)) => Ok(encoder.compress(&data).map_err(Error::Compression)?),
            _ => Ok(data),
        }
    }
}

fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("accept-encoding")))
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    }
}

impl<A: Application> Application for Compression<A> {
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        if environ.method == Method::HEAD {
            return self.inner.call(environ, start_response);
        }
        let supported = self.config.supported();
        let coding = accept_encoding(&environ.headers).and_then(|accepted| choose_encoding(&accepted, &supported));
        let shared = Arc::new(Mutex::new(Shared {
            config: self.config,
            coding,
            start_response,
            write: None,
            head: Head::NotStarted,
            wrapped: false,
        }));
        let for_start = shared.clone();
        let start = StartResponse::from_fn(move |status, headers, exc_info| {
            lock(&for_start).start(status, headers, exc_info)?;
            let shared = for_start.clone();
            Ok(Write::from_fn(move |data: Bytes| {
                let (out, write) = {
                    let mut s = lock(&shared);
                    let out = s.transform(data, None).map_err(|e| match e.downcast::<SpecError>() {
                        Ok(e) => *e,
                        Err(e) => SpecError::App(e),
                    })?;
                    (out, s.write.clone())
                };
                match write {
                    Some(write) => write.write(out),
                    // An empty write while the head is still held: nothing to send.
                    None if out.is_empty() => Ok(()),
                    None => Err(SpecError::WriteBeforeStart),
                }
            }))
        });
        let body = self.inner.call(environ, start)?;
        let mut s = lock(&shared);
        s.commit(body.len_hint())?;
        if matches!(s.head, Head::Identity) {
            // Not compressed: the body goes out untouched (a file stays a file).
            return Ok(body);
        }
        s.wrapped = true;
        drop(s);
        Ok(Body::from_body_iter(CompressBody { inner: body, shared, done: false }))
    }
}

struct CompressBody {
    inner: Body,
    shared: Arc<Mutex<Shared>>,
    done: bool,
}

impl BodyIter for CompressBody {
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        if self.done {
            return None;
        }
        match self.inner.next_chunk() {
            Some(Ok(chunk)) => {
                let remaining = self.inner.len_hint();
                Some(lock(&self.shared).transform(chunk, remaining))
            }
            Some(Err(e)) => Some(Err(e)),
            None => {
                self.done = true;
                let mut s = lock(&self.shared);
                if let Err(e) = s.commit(Some(0)) {
                    return Some(Err(e.into()));
                }
                match &mut s.head {
                    Head::Compressing(encoder) => {
                        let encoder = encoder.take()?;
                        Some(encoder.finish().map_err(|e| Error::Compression(e).into()))
                    }
                    _ => None,
                }
            }
        }
    }

    fn len_hint(&self) -> Option<u64> {
        match lock(&self.shared).head {
            Head::Identity => self.inner.len_hint(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use http::Request;
    use tower_layer::Layer;
    use wsgi_spec::driver::Framing;
    use wsgi_spec::lint::{LintLayer, LintMode};
    use wsgi_spec::testing::{TestClient, TestResponse};

    use super::*;

    fn text(n: usize) -> String {
        (0..n).map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap())).collect()
    }

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    fn get(client: &TestClient, ae: Option<&str>) -> TestResponse {
        let mut req = Request::get("/").body(Bytes::new()).unwrap();
        if let Some(ae) = ae {
            req.headers_mut().insert("accept-encoding", HeaderValue::from_str(ae).unwrap());
        }
        client.request(req)
    }

    fn gunzip(data: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(data).read_to_string(&mut out).unwrap();
        out
    }

    fn unbrotli(data: &[u8]) -> String {
        let mut out = String::new();
        brotli::Decompressor::new(data, 4096).read_to_string(&mut out).unwrap();
        out
    }

    /// An app answering `body` with the headers `h`.
    fn fixed(status: StatusCode, h: HeaderMap, body: String) -> impl Application {
        move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            sr.start(status, h.clone())?;
            Ok(Body::full(body.clone()))
        }
    }

    fn client(app: impl Application) -> TestClient {
        TestClient::new(CompressionLayer::new().layer(app))
    }

    #[test]
    fn gzip_and_brotli_by_q_value() {
        let body = text(5000);
        let c = client(fixed(StatusCode::OK, headers("text/html; charset=utf-8"), body.clone()));
        let resp = get(&c, Some("gzip"));
        assert_eq!(resp.headers["content-encoding"], "gzip");
        assert_eq!(resp.headers["vary"], "accept-encoding");
        assert!(!resp.headers.contains_key("content-length"));
        assert_eq!(resp.framing, Some(Framing::Chunked));
        assert_eq!(gunzip(&resp.body), body);

        let resp = get(&c, Some("gzip, deflate, br"));
        assert_eq!(resp.headers["content-encoding"], "br");
        assert_eq!(unbrotli(&resp.body), body);
        assert_eq!(get(&c, Some("br;q=0.5, gzip")).headers["content-encoding"], "gzip");
        assert_eq!(get(&c, Some("*")).headers["content-encoding"], "br");

        let only_gzip = TestClient::new(CompressionLayer::new().brotli(false).layer(fixed(
            StatusCode::OK,
            headers("text/plain"),
            body.clone(),
        )));
        assert_eq!(get(&only_gzip, Some("br, gzip;q=0.1")).headers["content-encoding"], "gzip");
        assert!(!get(&only_gzip, Some("br")).headers.contains_key("content-encoding"));
    }

    #[test]
    fn not_accepted_or_malformed_means_identity_with_vary() {
        let body = text(5000);
        let c = client(fixed(StatusCode::OK, headers("text/html"), body.clone()));
        let huge = format!("{}gzip", "x;q=0.1, ".repeat(400));
        for ae in
            [None, Some("identity"), Some("gzip;q=0, br;q=0"), Some("gzip;q=2"), Some(huge.as_str()), Some("gzip;;")]
        {
            let resp = get(&c, ae);
            assert!(!resp.headers.contains_key("content-encoding"), "{ae:?}");
            assert_eq!(resp.body, body);
            assert_eq!(resp.headers["vary"], "accept-encoding");
            assert_eq!(resp.headers["content-length"], "5000");
        }
    }

    #[test]
    fn small_bodies_are_left_alone() {
        let c = client(fixed(StatusCode::OK, headers("text/html"), text(100)));
        let resp = get(&c, Some("gzip"));
        assert!(!resp.headers.contains_key("content-encoding"));
        assert_eq!(resp.headers["content-length"], "100");
        assert_eq!(resp.headers["vary"], "accept-encoding");

        let mut h = headers("text/html");
        h.insert(CONTENT_LENGTH, HeaderValue::from(100));
        let c = client(fixed(StatusCode::OK, h.clone(), text(100)));
        assert!(!get(&c, Some("gzip")).headers.contains_key("content-encoding"));
        h.insert(CONTENT_LENGTH, HeaderValue::from(2000));
        let c = client(fixed(StatusCode::OK, h, text(2000)));
        let resp = get(&c, Some("gzip"));
        assert_eq!(resp.headers["content-encoding"], "gzip");
        assert_eq!(gunzip(&resp.body), text(2000));

        let c = TestClient::new(CompressionLayer::new().min_size(0).layer(fixed(
            StatusCode::OK,
            headers("text/plain"),
            "hi".into(),
        )));
        assert_eq!(gunzip(&get(&c, Some("gzip")).body), "hi");
    }

    #[test]
    fn streams_one_output_chunk_per_input_chunk() {
        let parts: Vec<String> = (0..5).map(|i| format!("part {i} {}", text(50))).collect();
        let expected = parts.concat();
        let for_app = parts.clone();
        let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            sr.start(StatusCode::OK, headers("text/event-stream"))?;
            let items: Vec<Result<Bytes, AppError>> = for_app.iter().map(|p| Ok(Bytes::from(p.clone()))).collect();
            Ok(Body::from_iter(items))
        };
        let resp = get(&client(app), Some("gzip"));
        assert_eq!(resp.headers["content-encoding"], "gzip");
        // 5 flushed chunks and the trailer.
        assert_eq!(resp.chunks.len(), 6);
        // After each chunk, everything so far decodes (sync flush: nothing held back).
        let mut decoder = flate2::write::GzDecoder::new(Vec::new());
        for (i, chunk) in resp.chunks.iter().take(5).enumerate() {
            decoder.write_all(chunk).unwrap();
            decoder.flush().unwrap();
            assert_eq!(String::from_utf8_lossy(decoder.get_ref()), parts[..=i].concat());
        }
        assert_eq!(gunzip(&resp.body), expected);

        let resp = get(&client(fixed(StatusCode::OK, headers("text/plain"), text(3000))), Some("br"));
        assert_eq!(resp.chunks.len(), 2);
    }

    #[test]
    fn empty_chunks_stay_empty() {
        let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            sr.start(StatusCode::OK, headers("text/plain"))?;
            let items: Vec<Result<Bytes, AppError>> =
                vec![Ok(Bytes::new()), Ok(Bytes::from("x".repeat(10))), Ok(Bytes::new())];
            Ok(Body::from_iter(items))
        };
        let resp = get(&client(app), Some("br"));
        assert_eq!(unbrotli(&resp.body), "x".repeat(10));
        assert_eq!(resp.chunks.len(), 2);
    }

    #[test]
    fn write_data_is_compressed_through_the_wrapped_write() {
        let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            let w = sr.start(StatusCode::OK, headers("application/json"))?;
            w.write("")?;
            w.write("[1,")?;
            w.write("2,")?;
            Ok(Body::full("3]"))
        };
        let resp = get(&client(app), Some("gzip"));
        assert_eq!(resp.headers["content-encoding"], "gzip");
        assert_eq!(gunzip(&resp.body), "[1,2,3]");
        assert_eq!(resp.chunks.len(), 4);
    }

    #[test]
    fn skipped_responses() {
        let big = text(5000);
        let mut cases: Vec<(StatusCode, HeaderMap)> = Vec::new();
        let mut h = headers("text/html");
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        cases.push((StatusCode::OK, h));
        let mut h = headers("text/html");
        h.insert(CACHE_CONTROL, HeaderValue::from_static("public, No-Transform"));
        cases.push((StatusCode::OK, h));
        let mut h = headers("text/html");
        h.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 0-4999/10000"));
        cases.push((StatusCode::PARTIAL_CONTENT, h));
        cases.push((StatusCode::OK, headers("image/png")));
        cases.push((StatusCode::OK, HeaderMap::new()));
        for (status, h) in cases {
            let resp = get(&client(fixed(status, h.clone(), big.clone())), Some("gzip, br"));
            assert_eq!(resp.body, big, "{h:?}");
            assert!(!resp.headers.get_all(CONTENT_ENCODING).iter().any(|v| v == "br"), "{h:?}");
            assert!(!resp.headers.contains_key(VARY), "{h:?}");
        }
        for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
            let resp = get(&client(fixed(status, headers("text/html"), String::new())), Some("gzip"));
            assert_eq!(resp.status, status);
            assert!(!resp.headers.contains_key(CONTENT_ENCODING));
        }
        let c = client(fixed(StatusCode::OK, headers("text/html"), big));
        let resp = c.request(Request::head("/").header("accept-encoding", "gzip").body(Bytes::new()).unwrap());
        assert!(!resp.headers.contains_key(CONTENT_ENCODING));
        assert!(resp.body.is_empty());
    }

    #[test]
    fn etag_weakened_accept_ranges_dropped_vary_merged() {
        let mut h = headers("text/css");
        h.insert(ETAG, HeaderValue::from_static("\"v1\""));
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(VARY, HeaderValue::from_static("Cookie"));
        let resp = get(&client(fixed(StatusCode::OK, h.clone(), text(4000))), Some("gzip"));
        assert_eq!(resp.headers["etag"], "W/\"v1\"");
        assert!(!resp.headers.contains_key(ACCEPT_RANGES));
        let vary: Vec<_> = resp.headers.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Cookie", "accept-encoding"]);
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        let resp = get(&client(fixed(StatusCode::OK, h, text(4000))), Some("gzip"));
        assert_eq!(resp.headers.get_all(VARY).iter().count(), 1);
    }

    #[test]
    fn lazy_start_response_in_the_first_iteration() {
        let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            let mut started = false;
            Ok(Body::from_iter(std::iter::from_fn(move || {
                if started {
                    return None;
                }
                started = true;
                Some(
                    sr.start(StatusCode::OK, headers("text/plain"))
                        .map(|_| Bytes::from("y".repeat(3000)))
                        .map_err(AppError::from),
                )
            })))
        };
        let resp = get(&client(app), Some("gzip"));
        assert_eq!(resp.headers["content-encoding"], "gzip");
        assert_eq!(gunzip(&resp.body), "y".repeat(3000));
    }

    #[test]
    fn exc_info_replaces_the_pending_head() {
        let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            sr.start(StatusCode::OK, headers("text/html"))?;
            assert!(matches!(sr.start(StatusCode::OK, headers("text/html")), Err(SpecError::AlreadyStarted)));
            let mut h = headers("text/plain");
            h.insert("x-error", HeaderValue::from_static("1"));
            sr.start_with_exc_info(StatusCode::INTERNAL_SERVER_ERROR, h, "failed".into())?;
            Ok(Body::full("e".repeat(2000)))
        };
        let resp = get(&client(app), Some("gzip"));
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers["x-error"], "1");
        assert_eq!(gunzip(&resp.body), "e".repeat(2000));
    }

    #[test]
    fn bad_headers_are_still_refused_in_start_response() {
        let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            let mut h = headers("text/html");
            h.insert("connection", HeaderValue::from_static("close"));
            let err = sr.start(StatusCode::OK, h).unwrap_err();
            assert!(matches!(err, SpecError::HopByHopHeader(_)));
            sr.start_with_exc_info(StatusCode::OK, headers("text/html"), err.into())?;
            Ok(Body::full("ok"))
        };
        assert_eq!(get(&client(app), Some("gzip")).body, "ok");
    }

    #[test]
    fn file_bodies_that_are_not_compressed_stay_files() {
        let path = std::env::temp_dir().join(format!("wsgi-mw-compression-{}.png", std::process::id()));
        std::fs::write(&path, vec![7u8; 5000]).unwrap();
        let for_app = path.clone();
        let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            sr.start(StatusCode::OK, headers("image/png"))?;
            Ok(Body::file(wsgi_spec::FileBody::new(std::fs::File::open(&for_app)?)?))
        };
        let (parts, ()) = Request::get("/").header("accept-encoding", "gzip").body(()).unwrap().into_parts();
        let env = Environ::from_request(parts, wsgi_spec::Input::empty(), &wsgi_spec::ServerInfo::default());
        let sr = StartResponse::from_fn(|_, _, _| Ok(Write::from_fn(|_| Ok(()))));
        let body = CompressionLayer::new().layer(app).call(env, sr).unwrap();
        assert!(body.is_file());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn lint_is_clean_around_and_inside() {
        let inner = LintLayer::new().with_mode(LintMode::Fail);
        let outer = LintLayer::new().with_mode(LintMode::Fail);
        let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            let w = sr.start(StatusCode::OK, headers("text/plain"))?;
            w.write("written ")?;
            let items: Vec<Result<Bytes, AppError>> = vec![Ok(Bytes::from("a".repeat(2000))), Ok(Bytes::new())];
            Ok(Body::from_iter(items))
        };
        let stacked = outer.layer(CompressionLayer::new().layer(inner.layer(app)));
        let c = TestClient::new(stacked);
        for ae in [Some("gzip"), Some("br"), None] {
            let resp = get(&c, ae);
            assert_eq!(resp.status, StatusCode::OK);
            assert!(resp.error.is_none(), "{:?}", resp.error);
        }
        assert!(inner.report().is_clean(), "{:?}", inner.report());
        assert!(outer.report().is_clean(), "{:?}", outer.report());
    }

    #[test]
    fn compressible_types() {
        for ct in [
            "text/html",
            "TEXT/CSS; charset=utf-8",
            "application/json",
            "application/ld+json",
            "image/svg+xml",
            "application/javascript",
            "application/xml",
        ] {
            assert!(is_compressible(ct.as_bytes()), "{ct}");
        }
        for ct in ["image/png", "application/octet-stream", "video/mp4", "application/zip", "font/woff2", ""] {
            assert!(!is_compressible(ct.as_bytes()), "{ct}");
        }
    }
}
