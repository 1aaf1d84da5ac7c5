//! A child's file between two Haven data directories, as two schools' DSLs would send it:
//! the new school's identity, the sealed file, its import and the signed receipt that stops
//! the sending school's transfer clock; both audit chains still verify.

use super::{fails, haven, ok, scratch};

#[test]
fn a_leavers_file_goes_between_two_data_directories_and_its_receipt_stops_the_clock() {
    let root = scratch("records-transfer");
    let (old, new, third) = (
        root.join("elm-park"),
        root.join("oak-hill"),
        root.join("third"),
    );
    let people = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo-people");
    for data in [&old, &new, &third] {
        for kind in ["pupils", "staff"] {
            let file = people.join(format!("{kind}.csv"));
            ok(&haven(
                data,
                &["people", "import", kind, file.to_str().expect("p")],
            ));
        }
    }
    // The sending school's records: one pupil with a long chronology.
    let made = ok(&haven(
        &old,
        &[
            "records", "generate", "--count", "40", "--long", "12", "--days", "60",
        ],
    ));
    let child = made
        .split("for pupil ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("the pupil with the long chronology")
        .to_owned();

    // The new school gives its identity line; the old school seals the file to it.
    let identity = ok(&haven(&new, &["records", "identity"]));
    let line = identity.lines().next().expect("the identity line");
    assert!(line.starts_with("haven-school-key/1 "), "{identity}");
    let fingerprint = identity
        .split("fingerprint: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("the fingerprint")
        .to_owned();
    // The line travels as the file `haven records identity` printed (three lines).
    let key_file = root.join("oak-hill-key.txt");
    std::fs::write(&key_file, &identity).expect("key file");
    let sent = root.join("file.haven");
    // A fingerprint that is not the line's (a swapped line, say) seals nothing.
    let err = fails(&haven(
        &old,
        &[
            "records",
            "transfer",
            "--person",
            &child,
            "--to",
            key_file.to_str().expect("p"),
            "--fingerprint",
            "00000-00000-00000-00000",
            "--out",
            sent.to_str().expect("p"),
        ],
    ));
    assert!(
        err.contains("check the line with the new school's DSL"),
        "{err}"
    );
    assert!(!sent.exists());
    let out = ok(&haven(
        &old,
        &[
            "records",
            "transfer",
            "--person",
            &child,
            "--to",
            key_file.to_str().expect("p"),
            "--fingerprint",
            &fingerprint,
            "--out",
            sent.to_str().expect("p"),
        ],
    ));
    assert!(out.contains("transfer 1 recorded"), "{out}");
    // Sending again to the same path refuses (never overwrites a file) and records nothing.
    let again = fails(&haven(
        &old,
        &[
            "records",
            "transfer",
            "--person",
            &child,
            "--to",
            line,
            "--fingerprint",
            &fingerprint,
            "--out",
            sent.to_str().expect("p"),
        ],
    ));
    assert!(again.contains("must not exist"), "{again}");

    // A third school cannot import it; a file pinned to another sender is refused.
    let receipt = root.join("receipt.txt");
    let old_identity = ok(&haven(&old, &["records", "identity"]));
    let old_line = old_identity.lines().next().expect("line").to_owned();
    let err = fails(&haven(
        &third,
        &[
            "records",
            "import",
            sent.to_str().expect("p"),
            "--from",
            &old_line,
            "--receipt",
            receipt.to_str().expect("p"),
        ],
    ));
    assert!(err.contains("sealed for another school's key"), "{err}");
    assert!(!receipt.exists());
    let err = fails(&haven(
        &new,
        &[
            "records",
            "import",
            sent.to_str().expect("p"),
            "--from",
            line,
            "--receipt",
            receipt.to_str().expect("p"),
        ],
    ));
    assert!(err.contains("not by the school key you gave"), "{err}");

    // The new school imports it, from the sender it expected, and gets a receipt to send back.
    let got = ok(&haven(
        &new,
        &[
            "records",
            "import",
            sent.to_str().expect("p"),
            "--from",
            &old_line,
            "--receipt",
            receipt.to_str().expect("p"),
        ],
    ));
    assert!(
        got.contains("imported ") && got.contains("record(s)"),
        "{got}"
    );
    let text = std::fs::read_to_string(&receipt).expect("the receipt");
    assert!(text.starts_with("haven-receipt/1\n"), "{text}");

    // A changed receipt is refused; the real one stops the clock, once.
    let forged = root.join("forged.txt");
    std::fs::write(
        &forged,
        text.replace("received-by: Priya", "received-by: Mallory"),
    )
    .expect("w");
    let err = fails(&haven(
        &old,
        &["records", "receipt", forged.to_str().expect("p")],
    ));
    assert!(err.contains("signature"), "{err}");
    let done = ok(&haven(
        &old,
        &["records", "receipt", receipt.to_str().expect("p")],
    ));
    assert!(
        done.contains("transfer 1: received by Priya Shah at ")
            && done.contains("the clock has stopped"),
        "{done}"
    );
    let twice = fails(&haven(
        &old,
        &["records", "receipt", receipt.to_str().expect("p")],
    ));
    assert!(twice.contains("already"), "{twice}");

    // Both audit chains hold, with the transfer's entries in them.
    for data in [&old, &new] {
        let v = ok(&haven(data, &["audit", "verify"]));
        assert!(!v.to_lowercase().contains("broken"), "{v}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
