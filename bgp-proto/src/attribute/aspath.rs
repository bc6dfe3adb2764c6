//! AS_PATH and AS4_PATH values (RFC 4271 §4.3, RFC 5065, RFC 6793) and the RFC 6793 §4.2.3
//! reconstruction of the 4-octet path from AS_PATH plus AS4_PATH.
//!
//! Storage is one flat list of words: each segment is a header word (type << 16 | count) followed
//! by its ASes. Paths of up to seven words (one segment of six ASes) live inline, so the common
//! short path costs no allocation; longer ones take one. Pure data.

use bytes::BufMut;

use crate::iana::{AS_TRANS, SegmentType};

/// Words kept inline before spilling to the heap.
const INLINE: usize = 7;

/// Word storage: inline for short paths, a vector beyond.
#[derive(Clone)]
enum Words {
    Inline { len: u8, buf: [u32; INLINE] },
    Heap(Vec<u32>),
}

impl Default for Words {
    fn default() -> Self {
        Words::Inline {
            len: 0,
            buf: [0; INLINE],
        }
    }
}

impl Words {
    fn with_capacity(n: usize) -> Self {
        if n <= INLINE {
            Words::default()
        } else {
            Words::Heap(Vec::with_capacity(n))
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u32] {
        match self {
            // `len` never exceeds INLINE: `push` and `extend_from_slice` only raise it into
            // slots that exist.
            Words::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or(buf),
            Words::Heap(v) => v,
        }
    }

    #[inline]
    fn push(&mut self, w: u32) {
        match self {
            Words::Inline { len, buf } => match buf.get_mut(usize::from(*len)) {
                Some(slot) => {
                    *slot = w;
                    // `len` indexed a slot, so it is below INLINE and one more fits a u8.
                    *len = len.wrapping_add(1);
                }
                None => {
                    // Full: `len` is INLINE.
                    let mut v = Vec::with_capacity(2 * INLINE);
                    v.extend_from_slice(buf);
                    v.push(w);
                    *self = Words::Heap(v);
                }
            },
            Words::Heap(v) => v.push(w),
        }
    }

    fn extend_from_slice(&mut self, ws: &[u32]) {
        match self {
            Words::Inline { len, buf } => {
                let free = buf.get_mut(usize::from(*len)..).unwrap_or_default();
                if let Some(dst) = free.get_mut(..ws.len()) {
                    dst.copy_from_slice(ws);
                    // `dst` fits in `buf`, so the new length is at most INLINE.
                    *len = len.wrapping_add(dst.len() as u8);
                    return;
                }
            }
            Words::Heap(v) => {
                v.extend_from_slice(ws);
                return;
            }
        }
        // An inline buffer without room for `ws`: move to the heap.
        let mut v = Vec::with_capacity(self.as_slice().len().saturating_add(ws.len()));
        v.extend_from_slice(self.as_slice());
        v.extend_from_slice(ws);
        *self = Words::Heap(v);
    }
}

/// An AS path: a list of segments.
#[derive(Clone, Default)]
pub struct AsPath {
    words: Words,
}

impl PartialEq for AsPath {
    fn eq(&self, other: &Self) -> bool {
        self.words.as_slice() == other.words.as_slice()
    }
}

impl Eq for AsPath {}

impl std::hash::Hash for AsPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.words.as_slice().hash(state);
    }
}

/// A borrowed view of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Segment type.
    pub kind: SegmentType,
    /// The ASes, in wire order.
    pub asns: &'a [u32],
}

/// Why an AS path could not be parsed (RFC 7606 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AsPathError {
    /// Overrun, underrun, zero-length segment or unknown segment type.
    Malformed,
    /// AS 0 appears (RFC 7607).
    ZeroAs,
    /// A confederation segment where none is allowed (AS4_PATH, RFC 6793 §6).
    Confed,
}

impl std::fmt::Debug for AsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.segments()).finish()
    }
}

/// Iterator over the segments of an [`AsPath`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    rest: &'a [u32],
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let (&head, rest) = self.rest.split_first()?;
        let count = (head & 0xffff) as usize;
        let n = count.min(rest.len());
        let (asns, rest) = rest.split_at(n);
        self.rest = rest;
        Some(Segment {
            kind: SegmentType::from((head >> 16) as u8),
            asns,
        })
    }
}

