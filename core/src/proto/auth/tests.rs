use super::*;

/// Deterministic entropy for tests: SHA-256 of a seed and a counter.
struct Scripted {
    seed: u64,
    counter: u64,
}

impl Scripted {
    fn new(seed: u64) -> Self {
        Self { seed, counter: 0 }
    }
}

impl Entropy for Scripted {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), AuthError> {
        for chunk in out.chunks_mut(32) {
            self.counter += 1;
            let block = ring::digest::digest(
                &ring::digest::SHA256,
                &[self.seed.to_be_bytes(), self.counter.to_be_bytes()].concat(),
            );
            chunk.copy_from_slice(&block.as_ref()[..chunk.len()]);
        }
        Ok(())
    }
}

fn random32(e: &mut impl Entropy) -> [u8; 32] {
    let mut out = [0u8; 32];
    e.fill(&mut out).unwrap();
    out
}

struct Ids {
    exporter: [u8; 32],
    dialer: [u8; 32],
    acceptor: [u8; 32],
}

impl Ids {
    fn new(e: &mut impl Entropy) -> Self {
        Self {
            exporter: random32(e),
            dialer: random32(e),
            acceptor: random32(e),
        }
    }
    fn binding(&self) -> Binding<'_> {
        Binding {
            exporter: &self.exporter,
            dialer: &self.dialer,
            acceptor: &self.acceptor,
        }
    }
}

/// Runs the whole exchange; returns both sides' results.
fn run(
    ids: &Ids,
    dialer_pass: Option<&str>,
    acceptor_pass: Option<&str>,
    e: &mut impl Entropy,
) -> (Result<Admitted, AuthError>, Result<Admitted, AuthError>) {
    let b = ids.binding();
    let (dialer, commit) = Dialer::start(&b, dialer_pass, e).unwrap();
    let (acceptor, respond) = match Acceptor::respond(&b, acceptor_pass, &commit, e) {
        Ok(ok) => ok,
        Err(err) => return (Err(err.clone()), Err(err)),
    };
    match dialer.finish(&b, &respond) {
        Ok((reveal, admitted)) => (Ok(admitted), acceptor.finish(&b, &reveal)),
        Err(err) => (Err(err), Err(AuthError::WrongPassphrase)),
    }
}

#[test]
fn both_ends_derive_the_same_code_with_and_without_a_passphrase() {
    let mut e = Scripted::new(1);
    for pass in [None, Some("correct horse")] {
        let ids = Ids::new(&mut e);
        let (d, a) = run(&ids, pass, pass, &mut e);
        let (d, a) = (d.unwrap(), a.unwrap());
        assert_eq!(d, a);
        assert_eq!(d.pairing_code.len(), 7);
        assert!(d.pairing_code.chars().enumerate().all(|(i, c)| (i == 3) == (c == ' ')));
    }
}

#[test]
fn a_wrong_or_missing_passphrase_is_refused_on_both_sides() {
    let mut e = Scripted::new(2);
    let ids = Ids::new(&mut e);
    let (d, _) = run(&ids, Some("123456"), Some("654321"), &mut e);
    assert_eq!(
        d,
        Err(AuthError::WrongPassphrase),
        "the dialer checks the acceptor's confirmation"
    );
    let (d, a) = run(&ids, Some("123456"), None, &mut e);
    assert_eq!(
        (d, a),
        (Err(AuthError::WrongPassphrase), Err(AuthError::WrongPassphrase))
    );
    let (d, a) = run(&ids, None, Some("123456"), &mut e);
    assert_eq!(
        (d, a),
        (Err(AuthError::WrongPassphrase), Err(AuthError::WrongPassphrase))
    );
}

