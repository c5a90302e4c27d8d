//! Every misuse of the derives fails to compile with a message that says what to do.
//! The messages are pinned in `tests/ui/*.stderr` (regenerate with
//! `TRYBUILD=overwrite cargo test -p cqrs-derive --test compile_fail`, then read them).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
