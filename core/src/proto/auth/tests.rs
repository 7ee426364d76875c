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

/// Runs the whole exchange; returns the dialer's result and the acceptor's, if it got that far (a dialer that
/// refuses sends nothing more, so the acceptor never reaches a verdict).
fn run(
    ids: &Ids,
    dialer_pass: Option<&str>,
    acceptor_pass: Option<&str>,
    e: &mut impl Entropy,
) -> (Result<Admitted, AuthError>, Option<Result<Admitted, AuthError>>) {
    let b = ids.binding();
    let (acceptor, offer) = Acceptor::offer(&ids.acceptor, acceptor_pass, e).unwrap();
    let (dialer, answer) = match Dialer::answer(&b, dialer_pass, &offer, e) {
        Ok(ok) => ok,
        Err(err) => return (Err(err), None),
    };
    let (reveal, answered) = match acceptor.answer(&b, &answer, e) {
        Ok(ok) => ok,
        // The acceptor closes: the dialer sees the close, not a verdict of its own.
        Err(err) => return (Err(AuthError::Malformed("closed")), Some(Err(err))),
    };
    match dialer.finish(&b, &reveal) {
        Ok((confirm, admitted)) => {
            let theirs = match (answered, confirm) {
                (Answered::Admitted(a), None) => Ok(a),
                (Answered::Confirm(c), Some(confirm)) => c.finish(&confirm),
                _ => panic!("both sides must agree on whether a CONFIRM follows"),
            };
            (Ok(admitted), Some(theirs))
        }
        Err(err) => (Err(err), None),
    }
}

/// The CONFIRM a cheating dialer sends although the acceptor's confirmation did not check out: computed with
/// the key its own SPAKE2 run gave.
fn forged_confirm(dialer: Dialer, b: &Binding<'_>, reveal: &[u8]) -> Vec<u8> {
    let msg_b = &reveal[1 + NONCE_LEN + 1..1 + NONCE_LEN + 1 + PAKE_MESSAGE_LEN];
    let key = dialer.pake.unwrap().finish(msg_b).unwrap();
    let (ours, _) = confirmation_keys(&key, b);
    let transcript = [dialer.transcript.as_slice(), &reveal[..reveal.len() - CONFIRM_LEN]].concat();
    [&[TAG_CONFIRM], hmac::sign(&ours, &transcript).as_ref()].concat()
}

#[test]
fn both_ends_derive_the_same_code_with_and_without_a_passphrase() {
    let mut e = Scripted::new(1);
    for pass in [None, Some("correct horse")] {
        let ids = Ids::new(&mut e);
        let (d, a) = run(&ids, pass, pass, &mut e);
        let (d, a) = (d.unwrap(), a.unwrap().unwrap());
        assert_eq!(d, a);
        assert_eq!(d.pairing_code.len(), 7);
        assert!(d.pairing_code.chars().enumerate().all(|(i, c)| (i == 3) == (c == ' ')));
    }
}

#[test]
fn a_wrong_or_missing_passphrase_is_refused_on_both_sides() {
    let mut e = Scripted::new(2);
    let ids = Ids::new(&mut e);
    let (d, a) = run(&ids, Some("123456"), Some("654321"), &mut e);
    assert_eq!(
        (d, a),
        (Err(AuthError::WrongPassphrase), None),
        "the dialer checks the acceptor's confirmation and sends no CONFIRM"
    );
    // The acceptor's side of a wrong passphrase: a dialer that confirms anyway, with the key its SPAKE2 run
    // gave, is refused; the same forgery with the right passphrase passes, so the check is what refuses.
    let b = ids.binding();
    for (dialer_pass, refused) in [("123456", true), ("654321", false)] {
        let (acceptor, offer) = Acceptor::offer(&ids.acceptor, Some("654321"), &mut e).unwrap();
        let (dialer, answer) = Dialer::answer(&b, Some(dialer_pass), &offer, &mut e).unwrap();
        let (reveal, answered) = acceptor.answer(&b, &answer, &mut e).unwrap();
        let Answered::Confirm(confirming) = answered else {
            panic!("a passphrase exchange ends with a CONFIRM")
        };
        let result = confirming.finish(&forged_confirm(dialer, &b, &reveal));
        assert_eq!(result.is_err(), refused, "{dialer_pass}: {result:?}");
    }
    // One side without a passphrase: the dialer sees it in the OFFER and sends nothing.
    for (dialer_pass, acceptor_pass) in [(Some("123456"), None), (None, Some("123456"))] {
        let (acceptor, offer) = Acceptor::offer(&ids.acceptor, acceptor_pass, &mut e).unwrap();
        let b = ids.binding();
        assert_eq!(
            Dialer::answer(&b, dialer_pass, &offer, &mut e).err(),
            Some(AuthError::WrongPassphrase)
        );
        // A dialer that answers anyway, as if the flag said otherwise, is refused by the acceptor.
        let flipped = [&offer[..33], &[offer[33] ^ 1]].concat();
        let (_, answer) = Dialer::answer(&b, dialer_pass, &flipped, &mut e).unwrap();
        assert_eq!(
            acceptor.answer(&b, &answer, &mut e).err(),
            Some(AuthError::WrongPassphrase)
        );
        let (d, a) = run(&ids, dialer_pass, acceptor_pass, &mut e);
        assert_eq!((d, a), (Err(AuthError::WrongPassphrase), None));
    }
}

