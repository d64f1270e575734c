//! The mails auth sends, and the outbox they wait in. A mail is a row of
//! `galley.outbox`, written in the same transaction as the token its link carries, so a
//! mail is queued exactly when its token exists; a worker delivers it.

use galley_db::GenericClient;

/// Which mail: its template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    Confirmation,
    Recovery,
    EmailChange,
    MagicLink,
    Invite,
    /// A code (no link) to confirm a sensitive change such as a new password.
    Reauthentication,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Confirmation => "confirmation",
            MailKind::Recovery => "recovery",
            MailKind::EmailChange => "email_change",
            MailKind::MagicLink => "magic_link",
            MailKind::Invite => "invite",
            MailKind::Reauthentication => "reauthentication",
        }
    }
}

/// An operator's own words for a mail (`[auth.templates.recovery]` and so on):
/// `{project}`, `{link}` and `{code}` (the six-digit code the mail also carries) are
/// filled in.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailTemplate {
    pub subject: String,
    pub body: String,
}

/// The operator's templates, by mail.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailTemplates {
    pub confirmation: Option<MailTemplate>,
    pub recovery: Option<MailTemplate>,
    pub email_change: Option<MailTemplate>,
    pub magic_link: Option<MailTemplate>,
    pub invite: Option<MailTemplate>,
    pub reauthentication: Option<MailTemplate>,
}

impl MailTemplates {
    fn by_kind(&self) -> [(MailKind, &Option<MailTemplate>); 6] {
        [
            (MailKind::Confirmation, &self.confirmation),
            (MailKind::Recovery, &self.recovery),
            (MailKind::EmailChange, &self.email_change),
            (MailKind::MagicLink, &self.magic_link),
            (MailKind::Invite, &self.invite),
            (MailKind::Reauthentication, &self.reauthentication),
        ]
    }

    /// Every template must carry what its mail is for: the link, or for a
    /// reauthentication (which has none) the code.
    pub fn validate(&self) -> Result<(), String> {
        for (kind, template) in self.by_kind() {
            let needed = if kind == MailKind::Reauthentication {
                "{code}"
            } else {
                "{link}"
            };
            if let Some(template) = template
                && !template.body.contains(needed)
            {
                return Err(format!(
                    "auth.templates.{}: the body must contain {needed}",
                    kind.as_str()
                ));
            }
        }
        Ok(())
    }
}

/// The words of a mail, with `{project}`, `{link}` and `{code}` filled in; the
/// operator's templates where given, Galley's otherwise.
#[derive(Debug, Clone)]
pub struct Templates {
    pub project: String,
    pub custom: MailTemplates,
}

impl Templates {
    pub fn render(&self, kind: MailKind, link: &str, code: &str) -> (String, String) {
        let project = &self.project;
        let custom = self
            .custom
            .by_kind()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, template)| template.as_ref());
        if let Some(template) = custom {
            let fill = |text: &str| {
                text.replace("{project}", project)
                    .replace("{link}", link)
                    .replace("{code}", code)
            };
            // A subject is one line: a CR or LF from a template would start a header.
            let subject = fill(&template.subject).replace(['\r', '\n'], " ");
            return (subject, fill(&template.body));
        }
        let or_code = format!("Or enter this code: {code}\n\n");
        match kind {
            MailKind::Confirmation => (
                format!("Confirm your signup to {project}"),
                format!(
                    "Welcome to {project}.\n\nFollow this link to confirm your email address:\n\n{link}\n\n\
                     {or_code}If you did not sign up, ignore this mail.\n"
                ),
            ),
            MailKind::Recovery => (
                format!("Reset your {project} password"),
                format!(
                    "Someone asked to reset the password of your {project} account.\n\n\
                     Follow this link to choose a new one (it works once, for one hour):\n\n{link}\n\n\
                     {or_code}If it was not you, ignore this mail; your password stays as it is.\n"
                ),
            ),
            MailKind::EmailChange => (
                format!("Confirm your new {project} email address"),
                format!(
                    "Follow this link to make this the email address of your {project} account:\n\n{link}\n\n\
                     {or_code}If you did not ask for this, ignore this mail.\n"
                ),
            ),
            MailKind::MagicLink => (
                format!("Your {project} sign-in link"),
                format!(
                    "Follow this link to sign in to {project} (it works once, for one hour):\n\n{link}\n\n\
                     {or_code}If you did not ask to sign in, ignore this mail.\n"
                ),
            ),
            MailKind::Invite => (
                format!("You have been invited to {project}"),
                format!(
                    "You have been invited to create an account on {project}.\n\n\
                     Follow this link to accept:\n\n{link}\n\n{or_code}"
                ),
            ),
            MailKind::Reauthentication => (
                format!("Confirm it is you on {project}"),
                format!(
                    "Enter this code to confirm the change to your {project} account:\n\n{code}\n\n\
                     If you did not ask for this, someone may know your password: change it.\n"
                ),
            ),
        }
    }
}

