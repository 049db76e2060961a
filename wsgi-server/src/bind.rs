//! Where the server listens: TCP (v4, v6), Unix sockets, inherited file
//! descriptors and systemd socket activation.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;
use std::str::FromStr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::Error;

/// One address to listen on, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bind {
    /// `host:port` or `[v6]:port`.
    Tcp(SocketAddr),
    /// `unix:PATH`, optionally with a file mode for the socket.
    Unix {
        /// The socket's path.
        path: PathBuf,
        /// Permissions to give the socket file (e.g. `0o660`).
        mode: Option<u32>,
    },
    /// `fd://N`: an already-listening socket inherited from the parent.
    Fd(RawFd),
}

impl FromStr for Bind {
    type Err = Error;

    /// Parse `host:port`, `[::1]:port`, `unix:PATH` or `fd://N`. A bare
    /// `host` listens on port 8000, Gunicorn's default.
    fn from_str(s: &str) -> Result<Bind, Error> {
        let bad = |why: &str| Error::InvalidBind(format!("{s:?}: {why}"));
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(Bind::Unix { path: PathBuf::from(path), mode: None });
        }
        if let Some(fd) = s.strip_prefix("fd://") {
            let fd: RawFd = fd.parse().map_err(|_| bad("expected fd://N with N a file descriptor number"))?;
            if fd < 0 {
                return Err(bad("negative file descriptor"));
            }
            return Ok(Bind::Fd(fd));
        }
        let with_port = if s.starts_with('[') {
            if s.ends_with(']') {
                format!("{s}:8000")
            } else {
                s.to_owned()
            }
        } else if s.contains(':') {
            s.to_owned()
        } else {
            format!("{s}:8000")
        };
        let (host, port) = with_port.rsplit_once(':').ok_or_else(|| bad("expected HOST:PORT"))?;
        port.parse::<u16>().map_err(|_| bad("port must be a number from 0 to 65535"))?;
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve host: {e}")))?
            .next()
            .ok_or_else(|| bad("host resolves to no address"))?;
        Ok(Bind::Tcp(addr))
    }
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Tcp(a) => write!(f, "http://{a}"),
            Bind::Unix { path, .. } => write!(f, "unix:{}", path.display()),
            Bind::Fd(n) => write!(f, "fd://{n}"),
        }
    }
}

/// A bound, listening socket (still blocking-mode std types).
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix-domain listener, with its path when it has one (removed on exit).
    Unix(std::os::unix::net::UnixListener, Option<PathBuf>),
}

impl Listener {
    /// Where it listens, for logs.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map_or_else(|_| "tcp:?".into(), |a| format!("http://{a}")),
            Listener::Unix(_, Some(p)) => format!("unix:{}", p.display()),
            Listener::Unix(_, None) => "unix:(unnamed)".into(),
        }
    }

    /// Another handle on the same socket (for a worker process).
    ///
    /// # Errors
    /// When the descriptor cannot be duplicated.
    pub fn try_clone(&self) -> std::io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(l) => Listener::Tcp(l.try_clone()?),
            // Workers never remove the socket file; the master does.
            Listener::Unix(l, _) => Listener::Unix(l.try_clone()?, None),
        })
    }

    /// The TCP address, for TCP listeners.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }
}

/// Bind `bind` with a listen queue of `backlog`.
///
/// # Errors
/// [`Error::Bind`] naming the address and the OS error.
pub fn listen(bind: &Bind, backlog: i32) -> Result<Listener, Error> {
    let err = |e: std::io::Error| Error::Bind(bind.to_string(), e);
    match bind {
        Bind::Tcp(addr) => {
            let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
            socket.set_reuse_address(true).map_err(err)?;
            if addr.is_ipv6() {
                socket.set_only_v6(true).map_err(err)?;
            }
            socket.bind(&SockAddr::from(*addr)).map_err(err)?;
            socket.listen(backlog).map_err(err)?;
            Ok(Listener::Tcp(socket.into()))
        }
        Bind::Unix { path, mode } => {
            remove_stale_socket(path).map_err(err)?;
            let l = std::os::unix::net::UnixListener::bind(path).map_err(err)?;
            if let Some(mode) = mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).map_err(err)?;
            }
            Ok(Listener::Unix(l, Some(path.clone())))
        }
        Bind::Fd(fd) => from_fd(*fd).map_err(err),
    }
}

/// Take over an inherited listening socket.
fn from_fd(fd: RawFd) -> std::io::Result<Listener> {
    // SAFETY: the caller names an inherited descriptor it hands to us; we own
    // it from here on (as systemd and Gunicorn's fd:// do).
    let socket = unsafe { Socket::from_raw_fd(fd) };
    let addr = socket.local_addr()?;
    if addr.is_unix() {
        // Inherited: the socket file belongs to whoever made it.
        return Ok(Listener::Unix(socket.into(), None));
    }
    if addr.as_socket().is_some() {
        return Ok(Listener::Tcp(socket.into()));
    }
    Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a TCP or Unix socket"))
}

/// The sockets systemd passed (`LISTEN_FDS`, `LISTEN_PID`), as `fd://N` binds.
/// The variables are removed so children do not take them too.
#[must_use]
pub fn systemd_binds() -> Vec<Bind> {
    let pid_ok = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let n: RawFd = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    if !pid_ok || n <= 0 {
        return Vec::new();
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    (3..3 + n).map(Bind::Fd).collect()
}

/// Remove a socket file left by a dead server; refuse when one is alive.
fn remove_stale_socket(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "path exists and is not a socket"));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "a server is listening on this socket")),
        Err(_) => std::fs::remove_file(path),
    }
}
