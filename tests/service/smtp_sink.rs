//! A real SMTP server for tests: it speaks enough SMTP for lettre (EHLO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT) over TCP and keeps every message it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    /// The raw message, with quoted-printable soft breaks undone.
    pub text: String,
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    arrived: Arc<Notify>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink");
        let port = listener.local_addr().unwrap().port();
        let sink = SmtpSink {
            port,
            mails: Arc::default(),
            arrived: Arc::new(Notify::new()),
            down: Arc::default(),
        };
        let server = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.session(stream).await;
                });
            }
        });
        sink
    }

    /// While down, every session is refused with 421 (a mail server out of service).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    async fn session(&self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            write.write_all(b"421 sink out of service\r\n").await?;
            return Ok(());
        }
        write.write_all(b"220 sink ESMTP ready\r\n").await?;
        let mut to = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            if command.starts_with("EHLO") {
                write
                    .write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?;
            } else if command.starts_with("HELO") || command.starts_with("NOOP") {
                write.write_all(b"250 ok\r\n").await?;
            } else if command.starts_with("MAIL FROM") || command.starts_with("RSET") {
                to.clear();
                write.write_all(b"250 ok\r\n").await?;
            } else if command.starts_with("RCPT TO") {
                let address = line.trim_end()[8..]
                    .trim()
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_string();
                to.push(address);
                write.write_all(b"250 ok\r\n").await?;
            } else if command == "DATA" {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let text = data.replace("=\r\n", "").replace("=3D", "=");
                self.mails.lock().unwrap().push(Mail {
                    to: std::mem::take(&mut to),
                    text,
                });
                self.arrived.notify_waiters();
                write.write_all(b"250 queued\r\n").await?;
            } else if command.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                write.write_all(b"502 not implemented\r\n").await?;
            }
        }
    }

    pub fn mails_to(&self, address: &str) -> Vec<Mail> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .cloned()
            .collect()
    }

    /// Waits up to ten seconds for the `n`-th mail to `address`.
    pub async fn wait_for(&self, address: &str, n: usize) -> Mail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.arrived.notified();
            let mails = self.mails_to(address);
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("no mail #{n} to {address} arrived within 10 s");
            }
        }
    }
}

/// The first URL in a mail that contains `path`.
pub fn link_in(mail: &Mail, path: &str) -> String {
    mail.text
        .split(|c: char| c.is_whitespace())
        .find(|word| word.starts_with("http") && word.contains(path))
        .unwrap_or_else(|| panic!("no link with {path} in mail:\n{}", mail.text))
        .to_string()
}
