//! The protobuf wire format: varints, fixed 32/64-bit values and
//! length-delimited payloads, read from a borrowed byte slice.
//!
//! Owns only the byte-level grammar; knows nothing about Kubernetes types.
//! Must never panic or allocate proportionally to a declared (untrusted) length:
//! every length is checked against the bytes actually present.
//!
//! Not built on `prost`: we need gogo-protobuf's exact acceptance rules (a
//! varint may use at most 10 bytes, higher bits of the 10th byte are dropped,
//! groups are rejected) and borrowed payloads over `&[u8]`, which is a few
//! dozen lines here and would be adapter code around `prost::encoding` anyway.

/// One field occurrence on the wire, payload borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl WireValue<'_> {
    /// The protobuf wire type number of this value.
    pub fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => 0,
            WireValue::Fixed64(_) => 1,
            WireValue::Bytes(_) => 2,
            WireValue::Fixed32(_) => 5,
        }
    }
}

/// A wire-format error (message text only; the caller adds type and path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

/// Reads `(field number, value)` pairs from one message's bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// True when all bytes have been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads one varint (at most 10 bytes, like gogo-protobuf's generated code).
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(WireError("unexpected end of input in varint".into()));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f).checked_shl(7 * i).unwrap_or(0);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError("varint overflows 64 bits".into()))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| WireError("unexpected end of input".into()))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads the next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(WireError(format!("illegal field number {number}")));
        }
        let value = match wire {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                WireValue::Fixed64(u64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| WireError("length overflows".into()))?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                WireValue::Fixed32(u32::from_le_bytes(b.try_into().expect("4 bytes")))
            }
            3 | 4 => {
                return Err(WireError(format!(
                    "groups are not supported (field {number})"
                )));
            }
            w => return Err(WireError(format!("illegal wire type {w} (field {number})"))),
        };
        Ok(Some((number as u32, value)))
    }
}

/// Reads every varint of a packed repeated field.
pub fn packed_varints(buf: &[u8]) -> Result<Vec<u64>, WireError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(r.varint()?);
    }
    Ok(out)
}

/// Splits a packed repeated fixed-width field into little-endian words.
pub fn packed_fixed<const N: usize>(buf: &[u8]) -> Result<Vec<[u8; N]>, WireError> {
    if !buf.len().is_multiple_of(N) {
        return Err(WireError(format!(
            "packed field length {} is not a multiple of {N}",
            buf.len()
        )));
    }
    Ok(buf
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunk of N"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        assert!(Reader::new(&[0x80]).varint().is_err());
    }

    #[test]
    fn fields_and_truncation() {
        let mut r = Reader::new(&[0x0a, 0x02, b'h', b'i', 0x10, 0x07]);
        assert_eq!(r.next_field(), Ok(Some((1, WireValue::Bytes(b"hi")))));
        assert_eq!(r.next_field(), Ok(Some((2, WireValue::Varint(7)))));
        assert_eq!(r.next_field(), Ok(None));
        assert!(Reader::new(&[0x0a, 0x05, b'h']).next_field().is_err());
        assert!(
            Reader::new(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])
                .next_field()
                .is_err()
        );
        assert!(Reader::new(&[0x00]).next_field().is_err());
        assert!(Reader::new(&[0x0b]).next_field().is_err());
    }
}
