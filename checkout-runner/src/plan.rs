//! The step language: a YAML document read into a checked [`Plan`], or every problem found in it,
//! each with its line and column, before anything runs.

use std::fmt;
use std::time::Duration;

use scanner::url_pattern::{glob_matches, path_and_query};

use crate::yaml::{self, Node, Position, Value};

/// The per-step timeout when neither the test nor the step sets one.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// The whole run's time budget when the test sets none, and the most it may set.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(180);
pub const MAX_BUDGET: Duration = Duration::from_secs(600);
pub const MAX_STEPS: usize = 200;
/// Problems reported at most; past that the document is too broken to list them all.
const MAX_PROBLEMS: usize = 25;
/// Frames a selector may go into, one inside the other.
const MAX_FRAME_DEPTH: usize = 4;

/// A checked checkout test, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: Option<String>,
    /// Hosts whose pages the test may open; empty means "the target's host only".
    pub allowed_hosts: Vec<HostPattern>,
    pub budget: Duration,
    /// Fail the step during which the page throws or logs a JavaScript error
    /// (`fail_on_console_errors: true`); off by default, as most shops log some.
    pub fail_on_console_errors: bool,
    pub steps: Vec<Step>,
}

impl Plan {
    /// The names of the secrets the steps fill in, each once, in order of first use.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for step in &self.steps {
            if let Action::Fill {
                value: FillValue::Secret(name),
                ..
            } = &step.action
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based position in the test.
    pub number: usize,
    pub line: usize,
    pub name: Option<String>,
    pub timeout: Duration,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a URL; a path is taken relative to the target's URL.
    Goto {
        url: String,
    },
    Click {
        target: Selector,
    },
    /// Move the pointer over an element (menus that open on hover).
    Hover {
        target: Selector,
    },
    Fill {
        target: Selector,
        value: FillValue,
    },
    /// Choose an option of a `<select>` by its value or its visible label.
    Select {
        target: Selector,
        option: String,
    },
    Check {
        target: Selector,
        checked: bool,
    },
    Press {
        key: Key,
        target: Option<Selector>,
    },
    WaitFor(Condition),
    /// The element's (or the page's) visible text contains `text`.
    AssertText {
        target: Option<Selector>,
        text: String,
    },
    AssertUrl {
        pattern: UrlPattern,
    },
    AssertVisible {
        target: Selector,
    },
    /// No element matching is visible (absent or hidden).
    AssertNotVisible {
        target: Selector,
    },
    /// The element's (or the page's) visible text does not contain `text`.
    AssertNoText {
        target: Option<Selector>,
        text: String,
    },
    AssertCount {
        target: Selector,
        count: usize,
    },
    Screenshot {
        name: String,
    },
    /// Ends the run successfully; nothing after it runs.
    Stop {
        reason: Option<String>,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Goto { .. } => "goto",
            Action::Click { .. } => "click",
            Action::Hover { .. } => "hover",
            Action::Fill { .. } => "fill",
            Action::Select { .. } => "select",
            Action::Check { .. } => "check",
            Action::Press { .. } => "press",
            Action::WaitFor(_) => "wait_for",
            Action::AssertText { .. } => "assert_text",
            Action::AssertUrl { .. } => "assert_url",
            Action::AssertVisible { .. } => "assert_visible",
            Action::AssertNotVisible { .. } => "assert_not_visible",
            Action::AssertNoText { .. } => "assert_no_text",
            Action::AssertCount { .. } => "assert_count",
            Action::Screenshot { .. } => "screenshot",
            Action::Stop { .. } => "stop",
        }
    }

    /// The element the step acts on or checks, if it names one.
    pub fn target(&self) -> Option<&Selector> {
        match self {
            Action::Click { target }
            | Action::Hover { target }
            | Action::Fill { target, .. }
            | Action::Select { target, .. }
            | Action::Check { target, .. }
            | Action::AssertVisible { target }
            | Action::AssertNotVisible { target }
            | Action::AssertCount { target, .. } => Some(target),
            Action::Press { target, .. }
            | Action::AssertText { target, .. }
            | Action::AssertNoText { target, .. } => target.as_ref(),
            Action::WaitFor(Condition::Visible(target) | Condition::Hidden(target)) => Some(target),
            Action::Goto { .. }
            | Action::WaitFor(_)
            | Action::AssertUrl { .. }
            | Action::Screenshot { .. }
            | Action::Stop { .. } => None,
        }
    }

    /// A one-line description for the run view. Never contains a secret's value: only its name.
    pub fn describe(&self) -> String {
        match self {
            Action::Goto { url } => format!("open {url}"),
            Action::Click { target } => format!("click {target}"),
            Action::Hover { target } => format!("hover over {target}"),
            Action::Fill {
                target,
                value: FillValue::Literal(value),
            } => format!("fill {target} with {value:?}"),
            Action::Fill {
                target,
                value: FillValue::Secret(name),
            } => format!("fill {target} with secret {name}"),
            Action::Select { target, option } => format!("select {option:?} in {target}"),
            Action::Check { target, checked } => {
                format!("{} {target}", if *checked { "check" } else { "uncheck" })
            }
            Action::Press { key, target: None } => format!("press {}", key.name()),
            Action::Press {
                key,
                target: Some(target),
            } => format!("press {} in {target}", key.name()),
            Action::WaitFor(condition) => format!("wait for {condition}"),
            Action::AssertText { target: None, text } => format!("page shows {text:?}"),
            Action::AssertText {
                target: Some(target),
                text,
            } => format!("{target} shows {text:?}"),
            Action::AssertUrl { pattern } => format!("URL matches {}", pattern.0),
            Action::AssertVisible { target } => format!("{target} is visible"),
            Action::AssertNotVisible { target } => format!("{target} is not visible"),
            Action::AssertNoText { target: None, text } => format!("page does not show {text:?}"),
            Action::AssertNoText {
                target: Some(target),
                text,
            } => format!("{target} does not show {text:?}"),
            Action::AssertCount { target, count } => format!("{count} × {target}"),
            Action::Screenshot { name } => format!("screenshot {name:?}"),
            Action::Stop { reason: None } => "stop".into(),
            Action::Stop {
                reason: Some(reason),
            } => format!("stop: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FillValue {
    Literal(String),
    /// The name of a sealed secret, opened only by the runner.
    Secret(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Visible(Selector),
    /// No element matching is visible any more (a spinner gone, a dialog closed).
    Hidden(Selector),
    Url(UrlPattern),
    Text(String),
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Visible(selector) => write!(f, "{selector} to be visible"),
            Condition::Hidden(selector) => write!(f, "{selector} to be hidden"),
            Condition::Url(pattern) => write!(f, "the URL to match {}", pattern.0),
            Condition::Text(text) => write!(f, "the text {text:?}"),
        }
    }
}

/// How a step finds its element: in the tab's document, or inside the frames named first
/// (`frame=#payment-iframe >> #card-number`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The frames to go into, outermost first; empty for the tab's own document.
    pub frames: Vec<FrameRef>,
    pub element: Element,
}

