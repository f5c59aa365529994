//! `inferix account`: accounts of users and operators, their API keys and
//! funds, kept in the manager's task store.
//!
//! It opens the store the manager uses (same `--data-dir`, `--store` and
//! `--config`), so it works beside a running manager: SQLite allows a
//! second process, and PostgreSQL many. Managers read accounts at each
//! connection, so a new key or a revocation needs no restart.

use anyhow::Context;
use clap::Subcommand;
use inferix_core::store::accounts::Accounts;
use inferix_core::time::{Clock, SystemClock};

use crate::net_cli::{self, ManagerArgs};

/// What `inferix account` does.
#[derive(Subcommand, Debug)]
pub(crate) enum AccountCommand {
    /// Create an account and print its first API key (shown only now).
    Create {
        /// Account name: letters, digits, '-', '_' and '.'.
        name: String,
        /// An operator sees and acts on every job and lists the nodes.
        #[arg(long)]
        operator: bool,
        /// Most unfinished jobs at once [default: 20].
        #[arg(long)]
        max_active_jobs: Option<u32>,
        /// Most frames in one job [default: 10000].
        #[arg(long)]
        max_frames_per_job: Option<u64>,
        /// Most bytes of scenes and environment maps its unfinished jobs
        /// hold [default: 16 GiB].
        #[arg(long)]
        max_scene_bytes: Option<u64>,
        /// Its nodes may join as verifiers (see `inferix account verifiers`).
        #[arg(long)]
        verifier: bool,
    },
    /// Add credits to an account, or with --stake to the stake its workers
    /// and verifiers need (2·E·IB·P per worker, as IB 1 per verifier).
    Deposit {
        /// Account name.
        name: String,
        /// Credits, e.g. 12.5 (one credit is 1,000,000 micro-credits).
        credits: String,
        /// Deposit stake for the account's nodes instead of credit.
        #[arg(long)]
        stake: bool,
    },
    /// Allow or stop an account's nodes joining as verifiers.
    Verifiers {
        /// Account name.
        name: String,
        /// Allow them.
        #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
        allow: bool,
        /// Stop them (from their next connection).
        #[arg(long)]
        deny: bool,
    },
    /// How an account's nodes have behaved: stake, reputations, accepted
    /// and rejected results, ban.
    Standing {
        /// Account name.
        name: String,
    },
    /// Lift the ban on an account's nodes.
    Unban {
        /// Account name.
        name: String,
    },
    /// Print an account's balance in credits.
    Balance {
        /// Account name.
        name: String,
    },
    /// List an account's keys, or add one with --new.
    Keys {
        /// Account name.
        name: String,
        /// Make another key and print it (shown only now).
        #[arg(long)]
        new: bool,
    },
    /// Revoke one of an account's keys.
    Revoke {
        /// Account name.
        name: String,
        /// Key id, as `inferix account keys` lists it.
        key: String,
    },
    /// List every account.
    List,
}

/// Micro-credits in one credit.
const MICRO: i64 = 1_000_000;

