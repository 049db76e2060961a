//! Temporary pass-through guard (replaced by the strict guard).
#![allow(dead_code, missing_docs)]

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) request_line: usize,
    pub(crate) fields: usize,
    pub(crate) field_size: usize,
    pub(crate) max_body: Option<u64>,
    pub(crate) require_host: bool,
}
impl Default for Limits {
    fn default() -> Self {
        Limits { request_line: 4094, fields: 100, field_size: 8190, max_body: None, require_host: true }
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
    pub(crate) in_body: bool,
}
#[derive(Debug)]
pub(crate) struct Guard;
impl Guard {
    pub(crate) fn new(_l: Limits) -> Self {
        Guard
    }
    pub(crate) fn advance(&mut self, buf: &[u8]) -> Result<usize, Reject> {
        Ok(buf.len())
    }
    pub(crate) fn is_idle(&self) -> bool {
        true
    }
}
