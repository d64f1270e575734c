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
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Confirmation => "confirmation",
            MailKind::Recovery => "recovery",
            MailKind::EmailChange => "email_change",
        }
    }
}

/// The words of a mail, with `{project}` and `{link}` filled in. Operators may override
/// them (`auth.templates`).
#[derive(Debug, Clone)]
pub struct Templates {
    pub project: String,
}

impl Templates {
    pub fn render(&self, kind: MailKind, link: &str) -> (String, String) {
        let project = &self.project;
        match kind {
            MailKind::Confirmation => (
                format!("Confirm your signup to {project}"),
                format!(
                    "Welcome to {project}.\n\nFollow this link to confirm your email address:\n\n{link}\n\n\
                     If you did not sign up, ignore this mail.\n"
                ),
            ),
            MailKind::Recovery => (
                format!("Reset your {project} password"),
                format!(
                    "Someone asked to reset the password of your {project} account.\n\n\
                     Follow this link to choose a new one (it works once, for one hour):\n\n{link}\n\n\
                     If it was not you, ignore this mail; your password stays as it is.\n"
                ),
            ),
            MailKind::EmailChange => (
                format!("Confirm your new {project} email address"),
                format!(
                    "Follow this link to make this the email address of your {project} account:\n\n{link}\n\n\
                     If you did not ask for this, ignore this mail.\n"
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
    client
        .execute(
            "INSERT INTO galley.outbox (kind, recipient, subject, body_text) VALUES ($1, $2, $3, $4)",
            &[&kind.as_str(), &recipient, &subject, &body],
        )
        .await
        .map(|_| ())
}
