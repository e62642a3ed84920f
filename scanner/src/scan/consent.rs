//! Answering the cookie banner when the scan's consent mode asks for it: find the banner's
//! "accept all" or "reject all" control (known consent platforms first, then by its wording),
//! waiting for a banner that comes late, and click it — with a real mouse event in the main frame,
//! from the frame's own isolated world in iframes. A refusal the first layer does not offer is
//! given on the second: "manage preferences", every optional purpose off, "save my choices".

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchMouseEventParams, DispatchMouseEventType, MouseButton,
};
use chromiumoxide::cdp::browser_protocol::page::FrameId;

use crate::error::ScanError;
use crate::snapshot::{ConsentClick, ConsentMode};

use super::*;

const CONSENT_JS: &str = include_str!("../capture/consent.js");
const CONSENT_MANAGERS_JS: &str = include_str!("../capture/consent_managers.js");

/// How long after the load event a banner is still waited for.
pub(super) const LATE_BANNER: Duration = Duration::from_secs(3);
/// How often the page is looked at while waiting for a banner or its second layer.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// How long the second layer may take to open after its control was clicked.
const SECOND_LAYER_WITHIN: Duration = Duration::from_secs(2);

/// A banner control found and not yet clicked.
pub(super) struct Located {
    frame_id: String,
    frame_url: String,
    in_main_frame: bool,
    found: Found,
}

/// What answering the banner did.
#[derive(Default)]
pub(super) struct Answer {
    /// The control that gave the answer (on the first or the second layer).
    pub(super) clicked: Option<ConsentClick>,
    /// The first layer's "manage preferences" control, when the answer was given on the second.
    pub(super) settings: Option<ConsentClick>,
    /// The optional purposes switched off on the second layer before saving.
    pub(super) unticked: Vec<String>,
}

