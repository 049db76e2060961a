//! The response status line: code plus reason phrase (SR-2).

use bytes::Bytes;
use http::StatusCode;

use crate::Error;

/// A response status as PEP 3333 writes it: `"200 OK"`, a three-digit code,
/// one space and a reason phrase.
///
/// The reason phrase is kept as given (rule SR-2: custom reasons such as
/// `"200 Froody"` reach the client); when it is the canonical one for the
/// code, it is not stored.
///
/// ```
/// use wsgi_spec::Status;
/// let s = Status::parse("404 Not Found")?;
/// assert_eq!(s.code(), http::StatusCode::NOT_FOUND);
/// assert_eq!(s.custom_reason(), None);
/// let s = Status::parse("200 Froody")?;
/// assert_eq!(s.reason(), b"Froody");
/// assert_eq!(s.to_string(), "200 Froody");
/// assert!(Status::parse("200").is_err());
/// # Ok::<(), wsgi_spec::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    code: StatusCode,
    reason: Option<Bytes>,
}

impl Status {
    /// `200 OK`.
    pub const OK: Status = Status::from_code(StatusCode::OK);

    /// The status for `code` with its canonical reason phrase.
    #[must_use]
    pub const fn from_code(code: StatusCode) -> Status {
        Status { code, reason: None }
    }

    /// Parse a PEP 3333 status string: `NNN Reason` (SR-2).
    ///
    /// # Errors
    /// [`Error::InvalidStatus`] when the code is not three digits from 100 to
    /// 999, the separator is not a single space, or the reason phrase holds
    /// control characters (CR, LF, NUL and the like).
    pub fn parse(status: impl AsRef<[u8]>) -> Result<Status, Error> {
        let raw = status.as_ref();
        let bad = || Error::InvalidStatus(String::from_utf8_lossy(raw).into_owned());
        if raw.len() < 4 || raw[3] != b' ' {
            return Err(bad());
        }
        let code = StatusCode::from_bytes(&raw[..3]).map_err(|_| bad())?;
        let reason = &raw[4..];
        if !reason.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)) {
            return Err(bad());
        }
        if reason.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            || reason.last().is_some_and(|b| *b == b' ' || *b == b'\t')
        {
            return Err(bad());
        }
        Ok(Status::with_reason(code, Bytes::copy_from_slice(reason)))
    }

    /// A status with an explicit reason phrase; a phrase equal to the
    /// canonical one is not stored.
    ///
    /// The caller guarantees the phrase holds no control characters;
    /// [`Status::parse`] checks that for strings from elsewhere.
    #[must_use]
    pub fn with_reason(code: StatusCode, reason: Bytes) -> Status {
        let canonical = code.canonical_reason().map(str::as_bytes);
        let reason = if canonical == Some(&reason[..]) { None } else { Some(reason) };
        Status { code, reason }
    }

    /// The status code.
    #[must_use]
    pub fn code(&self) -> StatusCode {
        self.code
    }

    /// The reason phrase sent to the client.
    #[must_use]
    pub fn reason(&self) -> &[u8] {
        match &self.reason {
            Some(r) => r,
            None => self.code.canonical_reason().unwrap_or("Unknown").as_bytes(),
        }
    }

    /// The reason phrase when it differs from the code's canonical one.
    #[must_use]
    pub fn custom_reason(&self) -> Option<&Bytes> {
        self.reason.as_ref()
    }
}

impl From<StatusCode> for Status {
    fn from(code: StatusCode) -> Status {
        Status::from_code(code)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ", self.code.as_u16())?;
        // Reason bytes are latin-1: map each byte to the same code point.
        for &b in self.reason() {
            write!(f, "{}", char::from(b))?;
        }
        Ok(())
    }
}

impl TryFrom<&str> for Status {
    type Error = Error;
    fn try_from(s: &str) -> Result<Status, Error> {
        Status::parse(s)
    }
}
