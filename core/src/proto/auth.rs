//! The admission exchange around the TLS handshake, free of I/O (see `PROTOCOL.md`, *Admission*).
//!
//! Three messages on the control streams, four with a passphrase:
//!
//! ```text
//! acceptor → dialer     OFFER    H(acceptor id, n_a), passphrase?  (0.5-RTT, with the server's TLS flight)
//! dialer   → acceptor   ANSWER   n_d                   [SPAKE2 message A]   (with the client's Finished)
//! acceptor → dialer     REVEAL   n_a                   [SPAKE2 message B, confirmation B]
//! dialer   → acceptor   CONFIRM                        confirmation A      (only with a passphrase)
//! ```
//!
//! * **Pairing code** (commit-then-reveal, as in ZRTP's hash commitment and Vaudenay's SAS-MCA): the acceptor
//!   commits to its random nonce before it sees the dialer's, and the dialer sends its nonce before it sees the
//!   acceptor's. The six-digit code is a KDF of the TLS exporter, both ids and both nonces, so neither side —
//!   nor a machine in the middle that terminates TLS on both sides — can choose a value after learning what the
//!   code will be: each attempt matches another session's code with probability 10⁻⁶. The commitment travels
//!   before the TLS handshake completes, so it cannot cover the exporter or the dialer's id; the code covers both.
//! * **Passphrase** (when configured): SPAKE2 (the protocol of RFC 9382, with the M, N and key derivation of
//!   RustCrypto's `spake2` crate, which follows python-spake2; Ed25519 group) with the
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
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-multipeer/3 admission";
/// Length of each side's pairing nonce.
pub const NONCE_LEN: usize = 32;
/// Length of a SPAKE2 message (side byte and a compressed Ed25519 point).
pub const PAKE_MESSAGE_LEN: usize = 33;
/// Length of a key confirmation.
pub const CONFIRM_LEN: usize = 32;
/// Largest admission message.
pub const MAX_AUTH_LEN: usize = 1 + NONCE_LEN + 1 + PAKE_MESSAGE_LEN + CONFIRM_LEN;

const TAG_OFFER: u8 = 0x01;
const TAG_ANSWER: u8 = 0x02;
const TAG_REVEAL: u8 = 0x03;
const TAG_CONFIRM: u8 = 0x04;

/// Why the admission exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer does not know our passphrase (its confirmation is wrong, or one side has none).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The acceptor's revealed nonce does not open its commitment.
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
        b"multipeer/3 confirmation keys".as_slice(),
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

