//! The one error type of the wire layer: small and `Copy`, so the hot path can return it freely.

/// Why bytes could not be read, or a message could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message ends inside a field.
    #[error("message ends inside a field")]
    UnexpectedEnd,
    /// A label length byte uses the reserved `01` or `10` prefixes (RFC 6891 section 5).
    #[error("label type is reserved")]
    BadLabelType,
    /// A name longer than 255 octets (RFC 1035 section 2.3.4).
    #[error("name is longer than 255 octets")]
    NameTooLong,
    /// A compression pointer that does not point strictly backwards, or where none is allowed.
    #[error("bad compression pointer")]
    BadPointer,
    /// More than one OPT record, or an OPT record not owned by the root (RFC 6891 section 6.1.1).
    #[error("bad OPT record")]
    BadOpt,
    /// The output buffer is too small.
    #[error("no space left in the output buffer")]
    NoSpace,
}
