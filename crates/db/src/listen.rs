//! A connection that `LISTEN`s: the client for queries, and a channel that says when a
//! notification arrived (several arriving together may say so once; what matters is
//! that the listener looks again).

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

pub struct Listening {
    pub client: Client,
    /// A message per notification; closed when the connection ends.
    pub notified: mpsc::UnboundedReceiver<()>,
    /// Drives the connection; ends with it.
    pub driver: tokio::task::JoinHandle<()>,
}

/// Connects with `config` and listens on `channel` (a fixed identifier of Galley's).
pub async fn listen(config: &Config, channel: &str) -> Result<Listening, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notify, notified) = mpsc::unbounded_channel();
    let channel_name = channel.to_owned();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if notify.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %crate::report(&err), channel = %channel_name, "listening connection failed");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    Ok(Listening {
        client,
        notified,
        driver,
    })
}
