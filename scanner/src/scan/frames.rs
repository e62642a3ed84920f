//! A journey's reach into the page's frames: which frames there are, the frame an `<iframe>`
//! element holds, where a frame sits in the tab's viewport, and scripts run in a frame's own
//! isolated world. Cross-site frames are in the page's process (see `browser.rs`), so one
//! DevTools session reaches them all. Each frame's world is made once and kept until its
//! document goes (a call on a world that is gone makes a new one and tries once more).

use chromiumoxide::cdp::browser_protocol::dom::{
    DescribeNodeParams, GetFrameOwnerParams, ResolveNodeParams,
};
use chromiumoxide::cdp::browser_protocol::page::{FrameId, FrameTree, GetFrameTreeParams};
use chromiumoxide::cdp::js_protocol::runtime::{
    CallFunctionOnParams, EvaluateParams, ExecutionContextId, RemoteObjectId,
};

use crate::error::ScanError;

use super::journey::Journey;
use super::*;

/// A call made in a frame's isolated world.
type WorldCall<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ScanError>> + Send + 'a>>;

/// A frame of the tab now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    pub id: String,
    /// The frame that holds it; `None` for the tab's main frame.
    pub parent: Option<String>,
    pub url: String,
}

/// Where an element's content box starts in its frame's viewport (CSS pixels), as
/// `getBoundingClientRect` plus borders and padding: the origin of an iframe's document.
const CONTENT_ORIGIN_JS: &str = "function () { const r = this.getBoundingClientRect(); \
    const s = getComputedStyle(this); \
    return { x: r.left + this.clientLeft + parseFloat(s.paddingLeft || 0), \
             y: r.top + this.clientTop + parseFloat(s.paddingTop || 0) }; }";

impl Journey<'_> {
    /// The tab's frames now, the main frame first.
    pub async fn frames(&self) -> Result<Vec<FrameInfo>, ScanError> {
        let tree = call(
            "reading frames",
            self.page().execute(GetFrameTreeParams::default()),
        )
        .await?
        .result
        .frame_tree;
        let mut out = Vec::new();
        walk(&tree, None, &mut out);
        Ok(out)
    }

    /// Evaluates `expression` in an isolated world of the frame `frame_id`; a promise is
    /// awaited. `None` when it threw.
    pub async fn evaluate_in_frame(
        &self,
        frame_id: &str,
        expression: &str,
    ) -> Result<Option<serde_json::Value>, ScanError> {
        self.in_world(frame_id, |world| {
            Box::pin(evaluate(self.page(), world, expression))
        })
        .await
    }

    /// Runs `call` with the frame's isolated world; if it fails (the world went with its
    /// document), once more with a new world.
    async fn in_world<'a, T>(
        &'a self,
        frame_id: &str,
        call: impl Fn(ExecutionContextId) -> WorldCall<'a, T>,
    ) -> Result<T, ScanError> {
        let cached = self.worlds().get(frame_id).copied();
        if let Some(world) = cached {
            match call(world).await {
                Ok(value) => return Ok(value),
                Err(_) => {
                    self.worlds().remove(frame_id);
                }
            }
        }
        let world = isolated_world(self.page(), &FrameId::new(frame_id.to_owned())).await?;
        self.worlds().insert(frame_id.to_owned(), world);
        call(world).await
    }

    fn worlds(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, ExecutionContextId>> {
        self.frame_worlds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The frame held by the first `<iframe>` (or `<frame>`) element matching `css` in the frame
    /// `parent`; `None` when there is no such element or it holds no document yet.
    pub async fn child_frame(&self, parent: &str, css: &str) -> Result<Option<String>, ScanError> {
        let expression = format!(
            "(() => {{ const el = document.querySelector({css}); \
             return el && (el.tagName === 'IFRAME' || el.tagName === 'FRAME') ? el : null; }})()",
            css = serde_json::Value::from(css)
        );
        let expression = &expression;
        let result = self
            .in_world(parent, |world| {
                Box::pin(async move {
                    let params = EvaluateParams::builder()
                        .expression(expression.as_str())
                        .context_id(world)
                        .build()
                        .map_err(ScanError::Protocol)?;
                    Ok(call("finding a frame", self.page().execute(params))
                        .await?
                        .result)
                })
            })
            .await?;
        if result.exception_details.is_some() {
            return Ok(None);
        }
        let Some(object_id) = result.result.object_id else {
            return Ok(None);
        };
        let node = call(
            "finding a frame",
            self.page()
                .execute(DescribeNodeParams::builder().object_id(object_id).build()),
        )
        .await?
        .result
        .node;
        Ok(node.frame_id.map(|id| id.inner().clone()))
    }

    /// Where the document of frame `frame_id` starts in the tab's viewport: the sum of its
    /// owner elements' content origins up to the main frame. `frames` is the tab's frames, as
    /// [`Journey::frames`] read them a moment ago. `None` for a frame whose owner is gone.
    pub async fn frame_origin(
        &self,
        frames: &[FrameInfo],
        frame_id: &str,
    ) -> Result<Option<(f64, f64)>, ScanError> {
        let (mut x, mut y) = (0.0, 0.0);
        let mut current = frame_id.to_owned();
        for _ in 0..frames.len() {
            let Some(frame) = frames.iter().find(|f| f.id == current) else {
                return Ok(None);
            };
            let Some(parent) = &frame.parent else {
                return Ok(Some((x, y)));
            };
            let Some((dx, dy)) = self.owner_origin(&frame.id, parent).await? else {
                return Ok(None);
            };
            (x, y) = (x + dx, y + dy);
            current = parent.clone();
        }
        Ok(None)
    }

    /// Where the owner element of `frame_id` has its content box in `parent`'s viewport.
    async fn owner_origin(
        &self,
        frame_id: &str,
        parent: &str,
    ) -> Result<Option<(f64, f64)>, ScanError> {
        let owner = call(
            "finding a frame's owner",
            self.page()
                .execute(GetFrameOwnerParams::new(FrameId::new(frame_id.to_owned()))),
        )
        .await?
        .result;
        let node = owner.backend_node_id;
        let resolved = self
            .in_world(parent, |world| {
                Box::pin(async move {
                    Ok(call(
                        "finding a frame's owner",
                        self.page().execute(
                            ResolveNodeParams::builder()
                                .backend_node_id(node)
                                .execution_context_id(world)
                                .build(),
                        ),
                    )
                    .await?
                    .result
                    .object)
                })
            })
            .await?;
        let Some(object_id) = resolved.object_id else {
            return Ok(None);
        };
        self.content_origin(object_id).await
    }

    async fn content_origin(
        &self,
        object: RemoteObjectId,
    ) -> Result<Option<(f64, f64)>, ScanError> {
        let params = CallFunctionOnParams::builder()
            .function_declaration(CONTENT_ORIGIN_JS)
            .object_id(object)
            .return_by_value(true)
            .build()
            .map_err(ScanError::Protocol)?;
        let value = call("measuring a frame", self.page().execute(params))
            .await?
            .result
            .result
            .value;
        let at = |key: &str| {
            value
                .as_ref()
                .and_then(|v| v.get(key))
                .and_then(|v| v.as_f64())
        };
        Ok(at("x").zip(at("y")))
    }
}

fn walk(tree: &FrameTree, parent: Option<&str>, out: &mut Vec<FrameInfo>) {
    let id = tree.frame.id.inner().clone();
    out.push(FrameInfo {
        id: id.clone(),
        parent: parent.map(str::to_owned),
        url: tree.frame.url.clone(),
    });
    for child in tree.child_frames.iter().flatten() {
        walk(child, Some(&id), out);
    }
}
