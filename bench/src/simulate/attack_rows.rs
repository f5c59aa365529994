//! Report rows and checks of single attacks of the adversarial run.

use super::SimCounters;
use crate::report::{Report, Row};

/// What owners who claim every frame of their jobs get: claims on honest
/// work are dismissed and cost their bond, a frame is claimed once, and
/// only fakes that got through are refunded.
pub(super) fn claim_rows(report: &mut Report, name: &str, c: &SimCounters) {
    let net = c.claim_refunds - c.claim_bonds_forfeited;
    report.push(
        Row::new(
            "adversarial",
            &format!("{name}: claims upheld against honest work"),
            c.claims_upheld_on_honest as f64,
            "claims",
        )
        .note(format!(
            "{} jobs claimed whole: {} task claims filed, {} dismissed, {} upheld on fakes that \
             had been paid; {} claims refused (the same frames again); bonds {} µcr, {} \
             forfeited; refunds {} µcr; the abusers' net {net} µcr",
            c.claimed_jobs,
            c.claims_filed,
            c.claims_dismissed,
            c.claims_upheld_on_fakes,
            c.claims_refused,
            c.claim_bonds,
            c.claim_bonds_forfeited,
            c.claim_refunds
        )),
    );
    report.check(
        &format!("{name}: no claim is upheld against honest work"),
        c.claims_upheld_on_honest == 0,
        format!("{} upheld on honest work", c.claims_upheld_on_honest),
    );
    report.check(
        &format!("{name}: a frame is claimed once"),
        c.claims_refused >= c.claimed_jobs,
        format!(
            "{} repeated claims refused for {} claimed jobs",
            c.claims_refused, c.claimed_jobs
        ),
    );
    report.check(
        &format!("{name}: claiming honest work costs the claimant"),
        c.claims_dismissed == 0 || net < 0,
        format!(
            "{} dismissed; net {net} µcr for the abusers",
            c.claims_dismissed
        ),
    );
}
