//! One connection, from its first request to its close, on one thread.
//!
//! ```text
//! loop:
//!   wait for the first byte of a request (keep-alive idle timeout)
//!   read and check the head            -> refused: answer 4xx/5xx, close
//!   build the environ and wsgi.input    (the body is read on demand)
//!   wsgi_spec::run::run(app, environ, sink)
//!   skip what the app left of the body  -> cannot: close
//!   the response said close             -> close
//! ```
//!
//! Requests on a connection are handled strictly one after the other: the
//! next head is read only after the response to the previous one is out,
//! so pipelined requests are answered in order.

use std::io::{BufRead, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wsgi_spec::ext::ConnectionInfo;
use wsgi_spec::run::run;
use wsgi_spec::{Environ, Input};

use crate::body::{lock, BodyReader, Incoming};
use crate::request::{read_head, BodyLength, HeadError, RequestHead};
use crate::response::{Outgoing, WireSink};
use crate::server::Shared;

/// Most bytes of an unread request body skipped to keep the connection;
/// beyond that it is closed instead.
const SKIP_LIMIT: u64 = 1024 * 1024;

/// Before closing a connection, how long to keep reading what the client
/// still sends (so that its unread bytes do not turn the close into a reset
/// that could destroy the response in flight).
const LINGER: Duration = Duration::from_secs(2);

/// Most bytes read while lingering.
const LINGER_BYTES: usize = 1024 * 1024;

/// Serve one connection until it closes.
///
/// `idle` is true while the connection waits for a request, so that a
/// shutdown can close it at once.
///
/// # Blocking
/// Runs the application; returns when the connection is closed.
pub(crate) fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared, idle: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let _ = write_half.set_write_timeout(nonzero(shared.timeout));
    let incoming = Arc::new(Mutex::new(Incoming::new(stream, shared.limits)));
    let outgoing = Arc::new(Mutex::new(Outgoing::new(write_half)));
    let conn = ConnectionInfo { peer: Some(peer), local, secure: false };

    while wait_for_request(&incoming, shared, idle) {
        let head = {
            let mut inc = lock(&incoming);
            let _ = inc.stream().set_read_timeout(nonzero(shared.timeout));
            read_head(inc.reader(), &shared.limits)
        };
        let head = match head {
            Ok(Some(head)) => head,
            // The client left or stalled before a complete head.
            Ok(None) | Err(HeadError::Lost) => return,
            Err(HeadError::Refused(refusal)) => {
                if lock(&outgoing).refuse(refusal, &shared.server_header).is_ok() {
                    linger_close(&incoming);
                }
                return;
            }
        };
        if !respond(head, conn, &incoming, &outgoing, shared) {
            return;
        }
    }
}

/// Wait until the next request's first byte arrived; false when the client
/// closed the connection, stayed idle too long, or the server shuts down.
fn wait_for_request(incoming: &Mutex<Incoming>, shared: &Shared, idle: &AtomicBool) -> bool {
    let mut inc = lock(incoming);
    // Without keep-alive there is only a first request: it may take `timeout`.
    let wait = if shared.keep_alive.is_zero() { shared.timeout } else { shared.keep_alive };
    let _ = inc.stream().set_read_timeout(nonzero(wait));
    idle.store(true, Ordering::SeqCst);
    // After `idle` is set: a shutdown either sees the flag (and closes the
    // socket under this read) or was seen here.
    if shared.stopping() {
        return false;
    }
    let ready = loop {
        match inc.reader().fill_buf() {
            Ok(buf) => break !buf.is_empty(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    idle.store(false, Ordering::SeqCst);
    ready
}

/// Run the application for one request; true when the connection can carry
/// another one.
fn respond(
    head: RequestHead,
    conn: ConnectionInfo,
    incoming: &Arc<Mutex<Incoming>>,
    outgoing: &Arc<Mutex<Outgoing>>,
    shared: &Shared,
) -> bool {
    let request = lock(incoming).begin(head.body);
    lock(outgoing).begin(&head, shared.stopping() || shared.keep_alive.is_zero());
    let reader = || BodyReader::new(Arc::clone(incoming), Arc::clone(outgoing), request);
    let input = match head.body {
        BodyLength::Empty => Input::empty(),
        BodyLength::Length(n) => Input::new(reader(), Some(n)),
        BodyLength::Chunked => Input::new(reader(), None),
    };
    let mut parts = head.parts;
    parts.extensions.insert(conn);
    let environ = Environ::from_request(parts, input, &shared.info);
    // Errors are logged to wsgi.errors by `run`; the sink saw how it ended.
    let _outcome = run(&*shared.app, environ, WireSink::new(Arc::clone(outgoing), Arc::clone(&shared.server_header)));

    let (dead, close) = {
        let out = lock(outgoing);
        (out.is_dead(), out.will_close())
    };
    if dead {
        // Aborted or failed: the socket is shut down already.
        lock(incoming).retire();
        return false;
    }
    let reusable = !close && lock(incoming).skip_body(SKIP_LIMIT);
    lock(incoming).retire();
    if !reusable {
        linger_close(incoming);
    }
    reusable
}

/// Close the connection gracefully: send FIN, then read and drop what the
/// client still sends for a short while, then let the socket go.
fn linger_close(incoming: &Mutex<Incoming>) {
    let mut inc = lock(incoming);
    let _ = inc.stream().shutdown(Shutdown::Write);
    let _ = inc.stream().set_read_timeout(Some(LINGER));
    let deadline = Instant::now() + LINGER;
    let mut scratch = [0u8; 8 * 1024];
    let mut total = 0;
    while total < LINGER_BYTES && Instant::now() < deadline {
        match inc.reader().read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

/// A socket timeout: `None` (wait forever) for zero.
fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}
