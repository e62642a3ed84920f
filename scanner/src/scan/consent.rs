//! Answering the cookie banner when the scan's consent mode asks for it: find the banner's
//! "accept all" or "reject all" control (known consent platforms first, then by its text) and click
//! it — with a real mouse event in the main frame, from the frame's own isolated world in iframes.

use std::collections::HashMap;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchMouseEventParams, DispatchMouseEventType, MouseButton,
};
use chromiumoxide::cdp::browser_protocol::page::FrameId;

use crate::error::ScanError;
use crate::snapshot::{ConsentClick, ConsentMode};

use super::*;

const CONSENT_JS: &str = include_str!("../capture/consent.js");

/// Clicks the banner's control for `mode` in the main frame or, failing that, in a child frame.
/// `None` when no banner control was found (or the mode is to leave the banner alone).
pub(super) async fn answer_banner(
    page: &Page,
    main_frame: &FrameId,
    frame_urls: &HashMap<String, String>,
    mode: ConsentMode,
) -> Result<Option<ConsentClick>, ScanError> {
    let choice = match mode {
        ConsentMode::NoInteraction => return Ok(None),
        ConsentMode::AcceptAll => "accept",
        ConsentMode::RejectAll => "reject",
    };
    let main_world = isolated_world(page, main_frame).await?;
    let script = |click_here: bool| format!("({CONSENT_JS})({choice:?}, {click_here})");
    if let Some(found) = evaluate(page, main_world, &script(false)).await? {
        let Some(target) = Found::from_value(&found) else {
            return Ok(None);
        };
        click_at(page, target.x, target.y).await?;
        let frame_url = frame_urls
            .get(main_frame.inner())
            .cloned()
            .unwrap_or_default();
        return Ok(Some(target.into_click(frame_url)));
    }
    for (frame_id, frame_url) in frame_urls
        .iter()
        .filter(|(id, _)| *id != main_frame.inner())
    {
        let Ok(world) = isolated_world(page, &FrameId::new(frame_id.clone())).await else {
            continue;
        };
        if let Some(found) = evaluate(page, world, &script(true))
            .await?
            .as_ref()
            .and_then(Found::from_value)
        {
            return Ok(Some(found.into_click(frame_url.clone())));
        }
    }
    Ok(None)
}

struct Found {
    matched_by: String,
    label: String,
    x: f64,
    y: f64,
}

impl Found {
    fn from_value(value: &serde_json::Value) -> Option<Self> {
        Some(Self {
            matched_by: value.get("matchedBy")?.as_str()?.chars().take(40).collect(),
            label: value.get("label")?.as_str()?.chars().take(200).collect(),
            x: value.get("x")?.as_f64()?,
            y: value.get("y")?.as_f64()?,
        })
    }

    fn into_click(self, frame_url: String) -> ConsentClick {
        ConsentClick {
            matched_by: self.matched_by,
            label: self.label,
            frame_url,
        }
    }
}

/// A trusted left click, as a visitor's mouse would make it.
async fn click_at(page: &Page, x: f64, y: f64) -> Result<(), ScanError> {
    for kind in [
        DispatchMouseEventType::MouseMoved,
        DispatchMouseEventType::MousePressed,
        DispatchMouseEventType::MouseReleased,
    ] {
        let mut builder = DispatchMouseEventParams::builder()
            .r#type(kind.clone())
            .x(x)
            .y(y);
        if kind != DispatchMouseEventType::MouseMoved {
            builder = builder.button(MouseButton::Left).click_count(1);
        }
        let params = builder.build().map_err(ScanError::Protocol)?;
        call("clicking the consent banner", page.execute(params)).await?;
    }
    Ok(())
}
