//! Domain names on the wire (RFC 1035 sections 3.1 and 4.1.4): reading with compression pointers,
//! case-insensitive comparison, and writing with a compression table.
//!
//! Names read here come out uncompressed and lower-cased into a fixed [`NameBuf`] on the stack,
//! the form every lookup table in `authority` is keyed by. Nothing here allocates except
//! [`encode`], which runs when zones are built, never per query.

use super::{Error, put};
use dataplane_common::model::Name;

/// The longest name, length octets and root included (RFC 1035 section 2.3.4).
pub const MAX_LEN: usize = 255;
/// The longest label.
pub const MAX_LABEL: usize = 63;
/// The most labels a name can have, the root not counted.
pub const MAX_LABELS: usize = 127;
/// The two high bits of a compression pointer.
const POINTER: u8 = 0xC0;
/// Compression pointers followed in one name before it is rejected (loops are also bounded by
/// [`MAX_LEN`]; this caps the work).
const MAX_HOPS: usize = 64;
/// The largest offset a pointer can hold.
const MAX_POINTER_TARGET: usize = 0x3FFF;

/// An uncompressed, lower-cased wire name held on the stack.
///
/// Invariant: `bytes[..len]` is a sequence of labels ending with the root label (a single 0),
/// at most [`MAX_LEN`] octets, once filled by a `read_*` method.
#[derive(Clone)]
pub struct NameBuf {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&to_text(self.as_bytes()))
    }
}

impl NameBuf {
    /// The root name.
    pub const fn new() -> Self {
        Self {
            bytes: [0; MAX_LEN],
            len: 1,
        }
    }

    /// The wire bytes, root label included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Reads the name at `msg[start..]`, following compression pointers (each MUST point strictly
    /// backwards), and returns the offset just after the name as it sits at `start`.
    ///
    /// # Errors
    /// [`Error::UnexpectedEnd`], [`Error::BadLabelType`], [`Error::NameTooLong`] or
    /// [`Error::BadPointer`].
    pub fn read(&mut self, msg: &[u8], start: usize) -> Result<usize, Error> {
        self.read_inner(msg, start, true)
    }

    /// Reads the name at `msg[start..]`, which MUST NOT use compression (a query's question
    /// has no earlier name to point to), and returns the offset just after it.
    ///
    /// # Errors
    /// As [`Self::read`]; any pointer is [`Error::BadPointer`].
    pub fn read_uncompressed(&mut self, msg: &[u8], start: usize) -> Result<usize, Error> {
        self.read_inner(msg, start, false)
    }

    fn read_inner(&mut self, msg: &[u8], start: usize, pointers: bool) -> Result<usize, Error> {
        let mut pos = start;
        let mut len = 0;
        let mut end = None;
        let mut hops = 0;
        self.len = 1;
        loop {
            let b = *msg.get(pos).ok_or(Error::UnexpectedEnd)?;
            match b & POINTER {
                0 => {
                    let l = usize::from(b);
                    if len + 1 + l > MAX_LEN {
                        return Err(Error::NameTooLong);
                    }
                    if l == 0 {
                        self.bytes[len] = 0;
                        self.len = len + 1;
                        return Ok(end.unwrap_or(pos + 1));
                    }
                    let label = msg.get(pos + 1..pos + 1 + l).ok_or(Error::UnexpectedEnd)?;
                    self.bytes[len] = b;
                    for (d, s) in self.bytes[len + 1..len + 1 + l].iter_mut().zip(label) {
                        *d = s.to_ascii_lowercase();
                    }
                    len += 1 + l;
                    pos += 1 + l;
                }
                POINTER => {
                    if !pointers {
                        return Err(Error::BadPointer);
                    }
                    let lo = *msg.get(pos + 1).ok_or(Error::UnexpectedEnd)?;
                    let target = (usize::from(b & !POINTER) << 8) | usize::from(lo);
                    hops += 1;
                    if target >= pos || hops > MAX_HOPS {
                        return Err(Error::BadPointer);
                    }
                    end.get_or_insert(pos + 2);
                    pos = target;
                }
                _ => return Err(Error::BadLabelType),
            }
        }
    }
}

