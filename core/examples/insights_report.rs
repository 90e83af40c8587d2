//! Renders the insights of a synthetic network as a self-contained HTML page.
//!
//! `cargo run -p kith-core --example insights_report -- OUT.html [CONTACTS] [INTERACTIONS] [SEED]`
//! (defaults: 300 contacts, 6,000 interactions, seed 3, now = the current time).
//! Prints the text report and writes the HTML page, to look at both without a store.

#![allow(clippy::print_stdout, reason = "an example that reports what it wrote")]

use std::error::Error;

use kith_insights::{
    HtmlOptions, InsightsInput, InsightsParams, compute_all, render_html, render_text,
};
use kith_synth::{SynthParams, generate};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> Result<T, Box<dyn Error>>
where
    T::Err: Error + 'static,
{
    match args.get(i) {
        Some(s) => Ok(s.parse()?),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .ok_or("usage: insights_report OUT.html [CONTACTS] [INTERACTIONS] [SEED]")?;
    let contacts = arg(&args, 1, 300usize)?;
    let interactions = arg(&args, 2, 6_000usize)?;
    let seed = arg(&args, 3, 3u64)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let net = generate(&SynthParams::new(contacts, interactions, seed, now_ms));
    let input = InsightsInput {
        contacts: &net.contacts,
        interactions: &net.interactions,
        goals: &net.goals,
        settings: &net.settings,
        now_ms,
        params: InsightsParams::default(),
    };
    let report = compute_all(&input);
    let options = HtmlOptions {
        title: "Network insights — demo network".to_string(),
        ..HtmlOptions::default()
    };
    std::fs::write(out, render_html(&report, &options))?;
    print!("{}", render_text(&report, 8));
    println!("\nwrote {out}");
    Ok(())
}
