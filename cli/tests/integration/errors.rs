//! A failing command leaves every listing exactly as it was, for a store
//! with real content (the per-command error tests use small stores).

use crate::harness::Kith;

#[test]
fn rejected_writes_leave_a_populated_store_unchanged() {
    let k = Kith::new();
    k.add_contact("Zoë Åberg", &["--circle", "strategic"]);
    k.add_contact("Bruno Lima", &[]);
    k.json(&["project", "add", "Formulary review"]);
    k.json(&["goal", "add", "Lead the formulary", "--contact", "zoe"]);
    let id = k.log(&[
        "Coffee",
        "--with",
        "zoe",
        "--follow-up",
        "Send deck",
        "--due",
        "tomorrow",
    ]);
    // Several participants where one is unknown: nobody gets the interaction,
    // and --create-missing was not given so no contact appears either.
    k.input_error(
        &[
            "log", "Lunch", "--with", "zoe", "--with", "Carla", "--kind", "meal",
        ],
        "unknown contact 'Carla'",
    );
    // A bad follow-up date after valid participants: nothing is written.
    k.input_error(
        &[
            "log",
            "Lunch",
            "--with",
            "zoe",
            "--with",
            "Carla",
            "--create-missing",
            "--follow-up",
            "x",
            "--due",
            "2026-13-01",
        ],
        "bad date",
    );
    // An edit whose follow-up is invalid changes neither the fields nor adds a follow-up.
    k.input_error(
        &[
            "interaction",
            "edit",
            &id,
            "--summary",
            "Changed",
            "--follow-up",
            "y",
            "--due",
            "never",
        ],
        "bad date 'never'",
    );
    k.input_error(
        &[
            "interaction",
            "edit",
            &id,
            "--summary",
            "Changed",
            "--kind",
            "lunch",
        ],
        "unknown kind 'lunch'",
    );
    k.input_error(
        &[
            "contact", "edit", "zoe", "--role", "x", "--circle", "family",
        ],
        "unknown circle 'family'",
    );
    k.input_error(
        &["goal", "edit", "lead", "--priority", "9"],
        "priority must be 1, 2 or 3",
    );
}

#[test]
fn oversized_input_is_refused_with_the_limit() {
    let k = Kith::new();
    k.add_contact("Zoë Åberg", &[]);
    let long = "x".repeat(501);
    k.input_error(
        &["log", &long, "--with", "zoe"],
        "longer than 500 characters",
    );
    k.input_error(&["contact", "add", &long], "longer than 500 characters");
    k.input_error(&["project", "add", &long], "longer than 500 characters");
    k.input_error(
        &["log", "ok", "--with", "zoe", "--follow-up", &long],
        "longer than 500 characters",
    );
}