/// Looks for the banner's control for `mode` in the main frame, then in child frames, until one
/// shows or `until` passes. `None` also when the mode is to leave the banner alone.
pub(super) async fn locate_banner(
    page: &Page,
    main_frame: &FrameId,
    mode: ConsentMode,
    until: Instant,
) -> Result<Option<Located>, ScanError> {
    let Some(choice) = choice_of(mode) else {
        return Ok(None);
    };
    loop {
        for (frame_id, frame_url) in frames_main_first(page, main_frame).await? {
            let in_main_frame = frame_id == *main_frame.inner();
            let Ok(world) = isolated_world(page, &FrameId::new(frame_id.clone())).await else {
                continue;
            };
            let script = step_script(choice, false, 1);
            if let Some(found) = evaluate(page, world, &script)
                .await?
                .as_ref()
                .and_then(Found::from_value)
            {
                return Ok(Some(Located {
                    frame_id,
                    frame_url,
                    in_main_frame,
                    found,
                }));
            }
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Clicks what [`locate_banner`] found and, when that opened the second layer, answers there.
pub(super) async fn press(
    page: &Page,
    mode: ConsentMode,
    located: Located,
) -> Result<Answer, ScanError> {
    let Some(choice) = choice_of(mode) else {
        return Ok(Answer::default());
    };
    let frame = FrameId::new(located.frame_id.clone());
    let first = click(
        page,
        &frame,
        located.in_main_frame,
        located.found,
        choice,
        1,
    )
    .await?;
    let Some(first) = first else {
        return Ok(Answer::default());
    };
    let click_record = |found: &Found, layer: u8| ConsentClick {
        matched_by: found.matched_by.clone(),
        label: found.label.clone(),
        frame_url: located.frame_url.clone(),
        layer,
    };
    if first.step != Step::Settings {
        return Ok(Answer {
            clicked: Some(click_record(&first, 1)),
            ..Answer::default()
        });
    }
    let settings = Some(click_record(&first, 1));
    let opened = Instant::now();
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let world = isolated_world(page, &frame).await?;
        // The step unticks optional purposes itself; only the final click is left to do.
        let second = evaluate(page, world, &step_script(choice, false, 2))
            .await?
            .as_ref()
            .and_then(Found::from_value);
        if let Some(second) = second {
            let unticked = second.unticked.clone();
            let Some(second) =
                click(page, &frame, located.in_main_frame, second, choice, 2).await?
            else {
                break;
            };
            return Ok(Answer {
                clicked: Some(click_record(&second, 2)),
                settings,
                unticked,
            });
        }
        if opened.elapsed() >= SECOND_LAYER_WITHIN {
            break;
        }
    }
    Ok(Answer {
        settings,
        ..Answer::default()
    })
}

/// Names of the known consent managers whose script or markup any frame of the page has, whether
/// or not a banner showed.
pub(super) async fn consent_managers(
    page: &Page,
    main_frame: &FrameId,
) -> Result<Vec<String>, ScanError> {
    let mut names = BTreeSet::new();
    for (frame_id, _) in frames_main_first(page, main_frame).await? {
        let Ok(world) = isolated_world(page, &FrameId::new(frame_id)).await else {
            continue;
        };
        let found = evaluate(page, world, &format!("({CONSENT_MANAGERS_JS})()")).await?;
        for name in found
            .as_ref()
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
        {
            names.insert(name.chars().take(40).collect::<String>());
        }
    }
    Ok(names.into_iter().collect())
}

fn choice_of(mode: ConsentMode) -> Option<&'static str> {
    match mode {
        ConsentMode::NoInteraction => None,
        ConsentMode::AcceptAll => Some("accept"),
        ConsentMode::RejectAll => Some("reject"),
    }
}

fn step_script(choice: &str, click_here: bool, layer: u8) -> String {
    format!("({CONSENT_JS})({choice:?}, {click_here}, {layer})")
}

/// The page's frames as (id, URL), the main frame first.
async fn frames_main_first(
    page: &Page,
    main_frame: &FrameId,
) -> Result<Vec<(String, String)>, ScanError> {
    let urls: HashMap<String, String> = frame_urls(page).await?;
    let mut frames: Vec<(String, String)> = urls.into_iter().collect();
    frames.sort_by_key(|(id, url)| (id != main_frame.inner(), url.clone(), id.clone()));
    Ok(frames)
}

/// Clicks `found`: a trusted mouse click at its centre in the main frame; in a child frame, the
/// step is taken again with the click made from the frame's own world (its coordinates are the
/// frame's, not the page's). Returns what was clicked, or `None` when it had gone.
async fn click(
    page: &Page,
    frame: &FrameId,
    in_main_frame: bool,
    found: Found,
    choice: &str,
    layer: u8,
) -> Result<Option<Found>, ScanError> {
    if in_main_frame {
        click_at(page, found.x, found.y).await?;
        return Ok(Some(found));
    }
    let world = isolated_world(page, frame).await?;
    let clicked = evaluate(page, world, &step_script(choice, true, layer)).await?;
    Ok(clicked.as_ref().and_then(Found::from_value))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The control gives the answer.
    Answer,
    /// The control opens the second layer.
    Settings,
    /// The second layer's "save my choices", after its optional purposes were switched off.
    Save,
}

struct Found {
    step: Step,
    matched_by: String,
    label: String,
    x: f64,
    y: f64,
    unticked: Vec<String>,
}

impl Found {
    /// The step's result, read as hostile input: bounded strings, known steps only.
    fn from_value(value: &serde_json::Value) -> Option<Self> {
        let step = match value.get("step")?.as_str()? {
            "answer" => Step::Answer,
            "settings" => Step::Settings,
            "save" => Step::Save,
            _ => return None,
        };
        Some(Self {
            step,
            matched_by: value.get("matchedBy")?.as_str()?.chars().take(40).collect(),
            label: value.get("label")?.as_str()?.chars().take(200).collect(),
            x: value.get("x")?.as_f64()?,
            y: value.get("y")?.as_f64()?,
            unticked: value
                .get("unticked")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .take(50)
                .map(|s| s.chars().take(100).collect())
                .collect(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_result_is_read_as_hostile_input() {
        let long = "x".repeat(5000);
        let value = serde_json::json!({
            "step": "save", "matchedBy": long, "label": long, "x": 1.5, "y": 2.0,
            "unticked": vec![long.clone(); 80],
        });
        let found = Found::from_value(&value).expect("a well-formed step");
        assert_eq!(found.step, Step::Save);
        assert_eq!(found.matched_by.chars().count(), 40);
        assert_eq!(found.label.chars().count(), 200);
        assert_eq!(found.unticked.len(), 50);
        assert!(found.unticked.iter().all(|u| u.chars().count() == 100));
        let unknown =
            serde_json::json!({"step": "buy", "matchedBy": "x", "label": "x", "x": 0, "y": 0});
        assert!(Found::from_value(&unknown).is_none());
    }
}