/// Returns the offset just after the (possibly compressed) name at `msg[start..]`, without
/// following pointers.
///
/// # Errors
/// [`Error::UnexpectedEnd`], [`Error::BadLabelType`] or [`Error::NameTooLong`].
pub fn skip(msg: &[u8], start: usize) -> Result<usize, Error> {
    let mut pos = start;
    loop {
        let b = *msg.get(pos).ok_or(Error::UnexpectedEnd)?;
        match b & POINTER {
            0 if b == 0 => return Ok(pos + 1),
            0 => {
                pos += 1 + usize::from(b);
                if pos - start >= MAX_LEN {
                    return Err(Error::NameTooLong);
                }
            }
            POINTER if pos + 2 <= msg.len() => return Ok(pos + 2),
            POINTER => return Err(Error::UnexpectedEnd),
            _ => return Err(Error::BadLabelType),
        }
    }
}

/// Whether two uncompressed wire names are equal, ignoring ASCII case (RFC 4343).
pub fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Fills `starts` with the offset of each label of the uncompressed `name` (root excluded) and
/// returns how many there are.
pub fn label_starts(name: &[u8], starts: &mut [u8; MAX_LABELS]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(&l) = name.get(pos) {
        if l == 0 || n == MAX_LABELS {
            break;
        }
        starts[n] = pos as u8;
        n += 1;
        pos += 1 + usize::from(l);
    }
    n
}

