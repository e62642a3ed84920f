//! A YAML document read into a small tree whose every node knows its line and column.
//!
//! Only what checkout tests need: scalars, sequences and mappings. Anchors, aliases and tags are
//! refused (an alias bomb cannot expand), and so are documents that are too big or too deep.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Longest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Deepest nesting accepted.
const MAX_DEPTH: usize = 16;
/// Most nodes accepted in one document.
const MAX_NODES: usize = 20_000;

/// Where something is in the document: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn of(mark: Marker) -> Self {
        Self {
            line: mark.line().max(1),
            column: mark.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar's text; `quoted` when it was written in quotes (so `"10"` stays a string).
    Scalar {
        text: String,
        quoted: bool,
    },
    Sequence(Vec<Node>),
    /// Keys in document order.
    Mapping(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub at: Position,
}

impl Node {
    /// A plain or quoted scalar's text.
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is YAML's null: `~`, `null` or nothing.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn describe(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "nothing",
            Value::Scalar { .. } => "a single value",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
        }
    }
}

/// A document that is not YAML we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub at: Position,
    pub message: String,
}

/// Reads one YAML document. An empty document is `None`.
pub fn read(text: &str) -> Result<Option<Node>, SyntaxError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(SyntaxError {
            at: Position { line: 1, column: 1 },
            message: format!(
                "the test is {} bytes long; at most {MAX_DOCUMENT_BYTES} are accepted",
                text.len()
            ),
        });
    }
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let loaded = parser.load(&mut builder, true);
    if let Some(error) = builder.error {
        return Err(error);
    }
    if let Err(error) = loaded {
        return Err(SyntaxError {
            at: Position::of(*error.marker()),
            message: format!("not valid YAML: {}", error.info()),
        });
    }
    if builder.documents > 1 {
        return Err(SyntaxError {
            at: builder.second_document.unwrap_or_default(),
            message: "a test is one YAML document; remove the second `---`".into(),
        });
    }
    Ok(builder.root)
}

/// Builds the tree from parser events, stopping at the first thing it refuses.
#[derive(Default)]
struct Builder {
    /// Open sequences and mappings, innermost last.
    open: Vec<Node>,
    root: Option<Node>,
    error: Option<SyntaxError>,
    documents: usize,
    second_document: Option<Position>,
    nodes: usize,
}

impl Builder {
    fn fail(&mut self, at: Position, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                at,
                message: message.into(),
            });
        }
    }

    fn push(&mut self, node: Node) {
        match self.open.last_mut() {
            Some(Node {
                value: Value::Sequence(items),
                ..
            }) => items.push(node),
            Some(Node {
                value: Value::Mapping(pairs),
                ..
            }) => {
                // A mapping's entries arrive as key, value, key, value: a pair whose value is a
                // placeholder is waiting for its value.
                match pairs.last_mut() {
                    Some((_, value)) if value.at.line == 0 => *value = node,
                    _ => pairs.push((
                        node,
                        Node {
                            value: Value::Scalar {
                                text: String::new(),
                                quoted: false,
                            },
                            at: Position::default(),
                        },
                    )),
                }
            }
            _ => self.root = Some(node),
        }
    }

    fn open(&mut self, value: Value, at: Position, anchor: usize, tagged: bool) {
        if anchor != 0 {
            return self.fail(at, "anchors (`&name`) are not supported in checkout tests");
        }
        if tagged {
            return self.fail(at, "tags (`!name`) are not supported in checkout tests");
        }
        if self.open.len() >= MAX_DEPTH {
            return self.fail(at, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.open.push(Node { value, at });
    }

    fn close(&mut self) {
        if let Some(node) = self.open.pop() {
            self.push(node);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let at = Position::of(mark);
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return self.fail(at, format!("more than {MAX_NODES} YAML nodes"));
        }
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.second_document = Some(at);
                }
            }
            Event::Alias(_) => {
                self.fail(at, "aliases (`*name`) are not supported in checkout tests")
            }
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 {
                    return self.fail(at, "anchors (`&name`) are not supported in checkout tests");
                }
                if tag.is_some() {
                    return self.fail(at, "tags (`!name`) are not supported in checkout tests");
                }
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push(Node {
                    value: Value::Scalar { text, quoted },
                    at,
                });
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(Value::Sequence(Vec::new()), at, anchor, tag.is_some())
            }
            Event::MappingStart(anchor, tag) => {
                self.open(Value::Mapping(Vec::new()), at, anchor, tag.is_some())
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_line_and_column() {
        let doc = read("name: x\nsteps:\n  - goto: /a\n  - click: \"#b\"\n")
            .expect("valid")
            .expect("not empty");
        let Value::Mapping(pairs) = &doc.value else {
            panic!("mapping expected")
        };
        let (key, steps) = &pairs[1];
        assert_eq!(key.scalar(), Some("steps"));
        assert_eq!(key.at, Position { line: 2, column: 1 });
        let Value::Sequence(items) = &steps.value else {
            panic!("list expected")
        };
        let Value::Mapping(click) = &items[1].value else {
            panic!("mapping expected")
        };
        assert_eq!(click[0].1.scalar(), Some("#b"));
        assert_eq!(
            click[0].1.at,
            Position {
                line: 4,
                column: 12
            }
        );
    }

    #[test]
    fn aliases_anchors_and_second_documents_are_refused() {
        let alias = read("a: &x [1, 2]\nb: *x\n").expect_err("anchor");
        assert!(alias.message.contains("anchors"), "{}", alias.message);
        assert_eq!(alias.at.line, 1);
        let two = read("a: 1\n---\nb: 2\n").expect_err("two documents");
        assert_eq!(two.at.line, 2);
        assert!(
            read("a: [1, 2\n")
                .expect_err("unclosed")
                .message
                .contains("YAML")
        );
        assert_eq!(read("").expect("empty is fine"), None);
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert!(read(&deep).expect_err("deep").message.contains("deeper"));
    }

    #[test]
    fn quoted_scalars_are_marked() {
        let doc = read("a: \"10\"\nb: 10\n")
            .expect("valid")
            .expect("not empty");
        let Value::Mapping(pairs) = doc.value else {
            panic!()
        };
        assert!(matches!(
            &pairs[0].1.value,
            Value::Scalar { quoted: true, .. }
        ));
        assert!(matches!(
            &pairs[1].1.value,
            Value::Scalar { quoted: false, .. }
        ));
    }
}
