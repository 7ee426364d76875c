//! The admission exchange that follows the TLS handshake, free of I/O (see `PROTOCOL.md`, *Admission*).
//!
//! Three messages on the control stream, before any hello:
//!
//! ```text
//! dialer   → acceptor   COMMIT   H(exporter, ids, n_d)            [SPAKE2 message A]
//! acceptor → dialer     RESPOND  n_a                              [SPAKE2 message B, confirmation B]
//! dialer   → acceptor   REVEAL   n_d                              [confirmation A]
//! ```
//!
//! * **Pairing code** (commit-then-reveal, as in ZRTP's hash commitment and Vaudenay's SAS-MCA): the dialer
//!   commits to its random nonce before it sees the acceptor's, and the acceptor sends its nonce before it sees
//!   the dialer's. The six-digit code is a KDF of the TLS exporter, both ids and both nonces, so neither side —
//!   nor a machine in the middle that terminates TLS on both sides — can choose a value after learning what the
//!   code will be: each attempt matches another session's code with probability 10⁻⁶.
//! * **Passphrase** (when configured): SPAKE2 (RFC 9382; RustCrypto's `spake2` crate, Ed25519 group) with the
//!   dialer's and acceptor's peer ids as identities, followed by key confirmation in both directions as in
//!   RFC 9382 §4: confirmation keys are derived from the SPAKE2 key with the TLS exporter as salt and both ids
//!   as context, so a confirmation is valid only inside this TLS session between these two ids. A peer that
//!   does not know the passphrase gets one guess per connection and nothing to test guesses against offline.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use spake2::{Ed25519Group, Identity as SpakeId, Password, Spake2};

/// Length of the TLS exporter value both sides feed in.
pub const EXPORTER_LEN: usize = 32;
/// Label of the TLS exporter (RFC 8446 §7.5) the exchange is bound to.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-multipeer/2 admission";
/// Length of each side's pairing nonce.
pub const NONCE_LEN: usize = 32;
/// Length of a SPAKE2 message (side byte and a compressed Ed25519 point).
pub const PAKE_MESSAGE_LEN: usize = 33;
/// Length of a key confirmation.
pub const CONFIRM_LEN: usize = 32;
/// Largest admission message.
pub const MAX_AUTH_LEN: usize = 1 + NONCE_LEN + 1 + PAKE_MESSAGE_LEN + CONFIRM_LEN;

const TAG_COMMIT: u8 = 0x01;
const TAG_RESPOND: u8 = 0x02;
const TAG_REVEAL: u8 = 0x03;

/// Why the admission exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer does not know our passphrase (its confirmation is wrong, or one side has none).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The dialer's revealed nonce does not open its commitment.
    #[error("pairing nonce does not match its commitment")]
    CommitmentMismatch,
    /// A message is malformed.
    #[error("malformed admission message: {0}")]
    Malformed(&'static str),
    /// The system random number generator failed.
    #[error("no randomness")]
    Random,
}

/// What both sides of one TLS session feed into the exchange.
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    /// The TLS exporter value ([`EXPORTER_LABEL`], empty context, [`EXPORTER_LEN`] bytes).
    pub exporter: &'a [u8; EXPORTER_LEN],
    /// The dialer's peer id.
    pub dialer: &'a [u8; 32],
    /// The acceptor's peer id.
    pub acceptor: &'a [u8; 32],
}

/// What a completed exchange yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The pairing code both ends show: six digits, `"123 456"`.
    pub pairing_code: String,
}

/// Randomness for the exchange: the system's, or (in tests) a scripted source.
pub trait Entropy {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), AuthError>;
}

/// The operating system's random number generator.
pub struct SystemEntropy;

impl Entropy for SystemEntropy {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), AuthError> {
        SystemRandom::new().fill(out).map_err(|_| AuthError::Random)
    }
}

/// Adapts an [`Entropy`] to the RNG interface `spake2` takes.
struct Rng<'a, E: Entropy>(&'a mut E, bool);

impl<E: Entropy> rand_core::RngCore for Rng<'_, E> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.0.fill(dest).is_err() {
            self.1 = false;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl<E: Entropy> rand_core::CryptoRng for Rng<'_, E> {}

fn start_pake<E: Entropy>(
    passphrase: &str,
    binding: &Binding<'_>,
    dialer: bool,
    entropy: &mut E,
) -> Result<(Spake2<Ed25519Group>, Vec<u8>), AuthError> {
    let (pw, a, b) = (
        Password::new(passphrase.as_bytes()),
        SpakeId::new(binding.dialer),
        SpakeId::new(binding.acceptor),
    );
    let mut rng = Rng(entropy, true);
    let started = if dialer {
        Spake2::<Ed25519Group>::start_a_with_rng(&pw, &a, &b, &mut rng)
    } else {
        Spake2::<Ed25519Group>::start_b_with_rng(&pw, &a, &b, &mut rng)
    };
    if rng.1 {
        Ok(started)
    } else {
        Err(AuthError::Random)
    }
}