/// Appends the uncompressed wire form of `name` to `out`.
pub fn encode(name: &Name, out: &mut Vec<u8>) {
    for label in name.labels() {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// The presentation form of an uncompressed wire name (for errors and debugging).
pub fn to_text(name: &[u8]) -> String {
    let mut s = String::new();
    let mut pos = 0;
    while let Some(&l) = name.get(pos) {
        if l == 0 {
            break;
        }
        let label = name
            .get(pos + 1..pos + 1 + usize::from(l))
            .unwrap_or_default();
        s.push_str(&String::from_utf8_lossy(label));
        s.push('.');
        pos += 1 + usize::from(l);
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// Whether the name at `msg[at..]` (compressed or not) equals the uncompressed `name`, ignoring
/// case. Malformed bytes compare unequal.
fn matches_at(msg: &[u8], at: usize, name: &[u8]) -> bool {
    let (mut p, mut i, mut hops) = (at, 0, 0);
    loop {
        let Some(&b) = msg.get(p) else { return false };
        if b & POINTER == POINTER {
            let Some(&lo) = msg.get(p + 1) else {
                return false;
            };
            let target = (usize::from(b & !POINTER) << 8) | usize::from(lo);
            hops += 1;
            if target >= p || hops > MAX_HOPS {
                return false;
            }
            p = target;
            continue;
        }
        if b & POINTER != 0 || name.get(i) != Some(&b) {
            return false;
        }
        let l = usize::from(b);
        if l == 0 {
            return i + 1 == name.len();
        }
        match (msg.get(p + 1..p + 1 + l), name.get(i + 1..i + 1 + l)) {
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
            _ => return false,
        }
        p += 1 + l;
        i += 1 + l;
    }
}

/// How many names a [`Compressor`] remembers; later ones are written but not pointed to.
const COMPRESSOR_CAP: usize = 64;

/// The names already written into a message, so later names can point to them
/// (RFC 1035 section 4.1.4).
///
/// Invariant: every remembered offset is at most `0x3FFF` and starts a label that was written
/// into the message this compressor is used with.
#[derive(Debug, Clone)]
pub struct Compressor {
    offsets: [u16; COMPRESSOR_CAP],
    len: usize,
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            offsets: [0; COMPRESSOR_CAP],
            len: 0,
        }
    }

    /// Forgets everything (for a new message).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, at: usize) {
        if at <= MAX_POINTER_TARGET && self.len < COMPRESSOR_CAP {
            self.offsets[self.len] = at as u16;
            self.len += 1;
        }
    }

    /// Remembers each label of the name written at `msg[at..]`, up to its end or first pointer.
    pub fn remember(&mut self, msg: &[u8], at: usize) {
        let mut p = at;
        while let Some(&b) = msg.get(p) {
            if b == 0 || b & POINTER != 0 {
                break;
            }
            self.push(p);
            p += 1 + usize::from(b);
        }
    }

    /// Writes the uncompressed `name` at `out[pos..]`, pointing to the longest remembered suffix,
    /// remembers its new labels, and returns the position after it.
    ///
    /// # Errors
    /// [`Error::NoSpace`] when `out` is too short.
    pub fn write(&mut self, out: &mut [u8], pos: usize, name: &[u8]) -> Result<usize, Error> {
        let mut starts = [0u8; MAX_LABELS];
        let n = label_starts(name, &mut starts);
        for (k, &s) in starts[..n].iter().enumerate() {
            let suffix = &name[usize::from(s)..];
            let found = self.offsets[..self.len]
                .iter()
                .copied()
                .find(|&o| matches_at(&out[..pos], usize::from(o), suffix));
            if let Some(target) = found {
                let head = &name[..usize::from(s)];
                let end = put(out, pos, head)?;
                let end = put(out, end, &(0xC000 | target).to_be_bytes())?;
                for &ls in &starts[..k] {
                    self.push(pos + usize::from(ls));
                }
                return Ok(end);
            }
        }
        let end = put(out, pos, name)?;
        for &ls in &starts[..n] {
            self.push(pos + usize::from(ls));
        }
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_compressed_names_lower_cased() {
        // "Web.EXAMPLE." at 0, then "www" + pointer to "EXAMPLE" at 4.
        let msg = b"\x03Web\x07EXAMPLE\x00\x03www\xC0\x04";
        let mut n = NameBuf::new();
        assert_eq!(n.read(msg, 0).unwrap(), 13);
        assert_eq!(n.as_bytes(), b"\x03web\x07example\x00");
        assert_eq!(n.read(msg, 13).unwrap(), msg.len());
        assert_eq!(n.as_bytes(), b"\x03www\x07example\x00");
        assert_eq!(n.read_uncompressed(msg, 13), Err(Error::BadPointer));
        assert_eq!(skip(msg, 13).unwrap(), msg.len());
    }

    #[test]
    fn rejects_loops_forward_pointers_and_long_names() {
        let mut n = NameBuf::new();
        assert_eq!(n.read(b"\xC0\x00", 0), Err(Error::BadPointer));
        assert_eq!(n.read(b"\xC0\x02\x00", 0), Err(Error::BadPointer));
        // A label that runs into a pointer back to itself.
        assert!(n.read(b"\x01a\xC0\x00", 0).is_err());
        assert_eq!(n.read(b"\x40", 0), Err(Error::BadLabelType));
        assert_eq!(n.read(b"\x03ab", 0), Err(Error::UnexpectedEnd));
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(60);
            long.extend_from_slice(&[b'a'; 60]);
        }
        long.push(0);
        assert_eq!(n.read(&long, 0), Err(Error::NameTooLong));
    }

    #[test]
    fn compressor_points_to_the_longest_suffix() {
        let mut out = [0u8; 64];
        let mut c = Compressor::new();
        let first = b"\x03web\x07example\x00";
        let end = c.write(&mut out, 0, first).unwrap();
        assert_eq!(end, first.len());
        let end2 = c.write(&mut out, end, b"\x03www\x07example\x00").unwrap();
        assert_eq!(&out[end..end2], b"\x03www\xC0\x04");
        let end3 = c.write(&mut out, end2, b"\x03WEB\x07example\x00").unwrap();
        assert_eq!(&out[end2..end3], b"\xC0\x00");
        let mut n = NameBuf::new();
        n.read(&out, end).unwrap();
        assert_eq!(n.as_bytes(), b"\x03www\x07example\x00");
        assert_eq!(
            c.write(&mut out[..end3 + 2], end3, b"\x01x\x00"),
            Err(Error::NoSpace)
        );
    }
}