/// How a step finds an element within one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// `#id`, `.class`, any CSS selector (also written `css=…`).
    Css(String),
    /// `text=Place order`: the innermost visible element whose text is exactly this, ignoring
    /// case and surrounding space.
    Text(String),
    /// `test=checkout`: an element with `data-test`, `data-testid` or `data-test-id` equal to this.
    TestId(String),
    /// `role=button[name="Checkout"]`: a visible element with this ARIA role (explicit or
    /// implied by its tag) and, if given, this accessible name (exactly, ignoring case and
    /// surrounding space).
    Role { role: String, name: Option<String> },
}

/// One frame of a selector's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameRef {
    /// `frame=#payment-iframe`: the frame held by the first `<iframe>` matching this CSS.
    Css(String),
    /// `frame-url=https://js.stripe.com/*`: the first child frame whose document's URL matches.
    Url(UrlPattern),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for frame in &self.frames {
            match frame {
                FrameRef::Css(css) => write!(f, "frame={css} >> ")?,
                FrameRef::Url(pattern) => write!(f, "frame-url={} >> ", pattern.0)?,
            }
        }
        match &self.element {
            Element::Css(css) => write!(f, "{css}"),
            Element::Text(text) => write!(f, "text={text}"),
            Element::TestId(id) => write!(f, "test={id}"),
            Element::Role { role, name: None } => write!(f, "role={role}"),
            Element::Role {
                role,
                name: Some(name),
            } => write!(f, "role={role}[name={name:?}]"),
        }
    }
}

