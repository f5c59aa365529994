//! Task-change notifications over PostgreSQL's LISTEN/NOTIFY.
//!
//! A trigger (migration 2) sends `<job id>/<index>` on the schema's
//! channel after every insert or update of a task, when the writing
//! transaction commits. One dedicated connection per store listens and
//! fans the ids out on a broadcast channel; it reconnects with backoff if
//! the server goes away. Notifications sent while it was disconnected are
//! lost, so they are a prompt to look, not a replacement for reading the
//! queue.

use std::str::FromStr;
use std::time::Duration;

use futures::StreamExt;
use inferix_core::ids::{JobId, TaskId};
use tokio::sync::{broadcast, oneshot};
use tokio_postgres::AsyncMessage;

use super::{tls, Backoff, PostgresError};

/// Ids buffered per subscriber before the slowest one starts missing
/// some (it then sees `RecvError::Lagged` and should re-read the queue).
pub(crate) const CHANNEL_CAPACITY: usize = 4096;

/// `application_name` of the listening connection.
pub(crate) const LISTENER_APPLICATION_NAME: &str = "inferix-listen";

/// The channel the trigger of migration 2 notifies for `schema`.
pub(crate) fn channel(schema: &str) -> String {
    format!("inferix_tasks_{schema}")
}

/// Parses a trigger payload; anything else on the channel is ignored.
pub(crate) fn parse_payload(payload: &str) -> Option<TaskId> {
    let (job, idx) = payload.split_once('/')?;
    Some(TaskId::new(JobId::from_str(job).ok()?, idx.parse().ok()?))
}

/// Listens on `channel` until dropped: sends `Ok` on `ready` once the
/// first LISTEN is in effect (or the error if it never gets there), then
/// forwards every task id to `tx`, reconnecting after a lost connection.
pub(crate) async fn run(
    config: tokio_postgres::Config,
    tls: tls::Connector,
    channel: String,
    tx: broadcast::Sender<TaskId>,
    ready: oneshot::Sender<Result<(), PostgresError>>,
    target: String,
) {
    let mut ready = Some(ready);
    let backoff = Backoff::default();
    let mut delay = backoff.initial;
    loop {
        let result = listen_once(
            &config,
            &tls,
            &channel,
            &tx,
            &mut ready,
            &mut delay,
            backoff.initial,
        )
        .await;
        if let Some(ready) = ready.take() {
            // Never got to listen: the caller of `subscribe` reports it.
            let reason = match result {
                Err(e) => super::migrate::describe(&e),
                Ok(()) => "connection closed before LISTEN completed".to_string(),
            };
            let _ = ready.send(Err(PostgresError::Unreachable {
                target,
                attempts: 1,
                reason,
            }));
            return;
        }
        match result {
            Ok(()) => tracing::warn!(%channel, "task notification connection closed; reconnecting"),
            Err(e) => {
                tracing::warn!(%channel, error = %e, "task notification connection failed; reconnecting")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(backoff.max);
    }
}

/// One connection's life: connect, LISTEN, forward until it closes.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &tls::Connector,
    channel: &str,
    tx: &broadcast::Sender<TaskId>,
    ready: &mut Option<oneshot::Sender<Result<(), PostgresError>>>,
    delay: &mut Duration,
    initial_delay: Duration,
) -> Result<(), tokio_postgres::Error> {
    let mut config = config.clone();
    // Named so an operator (or a test) can tell it from pooled connections.
    config.application_name(LISTENER_APPLICATION_NAME);
    let (client, mut connection) = config.connect(tls.clone()).await?;
    let forward = tx.clone();
    // The connection must be polled for the LISTEN below to complete, and
    // afterwards it is what delivers the notifications.
    let mut driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message? {
                AsyncMessage::Notification(n) => {
                    if let Some(id) = parse_payload(n.payload()) {
                        // No subscriber right now is fine.
                        let _ = forward.send(id);
                    }
                }
                AsyncMessage::Notice(notice) => {
                    tracing::debug!(
                        message = notice.message(),
                        "notice on the notification connection"
                    );
                }
                _ => {}
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    let sql = format!("LISTEN \"{}\"", channel.replace('"', "\"\""));
    let listen = client.batch_execute(&sql);
    tokio::select! {
        res = listen => res?,
        // The connection ended before LISTEN completed.
        res = &mut driver => return flatten(res),
    }
    if let Some(ready) = ready.take() {
        let _ = ready.send(Ok(()));
    }
    // A connection that got this far starts the next backoff afresh.
    *delay = initial_delay;
    // `client` stays alive while the driver runs: dropping it would close
    // the connection.
    let res = (&mut driver).await;
    drop(client);
    flatten(res)
}

fn flatten(
    res: Result<Result<(), tokio_postgres::Error>, tokio::task::JoinError>,
) -> Result<(), tokio_postgres::Error> {
    match res {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "notification driver task ended abnormally");
            Ok(())
        }
    }
}

/// How long `subscribe` waits for the first LISTEN before giving up.
pub(crate) const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_to_task_ids_and_junk_is_ignored() {
        let job = JobId(0xabc);
        assert_eq!(
            parse_payload(&format!("{job}/7")),
            Some(TaskId::new(job, 7))
        );
        assert_eq!(parse_payload("nonsense"), None);
        assert_eq!(parse_payload(&format!("{job}/-1")), None);
        assert_eq!(parse_payload("zz/1"), None);
    }
}