impl AsPath {
    /// An empty path.
    pub fn new() -> Self {
        AsPath::default()
    }

    /// A path of one AS_SEQUENCE (empty path if `asns` is empty).
    pub fn from_sequence(asns: &[u32]) -> Self {
        let mut p = AsPath::new();
        p.push_segment(SegmentType::AsSequence, asns);
        p
    }

    /// Appends a segment; nothing happens for an empty `asns`. Segments longer than 255 ASes are
    /// split on encode.
    pub fn push_segment(&mut self, kind: SegmentType, asns: &[u32]) {
        if asns.is_empty() {
            return;
        }
        for chunk in asns.chunks(0xffff) {
            self.words
                .push((u32::from(u8::from(kind)) << 16) | chunk.len() as u32);
            self.words.extend_from_slice(chunk);
        }
    }

    /// The segments in order.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            rest: self.words.as_slice(),
        }
    }

    /// Whether the path has no segments.
    pub fn is_empty(&self) -> bool {
        self.words.as_slice().is_empty()
    }

    /// Path length for best-path selection (RFC 4271 §9.1.2.2): an AS_SET counts 1, confederation
    /// segments count 0 (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments()
            .map(|s| match s.kind {
                SegmentType::AsSequence => s.asns.len(),
                SegmentType::AsSet => 1,
                _ => 0,
            })
            .sum()
    }

    /// The first AS of a leading AS_SEQUENCE: the neighbour AS for eBGP routes.
    pub fn first_asn(&self) -> Option<u32> {
        let s = self.segments().next()?;
        (s.kind == SegmentType::AsSequence)
            .then(|| s.asns.first().copied())
            .flatten()
    }

    /// Whether `asn` occurs anywhere (loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments().any(|s| s.asns.contains(&asn))
    }

    /// Prepends `asn` `times` times to the leading AS_SEQUENCE (creating one if needed), as an
    /// eBGP speaker does on export (RFC 4271 §5.1.2).
    pub fn prepend(&mut self, asn: u32, times: usize) {
        if times == 0 {
            return;
        }
        let mut words = Words::with_capacity(
            self.words
                .as_slice()
                .len()
                .saturating_add(times)
                .saturating_add(1),
        );
        let lead = self.segments().next();
        let joined = lead
            .filter(|s| s.kind == SegmentType::AsSequence)
            .and_then(|s| s.asns.len().checked_add(times))
            .filter(|&n| n <= 255);
        match joined {
            Some(n) => {
                words.push((u32::from(u8::from(SegmentType::AsSequence)) << 16) | n as u32);
                (0..times).for_each(|_| words.push(asn));
                // Everything after the leading sequence's header word.
                words.extend_from_slice(self.words.as_slice().get(1..).unwrap_or_default());
            }
            _ => {
                let mut p = AsPath::new();
                p.push_segment(SegmentType::AsSequence, &vec![asn; times]);
                words.extend_from_slice(p.words.as_slice());
                words.extend_from_slice(self.words.as_slice());
            }
        }
        self.words = words;
    }

    /// Parses an AS_PATH or AS4_PATH value with `width`-octet ASes (2 or 4).
    pub(crate) fn decode(
        mut v: &[u8],
        width: usize,
        allow_confed: bool,
    ) -> Result<Self, AsPathError> {
        // A word per AS plus one per segment: at most len/width words for 2-octet ASes' headers.
        let estimate = v.len().checked_div(width).unwrap_or(0).saturating_add(1);
        let mut words = if estimate <= 2 * INLINE {
            Words::default()
        } else {
            Words::with_capacity(estimate)
        };
        let mut zero = false;
        while !v.is_empty() {
            // RFC 7606 §7.2: a segment is malformed if "there is an underrun where after the last
            // successfully parsed segment there is only a single octet remaining", if "the Path
            // Segment Length field of the last segment encountered would cause the Attribute Length
            // to be exceeded", or if "It has a Path Segment Length field of zero".
            let [ty, count, rest @ ..] = v else {
                return Err(AsPathError::Malformed);
            };
            let kind = SegmentType::from(*ty);
            if matches!(kind, SegmentType::Unknown(_)) || *count == 0 {
                return Err(AsPathError::Malformed);
            }
            if !allow_confed && matches!(kind, SegmentType::ConfedSequence | SegmentType::ConfedSet)
            {
                return Err(AsPathError::Confed);
            }
            let n = usize::from(*count);
            let Some((body, next)) = n
                .checked_mul(width)
                .and_then(|len| rest.split_at_checked(len))
            else {
                return Err(AsPathError::Malformed);
            };
            words.push((u32::from(*ty) << 16) | n as u32);
            if width == 4 {
                for c in body.as_chunks::<4>().0 {
                    let a = u32::from_be_bytes(*c);
                    zero |= a == 0;
                    words.push(a);
                }
            } else {
                for c in body.as_chunks::<2>().0 {
                    let a = u32::from(u16::from_be_bytes(*c));
                    zero |= a == 0;
                    words.push(a);
                }
            }
            v = next;
        }
        if zero {
            return Err(AsPathError::ZeroAs);
        }
        Ok(AsPath { words })
    }

    /// Encoded length with `width`-octet ASes.
    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: lengths of a path held in memory"
    )]
    pub(crate) fn encoded_len(&self, width: usize) -> usize {
        self.segments()
            .map(|s| 2 * s.asns.len().div_ceil(255) + width * s.asns.len())
            .sum()
    }

    /// Appends the encoding with `width`-octet ASes; in 2-octet form ASes above 65535 become
    /// AS_TRANS (RFC 6793 §4.2.2).
    pub(crate) fn encode(&self, width: usize, out: &mut impl BufMut) {
        for s in self.segments() {
            for chunk in s.asns.chunks(255) {
                out.put_u8(s.kind.into());
                out.put_u8(chunk.len() as u8);
                for &a in chunk {
                    if width == 4 {
                        out.put_u32(a);
                    } else {
                        out.put_u16(u16::try_from(a).unwrap_or(AS_TRANS));
                    }
                }
            }
        }
    }

    /// Whether any AS needs 4 octets (so a 2-octet peer needs AS4_PATH).
    pub fn needs_four_octets(&self) -> bool {
        self.segments().any(|s| s.asns.iter().any(|&a| a > 0xffff))
    }
}