impl Selector {
    /// An element of the tab's own document found by CSS.
    pub fn css(css: impl Into<String>) -> Self {
        Element::Css(css.into()).into()
    }

    /// An element of the tab's own document found by its text.
    pub fn text(text: impl Into<String>) -> Self {
        Element::Text(text.into()).into()
    }

    /// What the page-side helper receives (the element part; the runner enters the frames).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.element {
            Element::Css(css) => serde_json::json!({"css": css}),
            Element::Text(text) => serde_json::json!({"text": text}),
            Element::TestId(id) => serde_json::json!({"test": id}),
            Element::Role { role, name } => serde_json::json!({"role": role, "name": name}),
        }
    }
}

impl From<Element> for Selector {
    fn from(element: Element) -> Self {
        Selector {
            frames: Vec::new(),
            element,
        }
    }
}

/// A URL pattern where `*` stands for any run of characters. A pattern that starts with `/` is
/// matched against the URL's path and query, any other against the whole URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern(pub String);

impl UrlPattern {
    pub fn matches(&self, url: &str) -> bool {
        let subject = if self.0.starts_with('/') {
            match url::Url::parse(url) {
                Ok(url) => path_and_query(&url),
                Err(_) => return false,
            }
        } else {
            url.to_owned()
        };
        glob_matches(&self.0, &subject)
    }
}

/// A host a test may open pages on: `shop.example` or `*.shop.example` (any subdomain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(pub String);

impl HostPattern {
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(parent) => host.ends_with(&format!(".{parent}")),
            None => host == self.0,
        }
    }
}

/// Keys `press` can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Enter,
    Tab,
    Escape,
    Space,
    Backspace,
    ArrowUp,
    ArrowDown,
    ArrowLeft,
    ArrowRight,
}

impl Key {
    pub const ALL: [Key; 9] = [
        Key::Enter,
        Key::Tab,
        Key::Escape,
        Key::Space,
        Key::Backspace,
        Key::ArrowUp,
        Key::ArrowDown,
        Key::ArrowLeft,
        Key::ArrowRight,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Key::Enter => "Enter",
            Key::Tab => "Tab",
            Key::Escape => "Escape",
            Key::Space => "Space",
            Key::Backspace => "Backspace",
            Key::ArrowUp => "ArrowUp",
            Key::ArrowDown => "ArrowDown",
            Key::ArrowLeft => "ArrowLeft",
            Key::ArrowRight => "ArrowRight",
        }
    }

    /// DOM `key`, Windows virtual key code, and the text the key types, as DevTools wants them.
    pub fn dom(self) -> (&'static str, i64, Option<&'static str>) {
        match self {
            Key::Enter => ("Enter", 13, Some("\r")),
            Key::Tab => ("Tab", 9, None),
            Key::Escape => ("Escape", 27, None),
            Key::Space => (" ", 32, Some(" ")),
            Key::Backspace => ("Backspace", 8, None),
            Key::ArrowUp => ("ArrowUp", 38, None),
            Key::ArrowDown => ("ArrowDown", 40, None),
            Key::ArrowLeft => ("ArrowLeft", 37, None),
            Key::ArrowRight => ("ArrowRight", 39, None),
        }
    }
}

/// One problem in a test document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct PlanError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every problem found in a test document, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PlanErrors(pub Vec<PlanError>);

const STEP_KINDS: [&str; 16] = [
    "goto",
    "click",
    "hover",
    "fill",
    "select",
    "check",
    "press",
    "wait_for",
    "assert_text",
    "assert_url",
    "assert_visible",
    "assert_not_visible",
    "assert_no_text",
    "assert_count",
    "screenshot",
    "stop",
];

/// Reads and checks a test document.
pub fn parse(text: &str) -> Result<Plan, PlanErrors> {
    let root = match yaml::read(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(PlanErrors(vec![PlanError {
                line: 1,
                column: 1,
                message: "the test is empty; it needs at least `steps:` with one step".into(),
            }]));
        }
        Err(e) => {
            return Err(PlanErrors(vec![PlanError {
                line: e.at.line,
                column: e.at.column,
                message: e.message,
            }]));
        }
    };
    let mut reader = Reader::default();
    let plan = reader.plan(&root);
    match plan {
        Some(plan) if reader.problems.is_empty() => Ok(plan),
        _ => {
            reader.problems.truncate(MAX_PROBLEMS);
            Err(PlanErrors(reader.problems))
        }
    }
}

