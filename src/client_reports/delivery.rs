//! Scheduled reports: a client with a weekly or monthly `report_schedule` and a contact address
//! gets, once per period, a report of the period, shared by a link, summarized in a mail. The
//! scheduler's tick writes one `report_deliveries` row per client and period (unique) with its
//! job in the same transaction — so a period's mail is asked for once however often the tick
//! runs or the app restarts. The job makes the report and the mail's words once (kept on the
//! delivery, so a retry sends the same), waits for the report's PDF when the client wants it
//! attached (the PDF's completion wakes it), shares it and sends the mail — retried by the queue
//! until it is sent, and never again once it is.

use std::time::Duration as StdDuration;

use actix_web::web;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use super::make;
use super::queries::Report;
use crate::audit::{self, Entry};
use crate::db::schema::{clients, report_deliveries, reports};
use crate::mail::MailFile;
use crate::queue;
use crate::sites::queries::Client;
use crate::state::AppState;
use crate::web::AppError;

pub const DELIVERY_JOB: &str = "report_delivery";
/// The hour (UTC) a period's report goes out: Monday for weekly, the 1st for monthly.
const SEND_HOUR: u8 = 6;
/// How long the link in a scheduled mail works.
const LINK_DAYS: u32 = 30;
/// How many attempts a mail that carries the PDF waits for it to be printed (with the queue's
/// backoff, about five minutes); after that it goes without, and says so.
const PDF_PATIENCE_ATTEMPTS: i32 = 6;
/// Attempts of a delivery in all: the PDF's patience and as many again for the mail server
/// (the backoff doubles from 10 s, so the last comes hours after the first).
const MAX_ATTEMPTS: i32 = 2 * PDF_PATIENCE_ATTEMPTS;

/// A client's report schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    Weekly,
    Monthly,
}

impl Cadence {
    pub fn parse(text: &str) -> Option<Cadence> {
        match text {
            "weekly" => Some(Cadence::Weekly),
            "monthly" => Some(Cadence::Monthly),
            _ => None,
        }
    }

    /// The days a report of one period covers.
    pub fn days(self) -> u32 {
        match self {
            Cadence::Weekly => 7,
            Cadence::Monthly => 31,
        }
    }

    /// The period whose report is due at `now` (`2026-W49`, `2026-12`): the current one, once
    /// its sending time has passed; `None` before that.
    pub fn due_period(self, now: OffsetDateTime) -> Option<String> {
        let date = now.date();
        let (start, key) = match self {
            Cadence::Weekly => {
                let monday = date
                    - time::Duration::days(i64::from(date.weekday().number_days_from_monday()));
                let (year, week, _) = date.to_iso_week_date();
                (monday, format!("{year}-W{week:02}"))
            }
            Cadence::Monthly => (
                date.replace_day(1).ok()?,
                format!("{}-{:02}", date.year(), u8::from(date.month())),
            ),
        };
        let sends_at = start.with_hms(SEND_HOUR, 0, 0).ok()?.assume_utc();
        (now >= sends_at).then_some(key)
    }
}

/// One scheduler round: asks for this period's report of every client that is due and has not
/// had it. Returns how many were asked for.
pub async fn tick(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    tick_at(conn, OffsetDateTime::now_utc()).await
}

/// [`tick`] as if it were `now`.
pub async fn tick_at(conn: &mut AsyncPgConnection, now: OffsetDateTime) -> QueryResult<usize> {
    let scheduled: Vec<(i64, i64, String)> = clients::table
        .filter(clients::report_schedule.is_not_null())
        .filter(clients::contact_email.ne(""))
        .select((
            clients::id,
            clients::org_id,
            clients::report_schedule.assume_not_null(),
        ))
        .load(conn)
        .await?;
    let mut asked = 0;
    for (client_id, org_id, schedule) in scheduled {
        let Some(period) = Cadence::parse(&schedule).and_then(|c| c.due_period(now)) else {
            continue;
        };
        let new = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let id: Option<i64> = diesel::insert_into(report_deliveries::table)
                    .values((
                        report_deliveries::org_id.eq(org_id),
                        report_deliveries::client_id.eq(client_id),
                        report_deliveries::period.eq(&period),
                    ))
                    .on_conflict_do_nothing()
                    .returning(report_deliveries::id)
                    .get_result(conn)
                    .await
                    .optional()?;
                if let Some(id) = id {
                    queue::enqueue(
                        conn,
                        DELIVERY_JOB,
                        &serde_json::json!({ "delivery_id": id }),
                        MAX_ATTEMPTS,
                        // `now` says which period is due; the job itself runs at once.
                        OffsetDateTime::now_utc(),
                    )
                    .await?;
                }
                Ok(id.is_some())
            })
            .await?;
        asked += usize::from(new);
    }
    Ok(asked)
}