/// The first three messages of one exchange between `ids`.
fn exchange(ids: &Ids, pass: Option<&str>, e: &mut impl Entropy) -> (Dialer, Vec<u8>, Answered, Vec<u8>) {
    let b = ids.binding();
    let (acceptor, offer) = Acceptor::offer(&ids.acceptor, pass, e).unwrap();
    let (dialer, answer) = Dialer::answer(&b, pass, &offer, e).unwrap();
    let (reveal, answered) = acceptor.answer(&b, &answer, e).unwrap();
    (dialer, offer, answered, reveal)
}

#[test]
fn the_acceptor_checks_the_dialers_confirmation() {
    let mut e = Scripted::new(3);
    let ids = Ids::new(&mut e);
    let b = ids.binding();
    let (dialer, _, answered, reveal) = exchange(&ids, Some("pw"), &mut e);
    let (Some(confirm), _) = dialer.finish(&b, &reveal).unwrap() else {
        panic!("a CONFIRM follows with a passphrase")
    };
    let Answered::Confirm(confirming) = answered else {
        panic!("the acceptor waits for the CONFIRM")
    };
    let mut forged = confirm.clone();
    *forged.last_mut().unwrap() ^= 1;
    assert_eq!(confirming.finish(&forged).err(), Some(AuthError::WrongPassphrase));
    let (_, _, answered, _) = exchange(&ids, Some("pw"), &mut e);
    let Answered::Confirm(confirming) = answered else {
        unreachable!()
    };
    assert_eq!(
        confirming.finish(&confirm).err(),
        Some(AuthError::WrongPassphrase),
        "a confirmation from another exchange"
    );
}

#[test]
fn the_dialer_checks_the_acceptors_commitment() {
    let mut e = Scripted::new(10);
    let ids = Ids::new(&mut e);
    let b = ids.binding();
    for pass in [None, Some("pw")] {
        // Another nonce than the one committed to: without a passphrase only the commitment protects the code.
        let (dialer, _, _, mut reveal) = exchange(&ids, pass, &mut e);
        reveal[5] ^= 1;
        let expected = match pass {
            None => AuthError::CommitmentMismatch,
            // With a passphrase the nonce is covered by the confirmation too, which fails first.
            Some(_) => AuthError::WrongPassphrase,
        };
        assert_eq!(dialer.finish(&b, &reveal).err(), Some(expected));
        // A commitment made for another acceptor id (a relay forwarding an OFFER) does not open either.
        let other = Ids::new(&mut e);
        let (acceptor, offer) = Acceptor::offer(&other.acceptor, pass, &mut e).unwrap();
        let (dialer, answer) = Dialer::answer(&b, pass, &offer, &mut e).unwrap();
        let (reveal, _) = acceptor.answer(&b, &answer, &mut e).unwrap();
        let result = dialer.finish(&b, &reveal).err();
        assert_eq!(result, Some(AuthError::CommitmentMismatch), "{pass:?}");
    }
    let (dialer, _, _, reveal) = exchange(&ids, None, &mut e);
    assert!(dialer.finish(&b, &reveal).is_ok());
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
        // Same passphrase, but the acceptor sees another exporter or other ids than the dialer does (a relay).
        let (acceptor, offer) = Acceptor::offer(&ids.acceptor, Some("pw"), &mut e).unwrap();
        let (dialer, answer) = Dialer::answer(&ids.binding(), Some("pw"), &offer, &mut e).unwrap();
        let (reveal, _) = acceptor.answer(&changed.binding(), &answer, &mut e).unwrap();
        assert_eq!(
            dialer.finish(&ids.binding(), &reveal).err(),
            Some(AuthError::WrongPassphrase)
        );
    }
}