#[test]
fn the_acceptor_checks_the_dialers_confirmation_and_commitment() {
    let mut e = Scripted::new(3);
    let ids = Ids::new(&mut e);
    let b = ids.binding();
    let (dialer, commit) = Dialer::start(&b, Some("pw"), &mut e).unwrap();
    let (acceptor, respond) = Acceptor::respond(&b, Some("pw"), &commit, &mut e).unwrap();
    let (reveal, _) = dialer.finish(&b, &respond).unwrap();
    // A forged confirmation.
    let mut forged = reveal.clone();
    *forged.last_mut().unwrap() ^= 1;
    assert_eq!(
        Acceptor::respond(&b, Some("pw"), &commit, &mut e)
            .unwrap()
            .0
            .finish(&b, &forged),
        Err(AuthError::WrongPassphrase)
    );
    // Another nonce than the one committed to (no passphrase, so only the commitment protects the code).
    let (dialer, commit) = Dialer::start(&b, None, &mut e).unwrap();
    let (acceptor2, respond) = Acceptor::respond(&b, None, &commit, &mut e).unwrap();
    let (mut reveal2, _) = dialer.finish(&b, &respond).unwrap();
    reveal2[5] ^= 1;
    assert_eq!(acceptor2.finish(&b, &reveal2), Err(AuthError::CommitmentMismatch));
    assert!(acceptor.finish(&b, &reveal).is_ok());
}

#[test]
fn confirmations_are_bound_to_the_tls_session_and_both_ids() {
    let mut e = Scripted::new(4);
    let ids = Ids::new(&mut e);
    let other = Ids::new(&mut e);
    for changed in [
        Ids {
            exporter: other.exporter,
            ..ids
        },
        Ids {
            dialer: other.dialer,
            ..ids
        },
        Ids {
            acceptor: other.acceptor,
            ..ids
        },
    ] {
        // Same passphrase, but the acceptor sees another exporter or other ids than the dialer (a relay).
        let (dialer, commit) = Dialer::start(&ids.binding(), Some("pw"), &mut e).unwrap();
        let (_, respond) = Acceptor::respond(&changed.binding(), Some("pw"), &commit, &mut e).unwrap();
        assert!(matches!(
            dialer.finish(&ids.binding(), &respond),
            Err(AuthError::WrongPassphrase)
        ));
    }
}

#[test]
fn malformed_messages_are_errors_at_every_length() {
    let mut e = Scripted::new(5);
    let ids = Ids::new(&mut e);
    let b = ids.binding();
    let (_, commit) = Dialer::start(&b, Some("pw"), &mut e).unwrap();
    let (acceptor, respond) = Acceptor::respond(&b, Some("pw"), &commit, &mut e).unwrap();
    drop(acceptor);
    for len in 0..commit.len() {
        assert!(Acceptor::respond(&b, Some("pw"), &commit[..len], &mut e).is_err());
    }
    for len in 0..respond.len() {
        let (dialer, _) = Dialer::start(&b, Some("pw"), &mut e).unwrap();
        assert!(dialer.finish(&b, &respond[..len]).is_err());
    }
    let mut long = commit.clone();
    long.push(0);
    assert_eq!(
        Acceptor::respond(&b, Some("pw"), &long, &mut e).err(),
        Some(AuthError::Malformed("trailing bytes"))
    );
    let mut bad_len = commit.clone();
    bad_len[33] = 7;
    assert!(Acceptor::respond(&b, Some("pw"), &bad_len, &mut e).is_err());
    // A tampered SPAKE2 element: refused, or it yields a key the real dialer's confirmation check rejects.
    let (dialer, commit) = Dialer::start(&b, Some("pw"), &mut e).unwrap();
    let mut bad_point = commit;
    bad_point[35..].fill(0xff);
    if let Ok((_, respond)) = Acceptor::respond(&b, Some("pw"), &bad_point, &mut e) {
        assert_eq!(dialer.finish(&b, &respond).err(), Some(AuthError::WrongPassphrase));
    }
}