/// Rebuilds the 4-octet path from AS_PATH and AS4_PATH (RFC 6793 §4.2.3).
///
/// "If the number of AS numbers in the AS_PATH attribute is less than the number of AS numbers in
/// the AS4_PATH attribute, then the AS4_PATH attribute SHALL be ignored, and the AS_PATH attribute
/// SHALL be taken as the AS path information." Otherwise the leading ASes of AS_PATH that AS4_PATH
/// lacks are kept in front of AS4_PATH. Counting follows RFC 4271 (AS_SET counts 1, confederation
/// segments do not count); confederation segments of AS_PATH are kept in front.
pub fn merge_as4_path(as_path: &AsPath, as4_path: &AsPath) -> AsPath {
    let n = as_path.path_len();
    let m = as4_path.path_len();
    let Some(mut keep) = n.checked_sub(m) else {
        return as_path.clone();
    };
    let mut out = AsPath::new();
    for s in as_path.segments() {
        match s.kind {
            SegmentType::ConfedSequence | SegmentType::ConfedSet => {
                out.push_segment(s.kind, s.asns);
            }
            SegmentType::AsSet if keep >= 1 => {
                out.push_segment(s.kind, s.asns);
                keep = keep.saturating_sub(1);
            }
            SegmentType::AsSequence if keep > 0 => {
                let (kept, _) = s.asns.split_at_checked(keep).unwrap_or((s.asns, &[]));
                out.push_segment(s.kind, kept);
                keep = keep.saturating_sub(kept.len());
            }
            _ => {}
        }
        if keep == 0 {
            break;
        }
    }
    // Join a kept leading sequence with a leading AS4 sequence so the result has the shape the
    // 4-octet speaker originally sent.
    for s in as4_path.segments() {
        out.push_segment(s.kind, s.asns);
    }
    out.coalesce_sequences();
    out
}

