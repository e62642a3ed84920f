//! The fixture sites' name server (UDP, loopback): answers the fixture hosts, and answers one
//! first-party name with a CNAME to a tracker, the way a site hands a subdomain to its analytics
//! vendor (CNAME cloaking).

use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::{ANALYTICS, HOSTS};

/// The shop's metrics subdomain: a CNAME to the analytics vendor's host, which serves it.
pub const CLOAKED_METRICS: &str = "metrics.shop.test";

const TTL: u32 = 60;

/// The aliases the server answers: `(name, canonical name)`.
const ALIASES: [(&str, &str); 1] = [(CLOAKED_METRICS, ANALYTICS)];

/// Answers queries on `socket` until the task is dropped.
pub(crate) async fn serve(socket: UdpSocket) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buffer[..len]) else {
            continue;
        };
        if let Ok(bytes) = answer(&query).to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

fn answer(query: &Message) -> Message {
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let mut known = true;
    for question in query.queries() {
        response.add_query(question.clone());
        let asked = question
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let mut name = asked.as_str();
        if let Some((_, canonical)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
            response.add_answer(Record::from_rdata(
                question.name().clone(),
                TTL,
                RData::CNAME(CNAME(fqdn(canonical))),
            ));
            name = canonical;
        }
        if !HOSTS.contains(&name) {
            known = false;
            continue;
        }
        if question.query_type() == RecordType::A {
            response.add_answer(Record::from_rdata(
                fqdn(name),
                TTL,
                RData::A(A(Ipv4Addr::LOCALHOST)),
            ));
        }
    }
    if !known {
        response.set_response_code(ResponseCode::NXDomain);
    }
    response
}

fn fqdn(name: &str) -> Name {
    Name::from_ascii(format!("{name}.")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn ask(name: &str, kind: RecordType) -> Message {
        let mut query = Message::new();
        query.set_id(7).add_query(Query::query(fqdn(name), kind));
        answer(&query)
    }

    #[test]
    fn the_metrics_subdomain_is_an_alias_of_the_analytics_host() {
        let response = ask(CLOAKED_METRICS, RecordType::A);
        assert_eq!(response.id(), 7);
        assert_eq!(response.response_code(), ResponseCode::NoError);
        let data: Vec<&RData> = response.answers().iter().map(|r| r.data()).collect();
        assert_eq!(
            data,
            vec![
                &RData::CNAME(CNAME(fqdn(ANALYTICS))),
                &RData::A(A(Ipv4Addr::LOCALHOST))
            ]
        );
    }

    #[test]
    fn unknown_names_do_not_exist() {
        let response = ask("elsewhere.invalid", RecordType::A);
        assert_eq!(response.response_code(), ResponseCode::NXDomain);
        assert!(response.answers().is_empty());
    }
}