/// Claims and runs delivery jobs until the process ends.
pub async fn run_worker(state: web::Data<AppState>) {
    let kinds = [DELIVERY_JOB.to_string()];
    queue::worker::work(
        state.pool.clone(),
        &state.jobs_ready,
        &kinds,
        StdDuration::from_secs(300),
        |job| {
            let state = state.clone();
            async move {
                let id = job.payload["delivery_id"].as_i64().unwrap_or(0);
                deliver(&state, id, job.attempt)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await
}

/// Why a delivery attempt did not send its mail; every one is retried by the queue.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("waiting for the report's PDF to be printed")]
    PdfPending,
    #[error("the mail was not sent: {0}")]
    Mail(#[from] crate::mail::MailError),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for DeliveryError {
    fn from(error: diesel::result::Error) -> DeliveryError {
        DeliveryError::App(error.into())
    }
}

/// A delivery as the job finds it.
#[derive(Queryable)]
struct Delivery {
    org_id: i64,
    client_id: i64,
    period: String,
    status: String,
    report_id: Option<i64>,
    mail_subject: Option<String>,
    mail_body: Option<String>,
}

/// The period's report and the words of its mail, made once and kept on the delivery.
struct Prepared {
    report: Report,
    subject: String,
    body: String,
}

/// Makes, shares and mails one period's report, unless it was sent already.
async fn deliver(state: &AppState, delivery_id: i64, attempt: i32) -> Result<(), DeliveryError> {
    let mut conn = state.conn().await?;
    let row: Option<Delivery> = report_deliveries::table
        .find(delivery_id)
        .select((
            report_deliveries::org_id,
            report_deliveries::client_id,
            report_deliveries::period,
            report_deliveries::status,
            report_deliveries::report_id,
            report_deliveries::mail_subject,
            report_deliveries::mail_body,
        ))
        .first(&mut conn)
        .await
        .optional()?;
    // Its client was deleted, or the mail went out already.
    let Some(delivery) = row else {
        return Ok(());
    };
    if delivery.status == "sent" {
        return Ok(());
    }
    let client: Client = clients::table
        .find(delivery.client_id)
        .select(Client::as_select())
        .first(&mut conn)
        .await?;
    let Some(cadence) = client.report_schedule.as_deref().and_then(Cadence::parse) else {
        return Ok(()); // The schedule was switched off meanwhile.
    };
    drop(conn);
    let outcome = send(state, &client, delivery_id, &delivery, cadence, attempt).await;
    let mut conn = state.conn().await?;
    if let Err(error) = &outcome {
        diesel::update(report_deliveries::table.find(delivery_id))
            .set(report_deliveries::last_error.eq(error.to_string()))
            .execute(&mut conn)
            .await?;
    }
    outcome
}

/// The delivery's report and mail text: the ones made by an earlier attempt, or new ones.
async fn prepare(
    state: &AppState,
    client: &Client,
    delivery_id: i64,
    delivery: &Delivery,
    cadence: Cadence,
) -> Result<Prepared, DeliveryError> {
    let mut conn = state.conn().await?;
    if let (Some(report_id), Some(subject), Some(body)) = (
        delivery.report_id,
        &delivery.mail_subject,
        &delivery.mail_body,
    ) {
        let report = reports::table
            .find(report_id)
            .filter(reports::org_id.eq(delivery.org_id))
            .select(Report::as_select())
            .first(&mut conn)
            .await?;
        return Ok(Prepared {
            report,
            subject: subject.clone(),
            body: body.clone(),
        });
    }
    drop(conn);
    let (report, content) =
        make::report(state, client, delivery.org_id, None, cadence.days(), None).await?;
    let subject = format!(
        "{}: your website report for {}",
        content.title, delivery.period
    );
    let mut body = format!(
        "{}\n\n",
        match &content.contact {
            Some(name) => format!("Hello {name},"),
            None => "Hello,".to_owned(),
        }
    );
    body.push_str(&format!(
        "here is {}'s report on your website for {} to {}.\n\n",
        content.agency,
        content.period_start.date(),
        content.period_end.date()
    ));
    for line in &content.summary {
        body.push_str(&format!("- {line}\n"));
    }
    let mut conn = state.conn().await?;
    diesel::update(report_deliveries::table.find(delivery_id))
        .set((
            report_deliveries::report_id.eq(report.id),
            report_deliveries::mail_subject.eq(&subject),
            report_deliveries::mail_body.eq(&body),
        ))
        .execute(&mut conn)
        .await?;
    Ok(Prepared {
        report,
        subject,
        body,
    })
}

/// The report's PDF for the mail, if the client wants it attached: waits for the runner that
/// prints it for [`PDF_PATIENCE_ATTEMPTS`] attempts, then goes without.
async fn attachment(
    state: &AppState,
    client: &Client,
    report: &Report,
    period: &str,
    attempt: i32,
) -> Result<Option<MailFile>, DeliveryError> {
    if !client.report_attach_pdf {
        return Ok(None);
    }
    match super::pdf::read(state, report).await? {
        Some(bytes) => Ok(Some(MailFile {
            name: format!("website-report-{period}.pdf"),
            content_type: "application/pdf",
            bytes,
        })),
        None if attempt < PDF_PATIENCE_ATTEMPTS => Err(DeliveryError::PdfPending),
        None => Ok(None),
    }
}

async fn send(
    state: &AppState,
    client: &Client,
    delivery_id: i64,
    delivery: &Delivery,
    cadence: Cadence,
    attempt: i32,
) -> Result<(), DeliveryError> {
    let Prepared {
        report,
        subject,
        mut body,
    } = prepare(state, client, delivery_id, delivery, cadence).await?;
    let file = attachment(state, client, &report, &delivery.period, attempt).await?;
    let mut conn = state.conn().await?;
    let (share, url) = conn
        .transaction::<_, AppError, _>(async |conn| {
            let made = make::share(state, conn, &report, LINK_DAYS, None).await?;
            audit::record(
                conn,
                scheduler_entry(
                    delivery.org_id,
                    "report.scheduled",
                    &report,
                    &made.0,
                    &delivery.period,
                ),
            )
            .await?;
            Ok(made)
        })
        .await?;
    body.push_str(&format!(
        "\nThe whole report, with screenshots and every change: {url}\n(the link works until {}; please do not forward it)\n",
        share.expires_at.date()
    ));
    match &file {
        Some(file) => body.push_str(&format!("\nThe report is attached as {}.\n", file.name)),
        None if client.report_attach_pdf => body.push_str(
            "\nThe PDF of this report could not be made in time; the link above shows it all.\n",
        ),
        None => {}
    }
    if let Err(error) = state
        .mailer
        .send_with(&client.contact_email, &subject, body, file)
        .await
    {
        tracing::warn!(delivery = delivery_id, error = %error, "scheduled report not sent");
        return Err(error.into());
    }
    diesel::update(report_deliveries::table.find(delivery_id))
        .set((
            report_deliveries::status.eq("sent"),
            report_deliveries::sent_at.eq(diesel::dsl::now),
            report_deliveries::last_error.eq(None::<String>),
        ))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Wakes the delivery waiting for `report_id`'s PDF, now that it is printed; call in the
/// transaction that completes the PDF.
pub async fn pdf_printed(conn: &mut AsyncPgConnection, report_id: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE jobs SET run_at = clock_timestamp()
         WHERE kind = 'report_delivery' AND state = 'queued'
           AND (payload->>'delivery_id')::bigint IN
               (SELECT id FROM report_deliveries WHERE report_id = $1 AND status <> 'sent')",
    )
    .bind::<diesel::sql_types::BigInt, _>(report_id)
    .execute(conn)
    .await
}

fn scheduler_entry(
    org_id: i64,
    action: &'static str,
    report: &Report,
    share: &super::queries::Share,
    period: &str,
) -> Entry {
    Entry {
        org_id: Some(org_id),
        actor_user_id: None,
        actor_key_id: None,
        actor: "schedule".into(),
        action,
        subject: format!("report {}", report.id),
        detail: serde_json::json!({"share": share.id, "period": period}),
        ip: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_period_is_due_once_its_sending_time_has_passed() {
        // 2026-12-07 is a Monday.
        assert_eq!(
            Cadence::Weekly.due_period(datetime!(2026-12-07 05:59 UTC)),
            None
        );
        assert_eq!(
            Cadence::Weekly
                .due_period(datetime!(2026-12-07 06:00 UTC))
                .as_deref(),
            Some("2026-W50")
        );
        assert_eq!(
            Cadence::Weekly
                .due_period(datetime!(2026-12-13 23:00 UTC))
                .as_deref(),
            Some("2026-W50")
        );
        assert_eq!(
            Cadence::Monthly
                .due_period(datetime!(2026-12-01 06:30 UTC))
                .as_deref(),
            Some("2026-12")
        );
        assert_eq!(
            Cadence::Monthly.due_period(datetime!(2026-12-01 05:00 UTC)),
            None
        );
    }
}