#[derive(Default)]
struct Reader {
    problems: Vec<PlanError>,
}

impl Reader {
    fn problem(&mut self, at: Position, message: impl Into<String>) {
        self.problems.push(PlanError {
            line: at.line,
            column: at.column,
            message: message.into(),
        });
    }

    /// The pairs of a mapping, or a problem saying what was expected.
    fn mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Node, Node)]> {
        match &node.value {
            Value::Mapping(pairs) => {
                let mut seen: Vec<&str> = Vec::new();
                for (key, _) in pairs {
                    match key.scalar() {
                        Some(name) if seen.contains(&name) => {
                            self.problem(key.at, format!("`{name}` is given twice"))
                        }
                        Some(name) => seen.push(name),
                        None => self.problem(key.at, "keys must be plain names"),
                    }
                }
                Some(pairs)
            }
            _ => {
                self.problem(
                    node.at,
                    format!("{what} must be a mapping, not {}", node.describe()),
                );
                None
            }
        }
    }

    fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.scalar() {
            Some(text) if !node.is_null() && !text.trim().is_empty() => {
                if text.chars().count() > 2_000 {
                    self.problem(node.at, format!("{what} is longer than 2,000 characters"));
                    return None;
                }
                Some(text.to_owned())
            }
            _ => {
                self.problem(
                    node.at,
                    format!("{what} must be some text, not {}", node.describe()),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str, max: Duration) -> Option<Duration> {
        let text = self.text(node, what)?;
        let parsed = parse_duration(&text);
        match parsed {
            Some(d) if d.is_zero() => {
                self.problem(node.at, format!("{what} must be more than zero"));
                None
            }
            Some(d) if d > max => {
                self.problem(
                    node.at,
                    format!(
                        "{what} {text} is longer than the most allowed, {} s",
                        max.as_secs()
                    ),
                );
                None
            }
            Some(d) => Some(d),
            None => {
                self.problem(
                    node.at,
                    format!("{what} {text:?} is not a duration; write e.g. 500ms, 10s or 2m"),
                );
                None
            }
        }
    }

    fn selector(&mut self, node: &Node, what: &str) -> Option<Selector> {
        let text = self.text(node, what)?;
        let mut parts: Vec<&str> = text.split(" >> ").map(str::trim).collect();
        let last = parts.pop().unwrap_or_default();
        let mut frames = Vec::new();
        for part in parts {
            let frame = if let Some(css) = part.strip_prefix("frame=") {
                if scraper::Selector::parse(css.trim()).is_err() || css.trim().is_empty() {
                    self.problem(
                        node.at,
                        format!("{what}: frame={css:?} is not a valid CSS selector"),
                    );
                    return None;
                }
                FrameRef::Css(css.trim().to_owned())
            } else if let Some(pattern) = part.strip_prefix("frame-url=") {
                if pattern.trim().is_empty() {
                    self.problem(node.at, format!("{what} has nothing after `frame-url=`"));
                    return None;
                }
                FrameRef::Url(UrlPattern(pattern.trim().to_owned()))
            } else {
                self.problem(
                    node.at,
                    format!(
                        "{what}: {part:?} is not a frame; each part before `>>` is frame=CSS or frame-url=PATTERN"
                    ),
                );
                return None;
            };
            frames.push(frame);
        }
        if frames.len() > MAX_FRAME_DEPTH {
            self.problem(
                node.at,
                format!("{what} goes into more than {MAX_FRAME_DEPTH} frames"),
            );
            return None;
        }
        let element = if let Some(text) = last.strip_prefix("text=") {
            Element::Text(text.trim().to_owned())
        } else if let Some(id) = last.strip_prefix("test=") {
            Element::TestId(id.trim().to_owned())
        } else if let Some(role) = last.strip_prefix("role=") {
            match parse_role(role.trim()) {
                Ok(element) => element,
                Err(problem) => {
                    self.problem(node.at, format!("{what}: {problem}"));
                    return None;
                }
            }
        } else {
            let css = last.strip_prefix("css=").unwrap_or(last).trim().to_owned();
            if scraper::Selector::parse(&css).is_err() {
                self.problem(
                    node.at,
                    format!("{what} {css:?} is not a valid CSS selector; prefix text=, test= or role= to match by text, data-test or role and name, and frame=CSS >> to look inside a frame"),
                );
                return None;
            }
            Element::Css(css)
        };
        if matches!(&element, Element::Text(t) | Element::TestId(t) if t.is_empty()) {
            self.problem(node.at, format!("{what} has nothing after its `=`"));
            return None;
        }
        Some(Selector { frames, element })
    }

    fn plan(&mut self, root: &Node) -> Option<Plan> {
        let pairs = self.mapping(root, "a checkout test")?;
        let mut plan = Plan {
            name: None,
            allowed_hosts: Vec::new(),
            budget: DEFAULT_BUDGET,
            fail_on_console_errors: false,
            steps: Vec::new(),
        };
        let mut default_timeout = DEFAULT_STEP_TIMEOUT;
        let mut steps_node = None;
        for (key, value) in pairs {
            match key.scalar().unwrap_or_default() {
                "name" => plan.name = self.text(value, "`name`"),
                "allowed_hosts" => plan.allowed_hosts = self.hosts(value),
                "timeout" => {
                    if let Some(d) = self.duration(value, "`timeout`", MAX_STEP_TIMEOUT) {
                        default_timeout = d;
                    }
                }
                "budget" => {
                    if let Some(d) = self.duration(value, "`budget`", MAX_BUDGET) {
                        plan.budget = d;
                    }
                }
                "fail_on_console_errors" => match value.scalar() {
                    Some("true") => plan.fail_on_console_errors = true,
                    Some("false") => plan.fail_on_console_errors = false,
                    _ => self.problem(value.at, "`fail_on_console_errors` must be true or false"),
                },
                "steps" => steps_node = Some(value),
                other => self.problem(
                    key.at,
                    format!(
                        "unknown setting `{other}`; a test has name, allowed_hosts, timeout, budget, fail_on_console_errors and steps"
                    ),
                ),
            }
        }
        let Some(steps_node) = steps_node else {
            self.problem(Position { line: 1, column: 1 }, "the test has no `steps:`");
            return None;
        };
        let Value::Sequence(items) = &steps_node.value else {
            self.problem(
                steps_node.at,
                format!("`steps` must be a list, not {}", steps_node.describe()),
            );
            return None;
        };
        if items.is_empty() {
            self.problem(steps_node.at, "`steps` is empty; add at least one step");
        }
        if items.len() > MAX_STEPS {
            self.problem(
                steps_node.at,
                format!("{} steps; a test has at most {MAX_STEPS}", items.len()),
            );
            return None;
        }
        for (index, item) in items.iter().enumerate() {
            if let Some(step) = self.step(index + 1, item, default_timeout) {
                plan.steps.push(step);
            }
        }
        Some(plan)
    }

    fn hosts(&mut self, node: &Node) -> Vec<HostPattern> {
        let Value::Sequence(items) = &node.value else {
            self.problem(
                node.at,
                format!(
                    "`allowed_hosts` must be a list of host names, not {}",
                    node.describe()
                ),
            );
            return Vec::new();
        };
        let mut hosts = Vec::new();
        for item in items {
            let Some(text) = self.text(item, "a host") else {
                continue;
            };
            let host = text.trim().trim_end_matches('.').to_ascii_lowercase();
            let bare = host.strip_prefix("*.").unwrap_or(&host);
            let valid = !bare.is_empty()
                && !bare.contains('*')
                && url::Host::parse(bare).is_ok()
                && !bare.contains(['/', ':', '@', ' ']);
            if valid {
                hosts.push(HostPattern(host));
            } else {
                self.problem(
                    item.at,
                    format!("{text:?} is not a host name; write shop.example or *.shop.example"),
                );
            }
        }
        hosts
    }

    fn step(&mut self, number: usize, node: &Node, default_timeout: Duration) -> Option<Step> {
        // `- stop` on its own is the one step written without a value.
        if node.scalar() == Some("stop") {
            return Some(Step {
                number,
                line: node.at.line,
                name: None,
                timeout: default_timeout,
                action: Action::Stop { reason: None },
            });
        }
        let Value::Mapping(_) = &node.value else {
            self.problem(
                node.at,
                format!(
                    "step {number} must be a mapping like `- click: \"#buy\"`, not {}",
                    node.describe()
                ),
            );
            return None;
        };
        let pairs = self.mapping(node, "a step")?;
        let mut name = None;
        let mut timeout = default_timeout;
        let mut action: Option<(&Node, &Node)> = None;
        let mut unknown = false;
        for (key, value) in pairs {
            let key_text = key.scalar().unwrap_or_default();
            match key_text {
                "name" => name = self.text(value, "a step's `name`"),
                "timeout" => {
                    if let Some(d) = self.duration(value, "`timeout`", MAX_STEP_TIMEOUT) {
                        timeout = d;
                    }
                }
                kind if STEP_KINDS.contains(&kind) => {
                    if let Some((first, _)) = action {
                        self.problem(
                            key.at,
                            format!(
                                "step {number} has two actions, `{}` and `{kind}`; give each its own `-` entry",
                                first.scalar().unwrap_or_default()
                            ),
                        );
                    } else {
                        action = Some((key, value));
                    }
                }
                other => {
                    unknown = true;
                    self.problem(key.at, unknown_step(other));
                }
            }
        }
        let Some((key, value)) = action else {
            if unknown {
                return None;
            }
            self.problem(
                node.at,
                format!(
                    "step {number} has no action; use one of {}",
                    STEP_KINDS.join(", ")
                ),
            );
            return None;
        };
        let action = self.action(key.scalar().unwrap_or_default(), value)?;
        Some(Step {
            number,
            line: key.at.line,
            name,
            timeout,
            action,
        })
    }

    /// The fields of an action written as a mapping, each known; unknown ones are problems.
    fn fields<'n>(
        &mut self,
        kind: &str,
        node: &'n Node,
        known: &[&str],
    ) -> Option<Vec<(&'n str, &'n Node)>> {
        let pairs = self.mapping(node, &format!("`{kind}`"))?;
        let mut out = Vec::new();
        for (key, value) in pairs {
            let name = key.scalar().unwrap_or_default();
            if known.contains(&name) {
                out.push((name, value));
            } else {
                self.problem(
                    key.at,
                    format!(
                        "`{kind}` has no field `{name}`; it takes {}",
                        known.join(", ")
                    ),
                );
            }
        }
        Some(out)
    }

    fn required<'n>(
        &mut self,
        kind: &str,
        at: Position,
        fields: &[(&str, &'n Node)],
        name: &str,
    ) -> Option<&'n Node> {
        let found = fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        if found.is_none() {
            self.problem(at, format!("`{kind}` needs `{name}`"));
        }
        found
    }

    fn action(&mut self, kind: &str, value: &Node) -> Option<Action> {
        let is_mapping = matches!(value.value, Value::Mapping(_));
        match kind {
            "goto" => {
                let url = self.text(value, "`goto`")?;
                let absolute = url::Url::parse(&url).ok();
                match absolute {
                    Some(u) if !matches!(u.scheme(), "http" | "https") => {
                        self.problem(
                            value.at,
                            format!("`goto` {url:?}: only http and https URLs"),
                        );
                        None
                    }
                    Some(_) => Some(Action::Goto { url }),
                    None if url.starts_with('/') => Some(Action::Goto { url }),
                    None => {
                        self.problem(
                            value.at,
                            format!(
                                "`goto` {url:?} is neither a full URL nor a path starting with /"
                            ),
                        );
                        None
                    }
                }
            }
            "click" => Some(Action::Click {
                target: self.selector(value, "`click`")?,
            }),
            "hover" => Some(Action::Hover {
                target: self.selector(value, "`hover`")?,
            }),
            "assert_visible" => Some(Action::AssertVisible {
                target: self.selector(value, "`assert_visible`")?,
            }),
            "assert_not_visible" => Some(Action::AssertNotVisible {
                target: self.selector(value, "`assert_not_visible`")?,
            }),
            "assert_url" => Some(Action::AssertUrl {
                pattern: UrlPattern(self.text(value, "`assert_url`")?),
            }),
            "fill" => {
                let fields = self.fields(kind, value, &["selector", "value", "secret"])?;
                let selector = self.required(kind, value.at, &fields, "selector");
                let literal = fields.iter().find(|(n, _)| *n == "value");
                let secret = fields.iter().find(|(n, _)| *n == "secret");
                let fill = match (literal, secret) {
                    (Some(_), Some((_, s))) => {
                        self.problem(s.at, "`fill` takes either `value` or `secret`, not both");
                        None
                    }
                    (Some((_, v)), None) => match v.scalar() {
                        // An empty value clears the field.
                        Some(_) if v.is_null() => Some(FillValue::Literal(String::new())),
                        Some(text) => Some(FillValue::Literal(text.to_owned())),
                        None => {
                            self.problem(v.at, "`value` must be text");
                            None
                        }
                    },
                    (None, Some((_, s))) => {
                        let name = self.text(s, "`secret`")?;
                        if valid_secret_name(&name) {
                            Some(FillValue::Secret(name))
                        } else {
                            self.problem(s.at, secret_name_problem(&name));
                            None
                        }
                    }
                    (None, None) => {
                        self.problem(value.at, "`fill` needs `value` or `secret`");
                        None
                    }
                };
                let target = self.selector(selector?, "`selector`")?;
                Some(Action::Fill {
                    target,
                    value: fill?,
                })
            }
            "select" => {
                let fields = self.fields(kind, value, &["selector", "option"])?;
                let selector = self.required(kind, value.at, &fields, "selector");
                let option = self.required(kind, value.at, &fields, "option");
                let target = self.selector(selector?, "`selector`");
                let option = self.text(option?, "`option`");
                Some(Action::Select {
                    target: target?,
                    option: option?,
                })
            }
            "check" if !is_mapping => Some(Action::Check {
                target: self.selector(value, "`check`")?,
                checked: true,
            }),
            "check" => {
                let fields = self.fields(kind, value, &["selector", "checked"])?;
                let selector = self.required(kind, value.at, &fields, "selector");
                let checked = match fields.iter().find(|(n, _)| *n == "checked") {
                    None => Some(true),
                    Some((_, v)) => match v.scalar() {
                        Some("true") => Some(true),
                        Some("false") => Some(false),
                        _ => {
                            self.problem(v.at, "`checked` must be true or false");
                            None
                        }
                    },
                };
                let target = self.selector(selector?, "`selector`")?;
                Some(Action::Check {
                    target,
                    checked: checked?,
                })
            }
            "press" => {
                let (key_node, target) = if is_mapping {
                    let fields = self.fields(kind, value, &["key", "selector"])?;
                    let key = self.required(kind, value.at, &fields, "key")?;
                    let target = match fields.iter().find(|(n, _)| *n == "selector") {
                        Some((_, s)) => Some(self.selector(s, "`selector`")?),
                        None => None,
                    };
                    (key, target)
                } else {
                    (value, None)
                };
                let name = self.text(key_node, "`key`")?;
                let Some(key) = Key::ALL
                    .iter()
                    .find(|k| k.name().eq_ignore_ascii_case(&name))
                else {
                    let names: Vec<&str> = Key::ALL.iter().map(|k| k.name()).collect();
                    self.problem(
                        key_node.at,
                        format!("unknown key {name:?}; `press` knows {}", names.join(", ")),
                    );
                    return None;
                };
                Some(Action::Press { key: *key, target })
            }
            "wait_for" => {
                let fields = self.fields(kind, value, &["visible", "hidden", "url", "text"])?;
                if fields.len() != 1 {
                    self.problem(
                        value.at,
                        "`wait_for` takes exactly one of `visible`, `hidden`, `url` or `text`",
                    );
                    return None;
                }
                let (name, node) = fields[0];
                Some(Action::WaitFor(match name {
                    "visible" => Condition::Visible(self.selector(node, "`visible`")?),
                    "hidden" => Condition::Hidden(self.selector(node, "`hidden`")?),
                    "url" => Condition::Url(UrlPattern(self.text(node, "`url`")?)),
                    _ => Condition::Text(self.text(node, "`text`")?),
                }))
            }
            "assert_text" | "assert_no_text" => {
                let (target, text) = if is_mapping {
                    let fields = self.fields(kind, value, &["selector", "text"])?;
                    let text = self.required(kind, value.at, &fields, "text");
                    let target = match fields.iter().find(|(n, _)| *n == "selector") {
                        Some((_, s)) => Some(self.selector(s, "`selector`")?),
                        None => None,
                    };
                    (target, self.text(text?, "`text`")?)
                } else {
                    (None, self.text(value, &format!("`{kind}`"))?)
                };
                Some(if kind == "assert_text" {
                    Action::AssertText { target, text }
                } else {
                    Action::AssertNoText { target, text }
                })
            }
            "assert_count" => {
                let fields = self.fields(kind, value, &["selector", "count"])?;
                let selector = self.required(kind, value.at, &fields, "selector");
                let count = self.required(kind, value.at, &fields, "count");
                let target = self.selector(selector?, "`selector`");
                let count_node = count?;
                let count = match count_node.scalar().and_then(|c| c.parse::<usize>().ok()) {
                    Some(c) if c <= 10_000 => c,
                    _ => {
                        self.problem(
                            count_node.at,
                            "`count` must be a whole number from 0 to 10000",
                        );
                        return None;
                    }
                };
                Some(Action::AssertCount {
                    target: target?,
                    count,
                })
            }
            "screenshot" => {
                let name = if value.is_null() {
                    "screenshot".to_owned()
                } else {
                    self.text(value, "`screenshot`")?
                };
                Some(Action::Screenshot { name })
            }
            "stop" => Some(Action::Stop {
                reason: if value.is_null() {
                    None
                } else {
                    Some(self.text(value, "`stop`")?)
                },
            }),
            _ => None,
        }
    }
}

