//! The benchmark baseline: a plan's steps driven bare through DevTools, the way a hand-written
//! script would — `Page.navigate`, `querySelector(…).click()`, values set in the page, conditions
//! polled — with none of the runner's waits for actionability, masking, per-step screenshots,
//! activity records or page captures. Not for production: it checks nothing and hides nothing.

use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::input::{DispatchKeyEventParams, DispatchKeyEventType};
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, NavigateParams,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use serde_json::{Value, json};

use crate::plan::{Action, Condition, FillValue, Plan};
use crate::run::Secrets;

const POLL: Duration = Duration::from_millis(25);

/// Finds an element the way the plan's selectors do, in the page's own world.
const FIND: &str = r#"(sel) => {
  if (sel.css) return document.querySelector(sel.css);
  if (sel.test) return document.querySelector(`[data-test="${sel.test}"],[data-testid="${sel.test}"]`);
  const want = sel.text.trim().toLowerCase();
  const all = Array.from(document.body.querySelectorAll("*")).filter(e => e.innerText && e.innerText.trim().toLowerCase() === want);
  return all.find(e => !all.some(o => o !== e && e.contains(o))) || null;
}"#;

/// Runs the plan's steps until `stop`; returns how long it took, or the step that went wrong.
pub async fn run(
    page: &Page,
    plan: &Plan,
    secrets: &Secrets,
    base_url: &url::Url,
    step_timeout: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    for step in &plan.steps {
        let until = Instant::now() + step_timeout;
        let failed = |what: &str| format!("step {} ({}): {what}", step.number, step.action.kind());
        let act = |js: String| poll(page, js, until);
        match &step.action {
            Action::Goto { url } => {
                let url = base_url.join(url).map_err(|e| failed(&e.to_string()))?;
                page.execute(NavigateParams::new(url.to_string()))
                    .await
                    .map_err(|e| failed(&e.to_string()))?;
                act("document.readyState === 'complete'".into()).await
            }
            Action::Click { target } => {
                act(format!("(() => {{ const el = ({FIND})({}); if (!el) return false; el.click(); return true; }})()", target.to_json())).await
            }
            Action::Fill { target, value } => {
                let text = match value {
                    FillValue::Literal(text) => text.as_str(),
                    FillValue::Secret(name) => secrets.get(name).unwrap_or_default(),
                };
                act(format!("(() => {{ const el = ({FIND})({}); if (!el) return false; el.value = {}; el.dispatchEvent(new Event('input', {{bubbles: true}})); el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()", target.to_json(), json!(text))).await
            }
            Action::Select { target, option } => {
                act(format!("(() => {{ const el = ({FIND})({}); if (!el) return false; const o = Array.from(el.options).find(o => o.value === {o} || o.label === {o}); if (!o) return false; el.value = o.value; el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()", target.to_json(), o = json!(option))).await
            }
            Action::Check { target, checked } => {
                act(format!("(() => {{ const el = ({FIND})({}); if (!el) return false; if (el.checked !== {checked}) el.click(); return true; }})()", target.to_json())).await
            }
            Action::Press { key, .. } => {
                let (name, code, text) = key.dom();
                for kind in [DispatchKeyEventType::KeyDown, DispatchKeyEventType::KeyUp] {
                    let mut event = DispatchKeyEventParams::builder()
                        .r#type(kind.clone())
                        .key(name)
                        .windows_virtual_key_code(code);
                    if let (DispatchKeyEventType::KeyDown, Some(text)) = (&kind, text) {
                        event = event.text(text);
                    }
                    let event = event.build().map_err(|e| failed(&e))?;
                    page.execute(event).await.map_err(|e| failed(&e.to_string()))?;
                }
                Ok(())
            }
            Action::WaitFor(Condition::Visible(target)) | Action::AssertVisible { target } => {
                act(format!("!!({FIND})({})", target.to_json())).await
            }
            Action::WaitFor(Condition::Hidden(target)) | Action::AssertNotVisible { target } => {
                act(format!("!({FIND})({})", target.to_json())).await
            }
            Action::AssertNoText { target: None, text } => {
                act(format!("!document.body.innerText.includes({})", json!(text))).await
            }
            Action::AssertNoText {
                target: Some(target),
                text,
            } => {
                act(format!("(() => {{ const el = ({FIND})({}); return !el || !el.innerText.includes({}); }})()", target.to_json(), json!(text))).await
            }
            Action::Hover { target } => {
                act(format!("(() => {{ const el = ({FIND})({}); if (!el) return false; el.dispatchEvent(new MouseEvent('mouseover', {{bubbles: true}})); return true; }})()", target.to_json())).await
            }
            Action::WaitFor(Condition::Url(pattern)) | Action::AssertUrl { pattern } => {
                let deadline = until;
                loop {
                    let href = evaluate(page, "location.href").await.unwrap_or(Value::Null);
                    if pattern.matches(href.as_str().unwrap_or_default()) {
                        break Ok(());
                    }
                    if Instant::now() > deadline {
                        break Err(());
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            Action::WaitFor(Condition::Text(text)) | Action::AssertText { target: None, text } => {
                act(format!("document.body.innerText.includes({})", json!(text))).await
            }
            Action::AssertText {
                target: Some(target),
                text,
            } => {
                act(format!("(() => {{ const el = ({FIND})({}); return !!el && el.innerText.includes({}); }})()", target.to_json(), json!(text))).await
            }
            Action::AssertCount { target, count } => {
                let css = match target {
                    crate::plan::Selector { frames, element: crate::plan::Element::Css(css) } if frames.is_empty() => css.clone(),
                    other => return Err(failed(&format!("{other}: only CSS counts in the baseline"))),
                };
                act(format!("document.querySelectorAll({}).length === {count}", json!(css))).await
            }
            Action::Screenshot { .. } => page
                .execute(CaptureScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build())
                .await
                .map(|_| ())
                .map_err(|_| ()),
            Action::Stop { .. } => return Ok(started.elapsed()),
        }
        .map_err(|()| failed("did not succeed in time"))?;
    }
    Ok(started.elapsed())
}

async fn evaluate(page: &Page, expression: &str) -> Option<Value> {
    let params = EvaluateParams::builder()
        .expression(expression)
        .return_by_value(true)
        .build()
        .ok()?;
    page.execute(params).await.ok()?.result.result.value.clone()
}

/// Evaluates `js` until it gives `true` or `until` passes.
async fn poll(page: &Page, js: String, until: Instant) -> Result<(), ()> {
    loop {
        if evaluate(page, &js).await == Some(Value::Bool(true)) {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(());
        }
        tokio::time::sleep(POLL).await;
    }
}
