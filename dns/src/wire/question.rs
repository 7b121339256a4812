//! The single question of a query (RFC 1035 section 4.1.2).

use super::name::NameBuf;
use super::{Error, header, read_u16};

/// Where the question sits in a query and what it asks. The name itself is returned
/// lower-cased through a [`NameBuf`]; the original bytes stay at `msg[header::LEN..self.name_end]`
/// so a reply can echo them with the client's case (RFC 4343 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    /// The offset just after QNAME.
    pub name_end: usize,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The offset just after the question.
    pub end: usize,
}

impl Question {
    /// Parses the question that starts right after the header. QNAME MUST NOT be compressed.
    ///
    /// # Errors
    /// Any name error, or [`Error::UnexpectedEnd`] when QTYPE/QCLASS are cut off.
    pub fn parse(msg: &[u8], name: &mut NameBuf) -> Result<Self, Error> {
        let name_end = name.read_uncompressed(msg, header::LEN)?;
        let qtype = read_u16(msg, name_end)?;
        let qclass = read_u16(msg, name_end + 2)?;
        Ok(Self {
            name_end,
            qtype,
            qclass,
            end: name_end + 4,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_type_and_class() {
        let mut msg = vec![0u8; header::LEN];
        msg.extend_from_slice(b"\x03WeB\x00\x00\x01\x00\x01");
        let mut n = NameBuf::new();
        let q = Question::parse(&msg, &mut n).unwrap();
        assert_eq!((q.qtype, q.qclass, q.end), (1, 1, msg.len()));
        assert_eq!(n.as_bytes(), b"\x03web\x00");
        assert_eq!(&msg[header::LEN..q.name_end], b"\x03WeB\x00");
        assert_eq!(
            Question::parse(&msg[..msg.len() - 1], &mut n),
            Err(Error::UnexpectedEnd)
        );
    }
}
