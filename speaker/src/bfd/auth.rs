//! RFC 5880 §6.7.4 Keyed SHA1 and Meticulous Keyed SHA1 authentication of one session: the key
//! ([`AuthKey`], whose secret no `Debug` or log ever shows), signing of outgoing packets and the
//! receive checks — Auth Type, Auth Len, Auth Key ID, the sequence-number replay window
//! (bfd.RcvAuthSeq, bfd.AuthSeqKnown) and the digest, compared in constant time.
//!
//! Pure apart from [`AuthKey::load`], which reads the key file; time is an input.

use std::fmt;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::bfd::packet::{AuthType, Repr, SHA1_DIGEST_LEN, Sha1Auth};
use crate::bfd::{Error, Result};
use crate::config::{BfdAuthConfig, BfdAuthType};

/// Keyed SHA1 advances its sequence number at most this often (§6.7.4: it "MAY be
/// incremented"). Once a second, as BIRD does: a peer whose replay window counts its own Detect
/// Mult in packets never sees us leave it through a few lost packets, and a replay is still only
/// accepted within seconds of the original.
const KEYED_SEQ_PERIOD: Duration = Duration::from_secs(1);

/// A configured key: type, ID and the secret zero-padded to 20 octets (§4.4).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey {
    auth_type: BfdAuthType,
    key_id: u8,
    padded: [u8; SHA1_DIGEST_LEN],
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKey")
            .field("auth_type", &self.auth_type)
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl AuthKey {
    /// A key of 1 to 20 octets (§4.4: "the shared SHA1 key ... padded to a length of 20 bytes
    /// with trailing zero bytes if needed"; a longer one cannot be used as specified).
    pub fn new(auth_type: BfdAuthType, key_id: u8, secret: &[u8]) -> Result<Self> {
        if secret.is_empty() || secret.len() > SHA1_DIGEST_LEN {
            return Err(Error::AuthKey {
                path: "<key>".into(),
                message: format!(
                    "the key is {} octets; SHA1 keys have 1 to {SHA1_DIGEST_LEN}",
                    secret.len()
                ),
            });
        }
        let mut padded = [0; SHA1_DIGEST_LEN];
        if let Some(dst) = padded.get_mut(..secret.len()) {
            dst.copy_from_slice(secret);
        }
        Ok(Self {
            auth_type,
            key_id,
            padded,
        })
    }

    /// Reads the key named by `config` from its file; the content, trimmed of surrounding
    /// whitespace (like a BGP `passwordFile`), is the key.
    pub fn load(config: &BfdAuthConfig) -> Result<Self> {
        let path = config.password_file.display().to_string();
        let text = std::fs::read(&config.password_file).map_err(|e| Error::AuthKey {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Self::new(config.auth_type, config.key_id, text.trim_ascii()).map_err(|e| match e {
            Error::AuthKey { message, .. } => Error::AuthKey { path, message },
            other => other,
        })
    }

    /// The type.
    pub fn auth_type(&self) -> BfdAuthType {
        self.auth_type
    }

    /// Auth Key ID.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    fn wire_type(&self) -> AuthType {
        match self.auth_type {
            BfdAuthType::KeyedSha1 => AuthType::KeyedSha1,
            BfdAuthType::MeticulousKeyedSha1 => AuthType::MeticulousKeyedSha1,
        }
    }

    fn meticulous(&self) -> bool {
        self.auth_type == BfdAuthType::MeticulousKeyedSha1
    }

    /// The SHA1 hash of `repr` with this key in the Auth Key/Hash field.
    fn digest(&self, repr: &Repr) -> Option<[u8; SHA1_DIGEST_LEN]> {
        let bytes = repr.with_sha1_key_in_digest(&self.padded)?;
        Some(Sha1::digest(&bytes).into())
    }
}

/// The authentication variables of one session (§6.8.1): bfd.AuthType and the key,
/// bfd.XmitAuthSeq, bfd.RcvAuthSeq and bfd.AuthSeqKnown (`rcv_seq` is `Some` when known).
#[derive(Debug, Clone)]
pub struct AuthState {
    key: AuthKey,
    xmit_seq: u32,
    xmit_seq_at: Option<Instant>,
    rcv_seq: Option<u32>,
    last_valid_rx: Option<Instant>,
}

impl AuthState {
    /// State for `key`; `initial_seq` must be random (§6.8.1: bfd.XmitAuthSeq "MUST be
    /// initialized to a random 32 bit value").
    pub fn new(key: AuthKey, initial_seq: u32) -> Self {
        Self {
            key,
            xmit_seq: initial_seq,
            xmit_seq_at: None,
            rcv_seq: None,
            last_valid_rx: None,
        }
    }

    /// The key in use.
    pub fn key(&self) -> &AuthKey {
        &self.key
    }

    /// bfd.RcvAuthSeq while bfd.AuthSeqKnown is 1.
    pub fn received_sequence(&self) -> Option<u32> {
        self.rcv_seq
    }

    /// Adds the authentication section to an outgoing packet and advances bfd.XmitAuthSeq:
    /// Meticulous Keyed SHA1 with every packet ("MUST be incremented"), Keyed SHA1 at most once
    /// per [`KEYED_SEQ_PERIOD`].
    pub fn sign(&mut self, now: Instant, repr: &mut Repr) {
        let advance = match self.xmit_seq_at {
            None => false,
            Some(_) if self.key.meticulous() => true,
            Some(at) => now.saturating_duration_since(at) >= KEYED_SEQ_PERIOD,
        };
        if advance {
            // §6.7.4: incremented "in a circular fashion (when treated as an unsigned 32 bit
            // value)".
            self.xmit_seq = self.xmit_seq.wrapping_add(1);
        }
        if advance || self.xmit_seq_at.is_none() {
            self.xmit_seq_at = Some(now);
        }
        let mut section = Sha1Auth {
            meticulous: self.key.meticulous(),
            key_id: self.key.key_id,
            sequence: self.xmit_seq,
            digest: self.key.padded,
        };
        // "The authentication key value (with trailing zeros to 20 bytes) is placed into the
        // Auth Key/Hash field. An SHA1 hash is then calculated on the entire packet and placed
        // into the Auth Key/Hash field."
        repr.auth = Some(section.to_section());
        if let Some(digest) = self.key.digest(repr) {
            section.digest = digest;
            repr.auth = Some(section.to_section());
        }
    }

    /// The §6.7.4 receive checks for a packet demultiplexed to this session; on success the
    /// packet is accepted and bfd.RcvAuthSeq follows it. A failed check changes nothing, so a
    /// forged packet cannot move the replay window.
    ///
    /// `local_detect_mult` is bfd.DetectMult. `forget_after` is twice the Detection Time: §6.8.1,
    /// bfd.AuthSeqKnown "MUST be set to zero if no packets have been received on this session for
    /// at least twice the Detection Time", so a restarted peer with a new random sequence number
    /// is accepted again.
    pub fn verify(
        &mut self,
        now: Instant,
        repr: &Repr,
        local_detect_mult: u8,
        forget_after: Option<Duration>,
    ) -> Result<()> {
        // §6.8.6: "If the A bit is clear and authentication is in use (bfd.AuthType is nonzero),
        // the packet MUST be discarded."
        let section = repr.auth.as_ref().ok_or(Error::AuthMissing)?;
        // "If the Auth Type field does not match bfd.AuthType or the Auth Len field is not equal
        // to 28, the packet MUST be discarded."
        let auth = Sha1Auth::parse(section, self.key.wire_type())?;
        // "If the Auth Key ID field does not match the ID of a configured authentication key,
        // the received packet MUST be discarded."
        if auth.key_id != self.key.key_id {
            return Err(Error::AuthKeyId {
                expected: self.key.key_id,
                received: auth.key_id,
            });
        }
        if let (Some(last), Some(forget)) = (self.last_valid_rx, forget_after)
            && now.saturating_duration_since(last) >= forget
        {
            self.rcv_seq = None;
        }
        // "If bfd.AuthSeqKnown is 1, examine the Sequence Number field. For Keyed SHA1, if the
        // sequence number lies outside of the range of bfd.RcvAuthSeq to bfd.RcvAuthSeq+(3*Detect
        // Mult) inclusive (when treated as an unsigned 32 bit circular number space), the
        // received packet MUST be discarded. For Meticulous Keyed SHA1, if the sequence number
        // lies outside of the range of bfd.RcvAuthSeq+1 to bfd.RcvAuthSeq+(3*Detect Mult)
        // inclusive ..., the received packet MUST be discarded."
        // Implementations read "Detect Mult" as their own bfd.DetectMult (BIRD) or as the
        // packet's field; the larger of the two accepts both readings and stays below 766.
        if let Some(last) = self.rcv_seq {
            let window = 3 * u32::from(local_detect_mult.max(repr.detect_mult));
            let ahead = auth.sequence.wrapping_sub(last);
            let lowest = u32::from(self.key.meticulous());
            if ahead < lowest || ahead > window {
                return Err(Error::AuthSequence {
                    received: auth.sequence,
                    last,
                });
            }
        }
        // "Replace the contents of the Auth Key/Hash field with the authentication key selected
        // by the received Auth Key ID field. If the SHA1 hash of the packet does not match the
        // received Auth Key/Hash field, the received packet MUST be discarded."
        let expected = self.key.digest(repr).ok_or(Error::AuthLenMismatch {
            auth_len: section.auth_len(),
            expected: crate::bfd::packet::SHA1_AUTH_LEN,
        })?;
        if !bool::from(expected.ct_eq(&auth.digest)) {
            return Err(Error::AuthDigest);
        }
        // "If the calculated hash matches, the packet MUST be accepted, and bfd.RcvAuthSeq MUST
        // be set to the value of the received Sequence Number field." The RFC also sets
        // bfd.AuthSeqKnown before the hash check when it was 0; doing it only here keeps a
        // forged packet from choosing the window.
        self.rcv_seq = Some(auth.sequence);
        self.last_valid_rx = Some(now);
        Ok(())
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