/// ARIA roles a `role=` selector may name: the widget, landmark and structure roles a journey
/// acts on or checks.
const ROLES: [&str; 36] = [
    "alert",
    "alertdialog",
    "article",
    "banner",
    "button",
    "cell",
    "checkbox",
    "columnheader",
    "combobox",
    "contentinfo",
    "dialog",
    "form",
    "grid",
    "heading",
    "img",
    "link",
    "list",
    "listbox",
    "listitem",
    "main",
    "menu",
    "menuitem",
    "navigation",
    "option",
    "progressbar",
    "radio",
    "region",
    "row",
    "search",
    "searchbox",
    "spinbutton",
    "status",
    "switch",
    "tab",
    "table",
    "textbox",
];

/// `button`, `button[name="Checkout"]`, `button[name='Checkout']` or `button[name=Checkout]`.
fn parse_role(text: &str) -> Result<Element, String> {
    let (role, rest) = match text.find('[') {
        Some(at) => (&text[..at], Some(&text[at..])),
        None => (text, None),
    };
    let role = role.trim().to_ascii_lowercase();
    if !ROLES.contains(&role.as_str()) {
        return Err(if role.is_empty() {
            "nothing after `role=`".into()
        } else {
            format!(
                "{role:?} is not a role a step can use; use one of {}",
                ROLES.join(", ")
            )
        });
    }
    let name = match rest {
        None => None,
        Some(rest) => {
            let inner = rest
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.trim().strip_prefix("name"))
                .and_then(|r| r.trim_start().strip_prefix('='))
                .map(str::trim)
                .ok_or_else(|| {
                    format!("{rest:?} after the role must be [name=\"…\"], e.g. role=button[name=\"Checkout\"]")
                })?;
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| inner.strip_prefix(*q).and_then(|i| i.strip_suffix(*q)))
                .unwrap_or(inner)
                .trim();
            if unquoted.is_empty() {
                return Err("the role's name is empty".into());
            }
            Some(unquoted.to_owned())
        }
    };
    Ok(Element::Role { role, name })
}

fn unknown_step(name: &str) -> String {
    let closest = STEP_KINDS
        .iter()
        .min_by_key(|kind| edit_distance(kind, name))
        .filter(|kind| edit_distance(kind, name) <= 2);
    match closest {
        Some(kind) => format!("unknown step `{name}`; did you mean `{kind}`?"),
        None => format!(
            "unknown step `{name}`; use one of {}",
            STEP_KINDS.join(", ")
        ),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().take(64).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().take(64).enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Secret names are short identifiers: letters, digits and `_`, starting with a letter.
pub fn valid_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn secret_name_problem(name: &str) -> String {
    format!(
        "secret name {name:?} must be 1–64 letters, digits or _, starting with a letter (e.g. card_number)"
    )
}

/// `500ms`, `10s`, `2m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => n.checked_mul(1_000).map(Duration::from_millis),
        "m" | "min" => n.checked_mul(60_000).map(Duration::from_millis),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