#[test]
fn malformed_messages_are_errors_at_every_length() {
    let mut e = Scripted::new(5);
    let ids = Ids::new(&mut e);
    let b = ids.binding();
    let (acceptor, offer) = Acceptor::offer(&ids.acceptor, Some("pw"), &mut e).unwrap();
    let (dialer, answer) = Dialer::answer(&b, Some("pw"), &offer, &mut e).unwrap();
    let (reveal, answered) = acceptor.answer(&b, &answer, &mut e).unwrap();
    let (confirm, _) = dialer.finish(&b, &reveal).unwrap();
    let confirm = confirm.unwrap();
    let fresh_acceptor = |e: &mut Scripted| Acceptor::offer(&ids.acceptor, Some("pw"), e).unwrap().0;
    let fresh_dialer = |e: &mut Scripted| Dialer::answer(&b, Some("pw"), &offer, e).unwrap().0;
    for len in 0..offer.len() {
        assert!(Dialer::answer(&b, Some("pw"), &offer[..len], &mut e).is_err());
    }
    for len in 0..answer.len() {
        assert!(fresh_acceptor(&mut e).answer(&b, &answer[..len], &mut e).is_err());
    }
    for len in 0..reveal.len() {
        assert!(fresh_dialer(&mut e).finish(&b, &reveal[..len]).is_err());
    }
    let Answered::Confirm(confirming) = answered else {
        unreachable!()
    };
    assert!(confirming.finish(&confirm[..CONFIRM_LEN]).is_err());
    for (message, which) in [(&offer, 0), (&answer, 1), (&reveal, 2)] {
        let long = [message.as_slice(), &[0]].concat();
        let err = match which {
            0 => Dialer::answer(&b, Some("pw"), &long, &mut e).err(),
            1 => fresh_acceptor(&mut e).answer(&b, &long, &mut e).err(),
            _ => fresh_dialer(&mut e).finish(&b, &long).err(),
        };
        assert_eq!(err, Some(AuthError::Malformed("trailing bytes")), "message {which}");
    }
    let mut bad_flag = offer.clone();
    bad_flag[33] = 2;
    assert!(Dialer::answer(&b, Some("pw"), &bad_flag, &mut e).is_err());
    let mut bad_len = answer.clone();
    bad_len[33] = 7;
    assert!(fresh_acceptor(&mut e).answer(&b, &bad_len, &mut e).is_err());
    // A tampered SPAKE2 element: refused, or it yields a key the real dialer's confirmation check rejects.
    let (acceptor, offer) = Acceptor::offer(&ids.acceptor, Some("pw"), &mut e).unwrap();
    let (dialer, answer) = Dialer::answer(&b, Some("pw"), &offer, &mut e).unwrap();
    let mut bad_point = answer;
    bad_point[35..].fill(0xff);
    if let Ok((reveal, _)) = acceptor.answer(&b, &bad_point, &mut e) {
        assert_eq!(dialer.finish(&b, &reveal).err(), Some(AuthError::WrongPassphrase));
    }
}