/// Queues a mail in the caller's transaction.
pub(crate) async fn enqueue(
    client: &impl GenericClient,
    kind: MailKind,
    recipient: &str,
    subject: &str,
    body: &str,
) -> Result<(), galley_db::tokio_postgres::Error> {
    enqueue_as(client, kind.as_str(), recipient, subject, body).await
}

/// Queues a mail of any kind (`test`, from the admin UI, is not a link mail).
pub(crate) async fn enqueue_as(
    client: &impl GenericClient,
    kind: &str,
    recipient: &str,
    subject: &str,
    body: &str,
) -> Result<(), galley_db::tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO galley.outbox (kind, recipient, subject, body_text) VALUES ($1, $2, $3, $4)",
            &[&kind, &recipient, &subject, &body],
        )
        .await
        .map(|_| ())
}

/// `[smtp]`: where mail goes. Without it, mail stays in the outbox (readable through the
/// admin API) and signups need no confirmation.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// `none` (plain, for a relay on the same host), `starttls` or `tls`.
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    #[serde(default, serialize_with = "crate::config::redact")]
    pub password: Option<secrecy::SecretString>,
    /// The sender, e.g. `Galley <no-reply@example.com>`.
    pub from: String,
}

fn default_port() -> u16 {
    587
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    #[default]
    Starttls,
    Tls,
}

/// Delivers the outbox over SMTP. Every instance runs one; rows are claimed with
/// `FOR UPDATE SKIP LOCKED`, so each mail is sent by one of them. A failed send is
/// retried with exponential backoff (1 s doubling to a minute), so an SMTP outage delays
/// mail and loses none. A sent mail's body is cleared: the link in it is a credential.
pub struct OutboxWorker {
    pool: galley_db::Pool,
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
    wake: std::sync::Arc<tokio::sync::Notify>,
    metrics: std::sync::Arc<galley_metrics::Metrics>,
}

/// Rows claimed per round.
const BATCH: i64 = 20;