/// Parses credits with up to six decimals into micro-credits.
fn parse_credits(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("{s:?} is not an amount of credits (e.g. 10 or 2.5)");
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(MICRO)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

/// Micro-credits as credits, e.g. `12.500000`.
pub(crate) fn credits(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let m = micro.unsigned_abs();
    format!("{sign}{}.{:06}", m / MICRO as u64, m % MICRO as u64)
}

pub(crate) async fn run(store_args: ManagerArgs, command: AccountCommand) -> anyhow::Result<()> {
    let settings = store_args.resolve()?;
    if settings.store.is_none() {
        // The manager's default database lives in its data folder, which
        // may not exist before the first account is made.
        inferix_core::fs::create_private_dir(&settings.data_dir)
            .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
    }
    let store = net_cli::open_store(&settings)
        .await
        .context("cannot open the task store")?;
    let accounts = Accounts::new(&*store);
    let now = SystemClock.now_ms();
    match command {
        AccountCommand::Create {
            name,
            operator,
            max_active_jobs,
            max_frames_per_job,
            max_scene_bytes,
            verifier,
        } => {
            let (mut account, key) = accounts.create(&name, operator, now).await?;
            if verifier {
                accounts.allow_verifiers(&name, true).await?;
            }
            if max_active_jobs.is_some()
                || max_frames_per_job.is_some()
                || max_scene_bytes.is_some()
            {
                let q = &mut account.quotas;
                q.max_active_jobs = max_active_jobs.unwrap_or(q.max_active_jobs);
                q.max_frames_per_job = max_frames_per_job.unwrap_or(q.max_frames_per_job);
                q.max_scene_bytes = max_scene_bytes.unwrap_or(q.max_scene_bytes);
                store.update_account(&account).await?;
            }
            eprintln!(
                "created {} {name}; its API key (shown only now):",
                if operator { "operator" } else { "account" }
            );
            println!("{key}");
        }
        AccountCommand::Deposit {
            name,
            credits: c,
            stake: false,
        } => {
            let amount = parse_credits(&c)?;
            let balance = accounts.deposit(&name, amount, "deposit", now).await?;
            println!("{name}: {} credits", credits(balance));
        }
        AccountCommand::Deposit {
            name,
            credits: c,
            stake: true,
        } => {
            let amount = parse_credits(&c)?;
            let stake = accounts
                .deposit_stake(&name, amount, "stake deposit", now)
                .await?;
            println!("{name}: stake {} credits", credits(stake));
        }
        AccountCommand::Verifiers { name, allow, .. } => {
            accounts.allow_verifiers(&name, allow).await?;
            println!(
                "{name}: verifiers {}",
                if allow { "allowed" } else { "not allowed" }
            );
        }
        AccountCommand::Standing { name } => {
            let s = accounts.standing(&name).await?;
            let account = accounts.get(&name).await?;
            println!(
                "stake                {:>20} credits",
                credits(accounts.stake(&name).await?)
            );
            println!("may run verifiers    {:>20}", account.verifier);
            println!("worker reputation    {:>20.3}", s.worker_reputation);
            println!("verifier reputation  {:>20.3}", s.verifier_reputation);
            println!("accepted results     {:>20}", s.accepted_tasks);
            println!("rejected results     {:>20}", s.rejected_tasks);
            println!(
                "banned               {:>20}",
                s.banned.as_deref().unwrap_or("no")
            );
        }
        AccountCommand::Unban { name } => {
            accounts.unban(&name).await?;
            println!("{name}: ban lifted");
        }
        AccountCommand::Balance { name } => {
            println!(
                "{name}: {} credits",
                credits(accounts.balance(&name).await?)
            );
        }
        AccountCommand::Keys { name, new } => {
            if new {
                eprintln!("new API key of {name} (shown only now):");
                println!("{}", accounts.add_key(&name, now).await?);
            } else {
                for k in accounts.keys(&name).await? {
                    let state = match k.revoked_ms {
                        Some(at) => format!("revoked at {at}"),
                        None => "active".into(),
                    };
                    println!("{}  created {}  {state}", k.id, k.created_ms);
                }
            }
        }
        AccountCommand::Revoke { name, key } => {
            accounts.revoke(&name, &key, now).await?;
            println!("revoked key {key} of {name}");
        }
        AccountCommand::List => {
            for a in store.accounts().await? {
                let balance = store.balance(&a.ledger_account()).await?;
                println!(
                    "{:<24} {:<8} {:>20} credits  {} keys",
                    a.name,
                    if a.operator { "operator" } else { "user" },
                    credits(balance),
                    a.keys.iter().filter(|k| k.revoked_ms.is_none()).count()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_are_read_and_written_to_the_micro_credit() {
        assert_eq!(parse_credits("12").unwrap(), 12_000_000);
        assert_eq!(parse_credits("2.5").unwrap(), 2_500_000);
        assert_eq!(parse_credits(".000001").unwrap(), 1);
        for bad in ["", ".", "-1", "1.0000001", "1e3", "x", "99999999999999999"] {
            assert!(parse_credits(bad).is_err(), "{bad}");
        }
        assert_eq!(credits(2_500_000), "2.500000");
        assert_eq!(credits(-1), "-0.000001");
    }
}