/// What an attacker that the victim dialed holds: the COMMIT. Its commitment part does not depend on the
/// passphrase, and no guess — the right one included — can be checked against it: completing SPAKE2 as the
/// acceptor works for every guess, and the only value computed from the victim's key (its confirmation)
/// comes in the REVEAL, which the victim sends only after the attacker proved the passphrase.
#[test]
fn a_dialed_attacker_holds_nothing_to_test_guesses_against() {
    let ids = Ids::new(&mut Scripted::new(6));
    let b = ids.binding();
    let (_, commit_1) = Dialer::start(&b, Some("424242"), &mut Scripted::new(7)).unwrap();
    let (_, commit_2) = Dialer::start(&b, Some("917263"), &mut Scripted::new(7)).unwrap();
    assert_eq!(
        commit_1[..33],
        commit_2[..33],
        "the commitment is independent of the passphrase"
    );
    assert_eq!(commit_1.len(), commit_2.len());
    let mut e = Scripted::new(8);
    let (victim, commit) = Dialer::start(&b, Some("424242"), &mut e).unwrap();
    let mut wrong = 0;
    for guess in (0..1000).map(|n| format!("{:06}", 424_000 + n)) {
        // The attacker's offline step for each guess succeeds alike: nothing rules a guess in or out.
        assert!(Acceptor::respond(&b, Some(&guess), &commit, &mut e).is_ok(), "{guess}");
        wrong += usize::from(guess != "424242");
    }
    assert_eq!(wrong, 999);
    // Online, one guess per connection: a wrong one gets a refusal and no REVEAL.
    let (_, respond) = Acceptor::respond(&b, Some("424243"), &commit, &mut e).unwrap();
    assert_eq!(victim.finish(&b, &respond).err(), Some(AuthError::WrongPassphrase));
}

/// The code of the old design: the TLS exporter and both ids only, no commitment.
fn uncommitted_code(exporter: &[u8; 32], low: &[u8; 32], high: &[u8; 32]) -> u32 {
    let d = ring::digest::digest(&ring::digest::SHA256, &[exporter.as_slice(), low, high].concat());
    u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]]) % 1_000_000
}

const GRIND_BUDGET: usize = 4000;

/// A machine in the middle terminates TLS towards Alice and towards Bob, so it chooses both exporters (it can
/// regenerate its server flight as often as it likes). Against codes derived from the exporter alone, a
/// birthday search over its budget makes the two codes match; against committed codes it has nothing to search
/// over, and zero of as many full attempts match.
#[test]
fn a_man_in_the_middle_cannot_grind_committed_codes_to_match() {
    let mut e = Scripted::new(9);
    let (alice, bob, m1, m2) = (random32(&mut e), random32(&mut e), random32(&mut e), random32(&mut e));
    // The old design: a birthday search finds a collision well within the budget.
    let mut seen = std::collections::HashMap::new();
    for _ in 0..GRIND_BUDGET {
        seen.insert(uncommitted_code(&random32(&mut e), &alice, &m1), ());
    }
    let matched_old = (0..GRIND_BUDGET).any(|_| seen.contains_key(&uncommitted_code(&random32(&mut e), &bob, &m2)));
    assert!(matched_old, "the test's attacker must break the uncommitted design");

    // The committed design, same budget of complete attempts. Alice and Bob both dial the attacker; it picks
    // its exporters and nonces knowing both commitments, but the codes are fixed only by the reveals.
    let mut matches = 0;
    for attempt in 0..GRIND_BUDGET {
        let (e1, e2) = (random32(&mut e), random32(&mut e));
        let a_side = Binding {
            exporter: &e1,
            dialer: &alice,
            acceptor: &m1,
        };
        let b_side = Binding {
            exporter: &e2,
            dialer: &bob,
            acceptor: &m2,
        };
        let (alice_state, commit_a) = Dialer::start(&a_side, None, &mut e).unwrap();
        let (bob_state, commit_b) = Dialer::start(&b_side, None, &mut e).unwrap();
        // The attacker's choice: alternately its own nonce for both, or a nonce derived from what it has seen.
        let (m_state_1, respond_1) = Acceptor::respond(&a_side, None, &commit_a, &mut e).unwrap();
        let respond_2 = if attempt % 2 == 0 {
            let mut r = respond_1.clone();
            r[1..33].copy_from_slice(&commit_b[1..33]);
            r
        } else {
            respond_1.clone()
        };
        let (m_state_2, _) = Acceptor::respond(&b_side, None, &commit_b, &mut e).unwrap();
        let (reveal_a, code_a) = alice_state.finish(&a_side, &respond_1).unwrap();
        let (_reveal_b, code_b) = bob_state.finish(&b_side, &respond_2).unwrap();
        assert_eq!(m_state_1.finish(&a_side, &reveal_a).unwrap(), code_a);
        drop(m_state_2);
        matches += usize::from(code_a == code_b);
    }
    assert_eq!(
        matches, 0,
        "committed codes matched {matches} times in {GRIND_BUDGET} attempts"
    );
}
