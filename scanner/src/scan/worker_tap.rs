//! The requests of the page's workers: dedicated, shared and service workers run in DevTools
//! targets of their own, whose network events never reach the page's session (with Chromium's
//! PlzDedicatedWorker even the worker's own script is answered there). chromiumoxide resumes such
//! targets without listening to them, so the scanner keeps a DevTools connection of its own per
//! scan: it attaches to the page, auto-attaches to the workers the page starts and to the shared
//! workers of the scan's browser context (each paused until its network is watched), and feeds their network events into the scan's recorder, where the party and
//! egress rules of the page's own requests apply to them alike.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use chromiumoxide::cdp::browser_protocol::network;
use futures::StreamExt;
use serde_json::{Value, json};

use super::events::{Event, Recorder, lock};
use crate::error::ScanError;

/// How long setting up the connection may take before the scan goes on without it.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Worker sessions followed at most per scan.
const MAX_WORKERS: usize = 100;

/// The running tap; stops (and closes its connection) when dropped.
pub(super) struct WorkerTap {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WorkerTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the tap needs to know of its scan.
pub(super) struct TapTarget {
    pub(super) browser_ws_url: String,
    pub(super) page_target_id: String,
    pub(super) context_id: String,
    pub(super) recorder: Arc<Mutex<Recorder>>,
    pub(super) binding: String,
    /// `Network.setUserAgentOverride` parameters of the visitor profile, for workers' requests.
    pub(super) user_agent_override: Value,
}

/// Connects, attaches to the page and asks for its workers; returns once the browser has agreed,
/// so no worker the page starts afterwards is missed.
pub(super) async fn start(target: TapTarget) -> Result<WorkerTap, ScanError> {
    let setup = async {
        let (mut socket, _) =
            async_tungstenite::tokio::connect_async(target.browser_ws_url.as_str())
                .await
                .map_err(|e| format!("connecting: {e}"))?;
        let mut connection = Connection::default();
        let attach = connection
            .call(
                &mut socket,
                None,
                "Target.attachToTarget",
                json!({"targetId": target.page_target_id, "flatten": true}),
            )
            .await?;
        let page_session = attach["sessionId"]
            .as_str()
            .ok_or("attaching to the page gave no session")?
            .to_owned();
        connection
            .call(
                &mut socket,
                Some(&page_session),
                "Target.setAutoAttach",
                json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
            )
            .await?;
        // Shared workers belong to no page: ask the browser for each new one, paused, and keep
        // those of this scan's context.
        connection
            .call(
                &mut socket,
                None,
                "Target.setAutoAttach",
                json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true,
                       "filter": [{"type": "shared_worker", "exclude": false}]}),
            )
            .await?;
        Ok::<_, String>((socket, connection))
    };
    let (socket, connection) = tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .map_err(|_| ScanError::Protocol("the worker tap did not start in time".into()))?
        .map_err(|e| ScanError::Protocol(format!("the worker tap: {e}")))?;
    let task = tokio::spawn(follow(socket, connection, target));
    Ok(WorkerTap { task })
}

type Socket = async_tungstenite::WebSocketStream<async_tungstenite::tokio::ConnectStream>;

#[derive(Default)]
struct Connection {
    next_id: u64,
    /// Sessions of the workers being followed.
    workers: HashSet<String>,
}

