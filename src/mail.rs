//! Outgoing mail: through SMTP (lettre) or, on the development default, into an outbox folder.
//! Mail bodies can carry secrets (reset and invitation links), so nothing here logs a body.

use std::path::PathBuf;

use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{Config, MailTransport, redact_url};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the SMTP URL is not usable: {0}")]
    Url(String),
    #[error("`{0}` is not a valid email address")]
    Address(String),
    #[error("could not build the message: {0}")]
    Build(String),
    #[error("the SMTP server refused or could not be reached: {0}")]
    Send(String),
    #[error("could not write to the outbox: {0}")]
    Outbox(std::io::Error),
}

/// A file attached to a mail.
pub struct MailFile {
    pub name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    pub fn from_config(config: &Config) -> Result<Mailer, MailError> {
        let from: Mailbox = config
            .mail_from
            .parse()
            .map_err(|_| MailError::Address(config.mail_from.clone()))?;
        let transport = match &config.mail {
            MailTransport::Smtp(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| {
                        MailError::Url(format!("{}: {e}", redact_url(url.expose_secret())))
                    })?
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build(),
            ),
            MailTransport::Outbox(dir) => Transport::Outbox(dir.clone()),
        };
        Ok(Mailer { transport, from })
    }

    /// Sends one plain-text mail.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        self.send_with(to, subject, body, None).await
    }

    /// Sends one plain-text mail, with a file attached if there is one.
    pub async fn send_with(
        &self,
        to: &str,
        subject: &str,
        body: String,
        file: Option<MailFile>,
    ) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|_| MailError::Address(to.to_string()))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject);
        let message = match file {
            None => builder.header(ContentType::TEXT_PLAIN).body(body),
            Some(file) => {
                let content_type = ContentType::parse(file.content_type)
                    .map_err(|e| MailError::Build(e.to_string()))?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(body))
                        .singlepart(Attachment::new(file.name).body(file.bytes, content_type)),
                )
            }
        }
        .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Transport::Outbox(dir) => write_to_outbox(dir, &message.formatted()).await,
        }
    }

    /// Sends in the background so that the response time does not tell whether a mail went
    /// out (no account enumeration by timing); failures are logged without the body.
    pub fn send_later(&self, to: String, subject: &'static str, body: String) {
        let mailer = self.clone();
        tokio::spawn(async move {
            if let Err(error) = mailer.send(&to, subject, body).await {
                tracing::error!(%error, subject, "mail not sent");
            }
        });
    }
}

async fn write_to_outbox(dir: &PathBuf, bytes: &[u8]) -> Result<(), MailError> {
    use std::os::unix::fs::OpenOptionsExt;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(MailError::Outbox)?;
    let name = format!(
        "{}-{}.eml",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        hex::encode(crate::crypto::random_bytes::<6>())
    );
    let path = dir.join(name);
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(&bytes)
    })
    .await
    .map_err(|e| MailError::Outbox(std::io::Error::other(e)))?
    .map_err(MailError::Outbox)
}