/// The confirmation keys (dialer's, acceptor's) of RFC 9382 §4, bound to the TLS session and both ids.
fn confirmation_keys(pake_key: &[u8], binding: &Binding<'_>) -> (hmac::Key, hmac::Key) {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, binding.exporter);
    let prk = salt.extract(pake_key);
    let info = [
        b"multipeer/2 confirmation keys".as_slice(),
        binding.dialer.as_slice(),
        binding.acceptor.as_slice(),
    ];
    let mut keys = [0u8; 64];
    // 64 bytes is far below HKDF-SHA256's limit of 255 blocks, so neither call can fail.
    if let Ok(okm) = prk.expand(&info, Len(64)) {
        let _ = okm.fill(&mut keys);
    }
    (
        hmac::Key::new(hmac::HMAC_SHA256, &keys[..32]),
        hmac::Key::new(hmac::HMAC_SHA256, &keys[32..]),
    )
}

struct Len(usize);

impl ring::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn commitment(binding: &Binding<'_>, nonce: &[u8; NONCE_LEN]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        b"multipeer/2 pairing commitment".as_slice(),
        binding.exporter,
        binding.dialer,
        binding.acceptor,
        nonce,
    ] {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The pairing code: HKDF of the exporter, both ids and both nonces, as six decimal digits.
pub fn pairing_code(binding: &Binding<'_>, dialer_nonce: &[u8; NONCE_LEN], acceptor_nonce: &[u8; NONCE_LEN]) -> String {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"multipeer/2 pairing code");
    let prk = salt.extract(binding.exporter);
    let info = [
        binding.dialer.as_slice(),
        binding.acceptor.as_slice(),
        dialer_nonce.as_slice(),
        acceptor_nonce.as_slice(),
    ];
    let mut out = [0u8; 8];
    if let Ok(okm) = prk.expand(&info, Len(8)) {
        let _ = okm.fill(&mut out);
    }
    // 2^64 mod 10^6 is tiny next to 2^64: the bias towards small codes is below 10^-13.
    let number = u64::from_be_bytes(out) % 1_000_000;
    format!("{:03} {:03}", number / 1000, number % 1000)
}

/// The dialer's side of the exchange, between COMMIT and RESPOND.
pub struct Dialer {
    nonce: [u8; NONCE_LEN],
    commit: Vec<u8>,
    pake: Option<Spake2<Ed25519Group>>,
}

impl Dialer {
    /// Starts the exchange: returns the state and the COMMIT message to send.
    pub fn start<E: Entropy>(
        binding: &Binding<'_>,
        passphrase: Option<&str>,
        entropy: &mut E,
    ) -> Result<(Self, Vec<u8>), AuthError> {
        let mut nonce = [0u8; NONCE_LEN];
        entropy.fill(&mut nonce)?;
        let mut msg = vec![TAG_COMMIT];
        msg.extend_from_slice(&commitment(binding, &nonce));
        let pake = match passphrase {
            Some(pass) => {
                let (state, pake_msg) = start_pake(pass, binding, true, entropy)?;
                push_pake(&mut msg, &pake_msg);
                Some(state)
            }
            None => {
                msg.push(0);
                None
            }
        };
        Ok((
            Self {
                nonce,
                commit: msg.clone(),
                pake,
            },
            msg,
        ))
    }

    /// Takes the acceptor's RESPOND: checks its passphrase confirmation and returns the REVEAL message to
    /// send and what the exchange established.
    pub fn finish(self, binding: &Binding<'_>, respond: &[u8]) -> Result<(Vec<u8>, Admitted), AuthError> {
        let mut r = Reader(respond);
        if r.byte()? != TAG_RESPOND {
            return Err(AuthError::Malformed("expected RESPOND"));
        }
        let their_nonce: [u8; NONCE_LEN] = r.array()?;
        let their_pake = r.pake()?;
        let transcript = [
            self.commit.as_slice(),
            respond_without_confirm(respond, their_pake.is_some()),
        ]
        .concat();
        let mut reveal = vec![TAG_REVEAL];
        reveal.extend_from_slice(&self.nonce);
        match (self.pake, their_pake) {
            (None, None) => {}
            (Some(state), Some(msg_b)) => {
                let their_confirm: [u8; CONFIRM_LEN] = r.array()?;
                let key = state.finish(msg_b).map_err(|_| AuthError::WrongPassphrase)?;
                let (ours, theirs) = confirmation_keys(&key, binding);
                hmac::verify(&theirs, &transcript, &their_confirm).map_err(|_| AuthError::WrongPassphrase)?;
                reveal.extend_from_slice(hmac::sign(&ours, &transcript).as_ref());
            }
            (Some(_), None) => return Err(AuthError::WrongPassphrase),
            (None, Some(_)) => return Err(AuthError::Malformed("SPAKE2 message the dialer did not ask for")),
        }
        r.end()?;
        let code = pairing_code(binding, &self.nonce, &their_nonce);
        Ok((reveal, Admitted { pairing_code: code }))
    }
}

/// The acceptor's side of the exchange, between RESPOND and REVEAL.
pub struct Acceptor {
    commit: [u8; 32],
    nonce: [u8; NONCE_LEN],
    transcript: Vec<u8>,
    confirm_key: Option<hmac::Key>,
}

impl Acceptor {
    /// Takes the dialer's COMMIT: returns the state and the RESPOND message to send.
    ///
    /// With a passphrase, the RESPOND carries our confirmation: a dialer that guessed the passphrase can check
    /// its one guess, and nothing else.
    pub fn respond<E: Entropy>(
        binding: &Binding<'_>,
        passphrase: Option<&str>,
        commit: &[u8],
        entropy: &mut E,
    ) -> Result<(Self, Vec<u8>), AuthError> {
        let mut r = Reader(commit);
        if r.byte()? != TAG_COMMIT {
            return Err(AuthError::Malformed("expected COMMIT"));
        }
        let their_commit: [u8; 32] = r.array()?;
        let their_pake = r.pake()?;
        r.end()?;
        let mut nonce = [0u8; NONCE_LEN];
        entropy.fill(&mut nonce)?;
        let mut msg = vec![TAG_RESPOND];
        msg.extend_from_slice(&nonce);
        let (transcript, confirm_key) = match (passphrase, their_pake) {
            (None, None) => {
                msg.push(0);
                ([commit, &msg].concat(), None)
            }
            (Some(pass), Some(msg_a)) => {
                let (state, pake_msg) = start_pake(pass, binding, false, entropy)?;
                push_pake(&mut msg, &pake_msg);
                let transcript = [commit, &msg].concat();
                let key = state.finish(msg_a).map_err(|_| AuthError::WrongPassphrase)?;
                let (theirs, ours) = confirmation_keys(&key, binding);
                msg.extend_from_slice(hmac::sign(&ours, &transcript).as_ref());
                (transcript, Some(theirs))
            }
            _ => return Err(AuthError::WrongPassphrase),
        };
        Ok((
            Self {
                commit: their_commit,
                nonce,
                transcript,
                confirm_key,
            },
            msg,
        ))
    }

    /// Takes the dialer's REVEAL: checks its confirmation and that its nonce opens its commitment.
    pub fn finish(self, binding: &Binding<'_>, reveal: &[u8]) -> Result<Admitted, AuthError> {
        let mut r = Reader(reveal);
        if r.byte()? != TAG_REVEAL {
            return Err(AuthError::Malformed("expected REVEAL"));
        }
        let their_nonce: [u8; NONCE_LEN] = r.array()?;
        if let Some(key) = &self.confirm_key {
            let confirm: [u8; CONFIRM_LEN] = r.array()?;
            hmac::verify(key, &self.transcript, &confirm).map_err(|_| AuthError::WrongPassphrase)?;
        }
        r.end()?;
        if !constant_time_eq(&commitment(binding, &their_nonce), &self.commit) {
            return Err(AuthError::CommitmentMismatch);
        }
        Ok(Admitted {
            pairing_code: pairing_code(binding, &their_nonce, &self.nonce),
        })
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn push_pake(msg: &mut Vec<u8>, pake: &[u8]) {
    // A SPAKE2 message is always PAKE_MESSAGE_LEN (33) bytes.
    msg.push(pake.len() as u8);
    msg.extend_from_slice(pake);
}

/// The RESPOND message without its trailing confirmation: what the confirmations cover.
fn respond_without_confirm(respond: &[u8], with_pake: bool) -> &[u8] {
    let end = if with_pake {
        respond.len().saturating_sub(CONFIRM_LEN)
    } else {
        respond.len()
    };
    &respond[..end]
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AuthError> {
        if self.0.len() < n {
            return Err(AuthError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn byte(&mut self) -> Result<u8, AuthError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], AuthError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn pake(&mut self) -> Result<Option<&'a [u8]>, AuthError> {
        match usize::from(self.byte()?) {
            0 => Ok(None),
            PAKE_MESSAGE_LEN => Ok(Some(self.take(PAKE_MESSAGE_LEN)?)),
            _ => Err(AuthError::Malformed("SPAKE2 message length")),
        }
    }
    fn end(&self) -> Result<(), AuthError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AuthError::Malformed("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests;