impl Connection {
    async fn send(
        &mut self,
        socket: &mut Socket,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<u64, String> {
        self.next_id += 1;
        let mut message = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        socket
            .send(Message::text(message.to_string()))
            .await
            .map_err(|e| format!("sending {method}: {e}"))?;
        Ok(self.next_id)
    }

    /// Sends a command and waits for its answer (during setup, before any event matters).
    async fn call(
        &mut self,
        socket: &mut Socket,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.send(socket, session, method, params).await?;
        while let Some(message) = socket.next().await {
            let message = message.map_err(|e| format!("reading: {e}"))?;
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if value["id"].as_u64() == Some(id) {
                if let Some(error) = value.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(value["result"].clone());
            }
        }
        Err(format!("the connection closed during {method}"))
    }
}

/// Follows the connection until the scan drops the tap or the browser goes away.
async fn follow(mut socket: Socket, mut connection: Connection, target: TapTarget) {
    let mut unparsed: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(Ok(message)) = socket.next().await {
        let Ok(text) = message.to_text() else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        let Some(method) = value["method"].as_str() else {
            continue; // an answer to a command sent below
        };
        let params = value["params"].clone();
        let session = value["sessionId"].as_str().unwrap_or_default();
        let outcome = match method {
            "Target.attachedToTarget" => {
                attached(&mut socket, &mut connection, &target, &params).await
            }
            _ if connection.workers.contains(session) => {
                if let Some(event) = network_event(method, params) {
                    match event {
                        Ok(event) => lock(&target.recorder).apply(event, &target.binding),
                        Err(()) => *unparsed.entry(method.to_owned()).or_default() += 1,
                    }
                    lock(&target.recorder).worker_unparsed = unparsed.clone();
                }
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(error) = outcome {
            tracing::debug!(%error, "worker tap");
        }
    }
}

/// A target was attached: a worker is watched, then let run; anything else is let run and left.
async fn attached(
    socket: &mut Socket,
    connection: &mut Connection,
    target: &TapTarget,
    params: &Value,
) -> Result<(), String> {
    let session = params["sessionId"].as_str().ok_or("no session")?.to_owned();
    let kind = params["targetInfo"]["type"].as_str().unwrap_or_default();
    let url = params["targetInfo"]["url"].as_str().unwrap_or_default();
    let waiting = params["waitingForDebugger"].as_bool().unwrap_or(false);
    let context = params["targetInfo"]["browserContextId"].as_str();
    let ours = kind != "shared_worker" || context == Some(target.context_id.as_str());
    if ours && kind.ends_with("worker") && connection.workers.len() < MAX_WORKERS {
        lock(&target.recorder).network.handed_to_worker(url);
        connection.workers.insert(session.clone());
        connection
            .send(
                socket,
                Some(&session),
                "Network.setUserAgentOverride",
                target.user_agent_override.clone(),
            )
            .await?;
        connection
            .send(socket, Some(&session), "Network.enable", json!({}))
            .await?;
        // Workers the worker starts in turn.
        connection
            .send(
                socket,
                Some(&session),
                "Target.setAutoAttach",
                json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
            )
            .await?;
    }
    if waiting {
        connection
            .send(
                socket,
                Some(&session),
                "Runtime.runIfWaitingForDebugger",
                json!({}),
            )
            .await?;
    }
    if !connection.workers.contains(&session) {
        connection
            .send(
                socket,
                None,
                "Target.detachFromTarget",
                json!({"sessionId": session}),
            )
            .await?;
    }
    Ok(())
}

/// A worker's network event as the recorder takes it: `None` for events the scanner does not
/// use, `Err` for one it uses that does not parse.
fn network_event(method: &str, params: Value) -> Option<Result<Event, ()>> {
    fn typed<T: serde::de::DeserializeOwned>(
        params: Value,
        wrap: fn(Arc<T>) -> Event,
    ) -> Result<Event, ()> {
        serde_json::from_value::<T>(params)
            .map(|event| wrap(Arc::new(event)))
            .map_err(|_| ())
    }
    Some(match method {
        "Network.requestWillBeSent" => {
            typed::<network::EventRequestWillBeSent>(params, Event::RequestWillBeSent)
        }
        "Network.responseReceived" => {
            typed::<network::EventResponseReceived>(params, Event::ResponseReceived)
        }
        "Network.responseReceivedExtraInfo" => {
            typed::<network::EventResponseReceivedExtraInfo>(params, Event::ResponseExtra)
        }
        "Network.loadingFinished" => {
            typed::<network::EventLoadingFinished>(params, Event::LoadingFinished)
        }
        "Network.loadingFailed" => {
            typed::<network::EventLoadingFailed>(params, Event::LoadingFailed)
        }
        "Network.dataReceived" => typed::<network::EventDataReceived>(params, Event::DataReceived),
        "Network.webSocketCreated" => {
            typed::<network::EventWebSocketCreated>(params, Event::WebSocketCreated)
        }
        "Network.webSocketHandshakeResponseReceived" => typed::<
            network::EventWebSocketHandshakeResponseReceived,
        >(params, Event::WebSocketHandshake),
        "Network.webSocketClosed" => {
            typed::<network::EventWebSocketClosed>(params, Event::WebSocketClosed)
        }
        _ => return None,
    })
}