impl AsPath {
    fn coalesce_sequences(&mut self) {
        let mut merged = AsPath::new();
        let mut pending: Vec<u32> = Vec::new();
        for s in self.segments() {
            if s.kind == SegmentType::AsSequence
                && pending.len().saturating_add(s.asns.len()) <= 255
            {
                pending.extend_from_slice(s.asns);
                continue;
            }
            merged.push_segment(SegmentType::AsSequence, &pending);
            pending.clear();
            if s.kind == SegmentType::AsSequence {
                pending.extend_from_slice(s.asns);
            } else {
                merged.push_segment(s.kind, s.asns);
            }
        }
        merged.push_segment(SegmentType::AsSequence, &pending);
        *self = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_encode_both_widths() {
        let wire4 = [
            2, 2, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x00, 1, 1, 0, 0, 0, 7,
        ];
        let p = AsPath::decode(&wire4, 4, true).unwrap();
        let segs: Vec<_> = p.segments().collect();
        assert_eq!(segs[0].asns, &[65001, 4_200_000_000]);
        assert_eq!(segs[1].kind, SegmentType::AsSet);
        assert_eq!(p.path_len(), 3);
        let mut out = Vec::new();
        p.encode(4, &mut out);
        assert_eq!(out, wire4);
        assert_eq!(p.encoded_len(4), wire4.len());
        let mut out2 = Vec::new();
        p.encode(2, &mut out2);
        assert_eq!(out2, vec![2, 2, 0xfd, 0xe9, 0x5b, 0xa0, 1, 1, 0, 7]);
    }

    #[test]
    fn malformed_paths_are_rejected() {
        assert_eq!(AsPath::decode(&[2], 2, true), Err(AsPathError::Malformed));
        assert_eq!(
            AsPath::decode(&[2, 0], 2, true),
            Err(AsPathError::Malformed)
        );
        assert_eq!(
            AsPath::decode(&[2, 2, 0, 1], 2, true),
            Err(AsPathError::Malformed)
        );
        assert_eq!(
            AsPath::decode(&[9, 1, 0, 1], 2, true),
            Err(AsPathError::Malformed)
        );
        assert_eq!(
            AsPath::decode(&[2, 1, 0, 0], 2, true),
            Err(AsPathError::ZeroAs)
        );
        assert_eq!(
            AsPath::decode(&[3, 1, 0, 1], 2, false),
            Err(AsPathError::Confed)
        );
    }

    #[test]
    fn long_segments_split_on_encode() {
        let asns: Vec<u32> = (1..=300).collect();
        let p = AsPath::from_sequence(&asns);
        let mut out = Vec::new();
        p.encode(2, &mut out);
        assert_eq!(out.len(), p.encoded_len(2));
        let back = AsPath::decode(&out, 2, true).unwrap();
        assert_eq!(back.segments().count(), 2);
        assert_eq!(back.path_len(), 300);
    }

    #[test]
    fn as4_merge_follows_rfc6793() {
        // A 2-octet speaker (65001) prepended itself in front of a path through 4-octet ASes.
        let as_path = AsPath::from_sequence(&[65001, 23456, 23456, 65002]);
        let as4 = AsPath::from_sequence(&[4_200_000_000, 4_200_000_001, 65002]);
        let merged = merge_as4_path(&as_path, &as4);
        assert_eq!(
            merged,
            AsPath::from_sequence(&[65001, 4_200_000_000, 4_200_000_001, 65002])
        );
        // AS4_PATH longer than AS_PATH: ignored.
        let short = AsPath::from_sequence(&[23456]);
        assert_eq!(merge_as4_path(&short, &as4), short);
    }

    #[test]
    fn prepend_extends_leading_sequence() {
        let mut p = AsPath::from_sequence(&[65002]);
        p.prepend(65001, 2);
        assert_eq!(p, AsPath::from_sequence(&[65001, 65001, 65002]));
        let mut e = AsPath::new();
        e.prepend(7, 1);
        assert_eq!(e.first_asn(), Some(7));
    }
}