impl OutboxWorker {
    pub fn new(
        pool: galley_db::Pool,
        config: &SmtpConfig,
        wake: std::sync::Arc<tokio::sync::Notify>,
        metrics: std::sync::Arc<galley_metrics::Metrics>,
    ) -> Result<Self, String> {
        use lettre::AsyncSmtpTransport;
        use secrecy::ExposeSecret;
        let mut builder = match config.tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&config.host)
            }
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<lettre::Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(|err| galley_db::report(&err).to_string())?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<lettre::Tokio1Executor>::relay(&config.host)
                .map_err(|err| galley_db::report(&err).to_string())?,
        }
        .port(config.port)
        .timeout(Some(std::time::Duration::from_secs(10)));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    user.clone(),
                    password.expose_secret().to_owned(),
                ));
        }
        let from = config
            .from
            .parse()
            .map_err(|err| format!("smtp.from: {err}"))?;
        Ok(Self {
            pool,
            transport: builder.build(),
            from,
            wake,
            metrics,
        })
    }

    /// Delivers until the task is dropped: a round whenever mail is queued here, and at
    /// least every second for mail queued elsewhere and for retries.
    pub async fn run(self) {
        loop {
            match self.round().await {
                Ok(sent) if sent == BATCH as usize => continue,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "outbox: a delivery round failed"),
            }
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(1), self.wake.notified()).await;
        }
    }

    /// One round: claims due mail and tries each; returns how many were claimed.
    async fn round(&self) -> Result<usize, String> {
        use lettre::AsyncTransport;
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|err| galley_db::report(&err).to_string())?;
        let tx = client
            .transaction()
            .await
            .map_err(|err| galley_db::report(&err).to_string())?;
        let rows = tx
            .query(
                "SELECT id, kind, recipient, subject, body_text, attempts FROM galley.outbox \
                 WHERE sent_at IS NULL AND next_attempt_at <= now() ORDER BY id LIMIT $1 \
                 FOR UPDATE SKIP LOCKED",
                &[&BATCH],
            )
            .await
            .map_err(|err| galley_db::report(&err).to_string())?;
        for row in &rows {
            let id: i64 = row.get(0);
            let kind: String = row.get(1);
            let recipient: String = row.get(2);
            let subject: String = row.get(3);
            let body: String = row.get(4);
            let attempts: i32 = row.get(5);
            let outcome = match self.message(&recipient, &subject, body) {
                Ok(message) => self
                    .transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|err| galley_db::report(&err).to_string()),
                Err(err) => Err(err),
            };
            match outcome {
                Ok(()) => {
                    tx.execute(
                        "UPDATE galley.outbox SET sent_at = now(), body_text = '', attempts = attempts + 1, last_error = NULL WHERE id = $1",
                        &[&id],
                    )
                    .await
                    .map_err(|err| galley_db::report(&err).to_string())?;
                    self.metrics.mail_sends.with_label_values(&["sent"]).inc();
                    tracing::info!(event = "mail.sent", mail_id = id, kind = %kind, "mail delivered");
                }
                Err(err) => {
                    let backoff = 2f64.powi(attempts.min(6)).min(60.0);
                    let error: String = err.chars().take(500).collect();
                    tx.execute(
                        "UPDATE galley.outbox SET attempts = attempts + 1, last_error = $2, \
                         next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                        &[&id, &error, &backoff],
                    )
                    .await
                    .map_err(|err| galley_db::report(&err).to_string())?;
                    self.metrics.mail_sends.with_label_values(&["failed"]).inc();
                    tracing::warn!(event = "mail.failed", mail_id = id, kind = %kind, attempts = attempts + 1, error = %error, "mail not delivered; will retry");
                }
            }
        }
        tx.commit()
            .await
            .map_err(|err| galley_db::report(&err).to_string())?;
        Ok(rows.len())
    }

    fn message(
        &self,
        recipient: &str,
        subject: &str,
        body: String,
    ) -> Result<lettre::Message, String> {
        let to: lettre::message::Mailbox = recipient
            .parse()
            .map_err(|err| format!("recipient: {err}"))?;
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|err| galley_db::report(&err).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(body: &str) -> Option<MailTemplate> {
        Some(MailTemplate {
            subject: "Hello\r\nBcc: someone@example.com".into(),
            body: body.into(),
        })
    }

    #[test]
    fn every_kind_renders_its_link_and_code_and_overrides_must_carry_them() {
        let templates = Templates {
            project: "Acme".into(),
            custom: MailTemplates::default(),
        };
        for kind in [
            MailKind::Confirmation,
            MailKind::Recovery,
            MailKind::EmailChange,
            MailKind::MagicLink,
            MailKind::Invite,
        ] {
            let (_, body) = templates.render(kind, "https://x/verify?token=t", "123456");
            assert!(body.contains("https://x/verify?token=t"), "{kind:?}");
            assert!(body.contains("123456"), "{kind:?}");
        }
        let (_, body) = templates.render(MailKind::Reauthentication, "unused", "654321");
        assert!(body.contains("654321") && !body.contains("unused"));

        let custom = MailTemplates {
            magic_link: template("Sign in: {link} or {code}"),
            reauthentication: template("Your code is {code}"),
            ..MailTemplates::default()
        };
        assert!(custom.validate().is_ok());
        let templates = Templates {
            project: "Acme".into(),
            custom,
        };
        let (subject, body) = templates.render(MailKind::MagicLink, "L", "C");
        assert_eq!(body, "Sign in: L or C");
        assert!(!subject.contains(['\r', '\n']), "one line: {subject:?}");
        let missing = MailTemplates {
            reauthentication: template("no code here {link}"),
            ..MailTemplates::default()
        };
        assert_eq!(
            missing.validate().unwrap_err(),
            "auth.templates.reauthentication: the body must contain {code}"
        );
        let missing = MailTemplates {
            invite: template("no link"),
            ..MailTemplates::default()
        };
        assert!(missing.validate().unwrap_err().contains("invite"));
    }
}