/// What an attacker that the victim dialed holds: the ANSWER. Its nonce does not depend on the passphrase, and
/// no guess — the right one included — can be checked against it: completing SPAKE2 as the acceptor works for
/// every guess, and the only value computed from the victim's key (its confirmation) comes in the CONFIRM,
/// which the victim sends only after the attacker proved the passphrase.
#[test]
fn a_dialed_attacker_holds_nothing_to_test_guesses_against() {
    let ids = Ids::new(&mut Scripted::new(6));
    let b = ids.binding();
    let (_, offer) = Acceptor::offer(&ids.acceptor, Some("x"), &mut Scripted::new(11)).unwrap();
    let (_, answer_1) = Dialer::answer(&b, Some("424242"), &offer, &mut Scripted::new(7)).unwrap();
    let (_, answer_2) = Dialer::answer(&b, Some("917263"), &offer, &mut Scripted::new(7)).unwrap();
    assert_eq!(
        answer_1[..33],
        answer_2[..33],
        "the nonce is independent of the passphrase"
    );
    assert_eq!(answer_1.len(), answer_2.len());
    let mut e = Scripted::new(8);
    let (victim, answer) = Dialer::answer(&b, Some("424242"), &offer, &mut e).unwrap();
    for guess in (0..1000).map(|n| format!("{:06}", 424_000 + n)) {
        // The attacker's offline step for each guess succeeds alike: nothing rules a guess in or out.
        let (acceptor, _) = Acceptor::offer(&ids.acceptor, Some(&guess), &mut e).unwrap();
        assert!(acceptor.answer(&b, &answer, &mut e).is_ok(), "{guess}");
    }
    // Online, one guess per connection: a wrong one gets a refusal and no CONFIRM.
    let (acceptor, _) = Acceptor::offer(&ids.acceptor, Some("424243"), &mut e).unwrap();
    let (reveal, _) = acceptor.answer(&b, &answer, &mut e).unwrap();
    assert_eq!(victim.finish(&b, &reveal).err(), Some(AuthError::WrongPassphrase));
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

    // The committed design, same budget of complete attempts. Alice dials the attacker (it accepts as m1) and
    // the attacker dials Bob (as m2). It runs Bob's session to the end first, so Bob's code is fixed, then
    // answers Alice knowing everything Bob sent: its own commitment towards Alice is fixed before Alice's
    // nonce arrives, so Alice's code is a fresh draw.
    let mut matches = 0;
    for attempt in 0..GRIND_BUDGET {
        let (e1, e2) = (random32(&mut e), random32(&mut e));
        let alice_side = Binding {
            exporter: &e1,
            dialer: &alice,
            acceptor: &m1,
        };
        let bob_side = Binding {
            exporter: &e2,
            dialer: &m2,
            acceptor: &bob,
        };
        // Bob's session: Bob commits, the attacker answers, Bob reveals.
        let (bob_state, bob_offer) = Acceptor::offer(&bob, None, &mut e).unwrap();
        let (m_dialer, m_answer) = Dialer::answer(&bob_side, None, &bob_offer, &mut e).unwrap();
        let (bob_reveal, bob_done) = bob_state.answer(&bob_side, &m_answer, &mut e).unwrap();
        let Answered::Admitted(code_b) = bob_done else {
            unreachable!()
        };
        assert_eq!(m_dialer.finish(&bob_side, &bob_reveal).unwrap().1, code_b);
        // Alice's session: the attacker commits to a nonce of its choice — alternately Bob's revealed nonce or
        // its own — then Alice answers with a fresh nonce and the attacker opens its commitment.
        let mut m_offer_e = Scripted::new(1_000_000 + attempt as u64);
        let (m_acceptor, m_offer) = if attempt % 2 == 0 {
            let mut reuse = Replay(bob_reveal[1..33].to_vec());
            Acceptor::offer(&m1, None, &mut reuse).unwrap()
        } else {
            Acceptor::offer(&m1, None, &mut m_offer_e).unwrap()
        };
        let (alice_state, alice_answer) = Dialer::answer(&alice_side, None, &m_offer, &mut e).unwrap();
        let (m_reveal, _) = m_acceptor.answer(&alice_side, &alice_answer, &mut e).unwrap();
        let (_, code_a) = alice_state.finish(&alice_side, &m_reveal).unwrap();
        matches += usize::from(code_a == code_b);
    }
    assert_eq!(
        matches, 0,
        "committed codes matched {matches} times in {GRIND_BUDGET} attempts"
    );
}

/// Entropy that hands out chosen bytes: the attacker's choice of nonce.
struct Replay(Vec<u8>);

impl Entropy for Replay {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), AuthError> {
        out.copy_from_slice(&self.0[..out.len()]);
        Ok(())
    }
}

/// What stops a machine in the middle is the dialer's check of the commitment: an attacker that opens another
/// nonce than it committed to — one it ground, after seeing the dialer's nonce, so that the dialer's code equals
/// the code of its other session — would win every time. The grind succeeds (the test's attacker is real); the
/// dialer refuses its REVEAL.
#[test]
fn an_attacker_that_opens_another_nonce_than_it_committed_to_is_refused() {
    let mut e = Scripted::new(12);
    let ids = Ids::new(&mut e);
    let b = ids.binding();
    let other_session_code = "123 456";
    let (_attacker, offer) = Acceptor::offer(&ids.acceptor, None, &mut e).unwrap();
    let (victim, answer) = Dialer::answer(&b, None, &offer, &mut e).unwrap();
    let victim_nonce: [u8; NONCE_LEN] = answer[1..1 + NONCE_LEN].try_into().unwrap();
    let mut ground = [0u8; NONCE_LEN];
    let found = (0u64..20_000_000).any(|i| {
        ground[..8].copy_from_slice(&i.to_be_bytes());
        pairing_code(&b, &victim_nonce, &ground) == other_session_code
    });
    assert!(found, "a million tries or so find a nonce that gives the chosen code");
    let reveal = [&[TAG_REVEAL][..], &ground, &[0]].concat();
    assert_eq!(victim.finish(&b, &reveal).err(), Some(AuthError::CommitmentMismatch));
}