fn commitment(acceptor: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [b"multipeer/3 pairing commitment".as_slice(), acceptor, nonce] {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The pairing code: HKDF of the exporter, both ids and both nonces, as six decimal digits.
pub fn pairing_code(binding: &Binding<'_>, dialer_nonce: &[u8; NONCE_LEN], acceptor_nonce: &[u8; NONCE_LEN]) -> String {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"multipeer/3 pairing code");
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

/// The acceptor's side of the exchange, from its OFFER to the dialer's ANSWER.
pub struct Acceptor {
    nonce: [u8; NONCE_LEN],
    offer: Vec<u8>,
    passphrase: Option<String>,
}

impl Acceptor {
    /// Starts the exchange before the TLS handshake completes: returns the state and the OFFER to send.
    ///
    /// The OFFER is all that crosses before the dialer's certificate is checked: a commitment to a fresh nonce
    /// and whether we ask for a passphrase.
    pub fn offer<E: Entropy>(
        acceptor: &[u8; 32],
        passphrase: Option<&str>,
        entropy: &mut E,
    ) -> Result<(Self, Vec<u8>), AuthError> {
        let mut nonce = [0u8; NONCE_LEN];
        entropy.fill(&mut nonce)?;
        let mut offer = vec![TAG_OFFER];
        offer.extend_from_slice(&commitment(acceptor, &nonce));
        offer.push(u8::from(passphrase.is_some()));
        let state = Self {
            nonce,
            offer: offer.clone(),
            passphrase: passphrase.map(str::to_owned),
        };
        Ok((state, offer))
    }

    /// Takes the dialer's ANSWER: returns the REVEAL to send and what follows it.
    ///
    /// With a passphrase, the REVEAL carries our confirmation: a dialer that guessed the passphrase can check
    /// its one guess, and nothing else; the exchange ends with its CONFIRM. Without one, it ends here.
    pub fn answer<E: Entropy>(
        self,
        binding: &Binding<'_>,
        answer: &[u8],
        entropy: &mut E,
    ) -> Result<(Vec<u8>, Answered), AuthError> {
        let mut r = Reader(answer);
        if r.byte()? != TAG_ANSWER {
            return Err(AuthError::Malformed("expected ANSWER"));
        }
        let their_nonce: [u8; NONCE_LEN] = r.array()?;
        let their_pake = r.pake()?;
        r.end()?;
        let code = Admitted {
            pairing_code: pairing_code(binding, &their_nonce, &self.nonce),
        };
        let mut reveal = vec![TAG_REVEAL];
        reveal.extend_from_slice(&self.nonce);
        match (self.passphrase.as_deref(), their_pake) {
            (None, None) => {
                reveal.push(0);
                Ok((reveal, Answered::Admitted(code)))
            }
            (Some(pass), Some(msg_a)) => {
                let (state, pake_msg) = start_pake(pass, binding, false, entropy)?;
                push_pake(&mut reveal, &pake_msg);
                let transcript = [self.offer.as_slice(), answer, &reveal].concat();
                let key = state.finish(msg_a).map_err(|_| AuthError::WrongPassphrase)?;
                let (theirs, ours) = confirmation_keys(&key, binding);
                reveal.extend_from_slice(hmac::sign(&ours, &transcript).as_ref());
                let confirming = Confirming {
                    key: theirs,
                    transcript,
                    admitted: code,
                };
                Ok((reveal, Answered::Confirm(confirming)))
            }
            _ => Err(AuthError::WrongPassphrase),
        }
    }
}

/// What follows the acceptor's REVEAL.
pub enum Answered {
    /// No passphrase: the exchange is complete.
    Admitted(Admitted),
    /// With a passphrase: the dialer's CONFIRM must come next.
    Confirm(Confirming),
}

/// The acceptor's side with a passphrase, between REVEAL and the dialer's CONFIRM.
pub struct Confirming {
    key: hmac::Key,
    transcript: Vec<u8>,
    admitted: Admitted,
}

impl Confirming {
    /// Takes the dialer's CONFIRM: checks its passphrase confirmation.
    pub fn finish(self, confirm: &[u8]) -> Result<Admitted, AuthError> {
        let mut r = Reader(confirm);
        if r.byte()? != TAG_CONFIRM {
            return Err(AuthError::Malformed("expected CONFIRM"));
        }
        let tag: [u8; CONFIRM_LEN] = r.array()?;
        r.end()?;
        hmac::verify(&self.key, &self.transcript, &tag).map_err(|_| AuthError::WrongPassphrase)?;
        Ok(self.admitted)
    }
}

/// The dialer's side of the exchange, from its ANSWER to the acceptor's REVEAL.
pub struct Dialer {
    nonce: [u8; NONCE_LEN],
    commitment: [u8; 32],
    transcript: Vec<u8>,
    pake: Option<Spake2<Ed25519Group>>,
}

impl Dialer {
    /// Takes the acceptor's OFFER once the TLS handshake completed: returns the state and the ANSWER to send.
    ///
    /// A passphrase on one side only is refused here, before anything of ours is sent.
    pub fn answer<E: Entropy>(
        binding: &Binding<'_>,
        passphrase: Option<&str>,
        offer: &[u8],
        entropy: &mut E,
    ) -> Result<(Self, Vec<u8>), AuthError> {
        let mut r = Reader(offer);
        if r.byte()? != TAG_OFFER {
            return Err(AuthError::Malformed("expected OFFER"));
        }
        let commitment: [u8; 32] = r.array()?;
        let asks_passphrase = match r.byte()? {
            0 => false,
            1 => true,
            _ => return Err(AuthError::Malformed("passphrase flag")),
        };
        r.end()?;
        if asks_passphrase != passphrase.is_some() {
            return Err(AuthError::WrongPassphrase);
        }
        let mut nonce = [0u8; NONCE_LEN];
        entropy.fill(&mut nonce)?;
        let mut answer = vec![TAG_ANSWER];
        answer.extend_from_slice(&nonce);
        let pake = match passphrase {
            Some(pass) => {
                let (state, pake_msg) = start_pake(pass, binding, true, entropy)?;
                push_pake(&mut answer, &pake_msg);
                Some(state)
            }
            None => {
                answer.push(0);
                None
            }
        };
        let transcript = [offer, &answer].concat();
        let state = Self {
            nonce,
            commitment,
            transcript,
            pake,
        };
        Ok((state, answer))
    }

    /// Whether the exchange ends with our CONFIRM (a passphrase is used): our hello must wait for it.
    pub fn confirms(&self) -> bool {
        self.pake.is_some()
    }

    /// Takes the acceptor's REVEAL: checks that its nonce opens its commitment and its passphrase confirmation.
    /// Returns the CONFIRM to send (with a passphrase) and what the exchange established.
    pub fn finish(self, binding: &Binding<'_>, reveal: &[u8]) -> Result<(Option<Vec<u8>>, Admitted), AuthError> {
        let mut r = Reader(reveal);
        if r.byte()? != TAG_REVEAL {
            return Err(AuthError::Malformed("expected REVEAL"));
        }
        let their_nonce: [u8; NONCE_LEN] = r.array()?;
        let their_pake = r.pake()?;
        let their_confirm: Option<[u8; CONFIRM_LEN]> = their_pake.map(|_| r.array()).transpose()?;
        r.end()?;
        let confirm = match (self.pake, their_pake.zip(their_confirm)) {
            (None, None) => None,
            (Some(state), Some((msg_b, their_confirm))) => {
                let signed = &reveal[..reveal.len() - CONFIRM_LEN];
                let transcript = [self.transcript.as_slice(), signed].concat();
                let key = state.finish(msg_b).map_err(|_| AuthError::WrongPassphrase)?;
                let (ours, theirs) = confirmation_keys(&key, binding);
                hmac::verify(&theirs, &transcript, &their_confirm).map_err(|_| AuthError::WrongPassphrase)?;
                let mut confirm = vec![TAG_CONFIRM];
                confirm.extend_from_slice(hmac::sign(&ours, &transcript).as_ref());
                Some(confirm)
            }
            (Some(_), None) => return Err(AuthError::WrongPassphrase),
            (None, Some(_)) => return Err(AuthError::Malformed("SPAKE2 message the dialer did not ask for")),
        };
        if !constant_time_eq(&commitment(binding.acceptor, &their_nonce), &self.commitment) {
            return Err(AuthError::CommitmentMismatch);
        }
        let code = pairing_code(binding, &self.nonce, &their_nonce);
        Ok((confirm, Admitted { pairing_code: code }))
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
