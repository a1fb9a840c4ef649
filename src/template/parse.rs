//! Builds a template's tree from its items: text, actions, `if`/`else`,
//! `range`, `with`, `define`/`template`/`block`, `break`/`continue`,
//! pipelines with variable declarations and assignments.

use std::collections::BTreeMap;

use super::lex::{Item, Kind, Tok};

/// A node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Literal text.
    Text(String),
    /// `{{ pipeline }}`: printed unless it declares or assigns.
    Action(Pipe),
    /// `{{if}}`, `{{with}}` (`with` sets dot) and `{{range}}`, each with
    /// an optional `else`.
    Branch {
        /// Which.
        kind: BranchKind,
        /// The condition, value or list.
        pipe: Pipe,
        /// The body.
        then: Vec<Node>,
        /// The `else` part.
        otherwise: Vec<Node>,
    },
    /// `{{template "name" pipeline}}`.
    Call {
        /// The defined template's name.
        name: String,
        /// Its dot (none: nil).
        pipe: Option<Pipe>,
        /// Where.
        line: usize,
    },
    /// `{{break}}`
    Break,
    /// `{{continue}}`
    Continue,
}

/// The three branching actions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BranchKind {
    /// `if`
    If,
    /// `with`
    With,
    /// `range`
    Range,
}

/// A pipeline: optional variable declaration or assignment, then commands
/// joined by `|`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    /// Declared or assigned variables (`$i, $c :=`).
    pub vars: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    /// The commands.
    pub cmds: Vec<Vec<Arg>>,
    /// The line of the action.
    pub line: usize,
}

/// An operand of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.` or `.A.B`: fields of dot.
    Dot(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    /// A function, by name.
    Func(String),
    /// A constant.
    Const(serde_json::Value),
    /// `(pipeline).A.B`.
    Sub(Box<Pipe>, Vec<String>),
}

/// A parse error: line and message.
pub type ParseError = (usize, String);

/// The deepest nesting of control structures and parentheses accepted.
const MAX_DEPTH: usize = 64;

/// The parsed template: its main tree and its `define`d templates.
pub struct Parsed {
    /// The main tree.
    pub root: Vec<Node>,
    /// Templates defined with `define` (and `block`).
    pub defines: BTreeMap<String, Vec<Node>>,
}

/// Parses items; `known` says whether a function name exists.
pub fn parse(items: Vec<Item>, known: &dyn Fn(&str) -> bool) -> Result<Parsed, ParseError> {
    let mut p = Parser {
        items: items.into_iter().peekable(),
        known,
        defines: BTreeMap::new(),
        depth: 0,
        last_line: 1,
        in_range: 0,
        vars: Vec::new(),
    };
    let (root, end) = p.list()?;
    match end {
        Ender::Eof => {}
        Ender::End => return Err((p.last_line, "unexpected {{end}}".into())),
        Ender::Else(_, line) => return Err((line, "unexpected {{else}}".into())),
    }
    Ok(Parsed {
        root,
        defines: p.defines,
    })
}

struct Parser<'k> {
    items: std::iter::Peekable<std::vec::IntoIter<Item>>,
    known: &'k dyn Fn(&str) -> bool,
    defines: BTreeMap<String, Vec<Node>>,
    depth: usize,
    last_line: usize,
    in_range: usize,
    /// Variables in scope (`$` always is), innermost last.
    vars: Vec<String>,
}

/// What ended a list.
enum Ender {
    /// The end of the text.
    Eof,
    /// `{{end}}`.
    End,
    /// `{{else ...}}`, with the tokens after `else` and the line.
    Else(Vec<Tok>, usize),
}

impl Parser<'_> {
    /// Nodes up to `{{end}}`, `{{else ...}}` or the end of the text.
    fn list(&mut self) -> Result<(Vec<Node>, Ender), ParseError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (tokens, line) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action { tokens, line } => (tokens, line),
            };
            self.last_line = line;
            let keyword = match tokens.first().map(|t| &t.kind) {
                Some(Kind::Ident(w)) => w.as_str(),
                None => return Err((line, "missing value for command".into())),
                _ => "",
            };
            match keyword {
                "end" => {
                    expect_alone(&tokens, line, "end")?;
                    return Ok((nodes, Ender::End));
                }
                "else" => return Ok((nodes, Ender::Else(tokens[1..].to_vec(), line))),
                "if" | "with" | "range" => {
                    nodes.push(self.branch(branch_kind(keyword), &tokens[1..], line)?);
                }
                "define" | "block" => {
                    let name = quoted_name(&tokens, line, keyword)?;
                    let pipe = if keyword == "block" {
                        self.pipe_opt(&tokens[2..], line)?
                    } else {
                        expect_alone(&tokens[1..], line, "define")?;
                        None
                    };
                    if let Some(pipe) = &pipe {
                        self.check_uses(pipe)?;
                    }
                    // A defined template sees only `$`, its own dot.
                    let outer = std::mem::take(&mut self.vars);
                    let body = self.nested(|p| p.list());
                    self.vars = outer;
                    let (body, end) = body?;
                    if !matches!(end, Ender::End) {
                        return Err((
                            line,
                            format!("{keyword} {name:?} has no matching {{{{end}}}}"),
                        ));
                    }
                    if keyword == "block" {
                        nodes.push(Node::Call {
                            name: name.clone(),
                            pipe,
                            line,
                        });
                    }
                    self.defines.insert(name, body);
                }
                "template" => {
                    let name = quoted_name(&tokens, line, keyword)?;
                    let pipe = self.pipe_opt(&tokens[2..], line)?;
                    if let Some(pipe) = &pipe {
                        self.check_uses(pipe)?;
                    }
                    nodes.push(Node::Call { name, pipe, line });
                }
                "break" | "continue" => {
                    expect_alone(&tokens, line, keyword)?;
                    if self.in_range == 0 {
                        return Err((line, format!("{{{{{keyword}}}}} outside {{{{range}}}}")));
                    }
                    nodes.push(if keyword == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                _ => {
                    let pipe = self.pipe(&tokens, line)?;
                    self.declare(&pipe)?;
                    nodes.push(Node::Action(pipe));
                }
            }
        }
        Ok((nodes, Ender::Eof))
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err((
                self.last_line,
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// `if`/`with`/`range` after its keyword: the body, an optional `else`
    /// (or `else if`/`else with`, which shares the `end`), then `end`.
    fn branch(
        &mut self,
        kind: BranchKind,
        tokens: &[Tok],
        line: usize,
    ) -> Result<Node, ParseError> {
        let pipe = self.pipe(tokens, line)?;
        let mark = self.vars.len();
        let branch = self.branch_body(kind, pipe, line);
        self.vars.truncate(mark);
        branch
    }

    fn branch_body(
        &mut self,
        kind: BranchKind,
        pipe: Pipe,
        line: usize,
    ) -> Result<Node, ParseError> {
        self.declare(&pipe)?;
        if kind == BranchKind::Range {
            self.in_range += 1;
        }
        let body = self.nested(|p| p.list());
        if kind == BranchKind::Range {
            self.in_range -= 1;
        }
        let (then, end) = body?;
        let otherwise = match end {
            Ender::End => Vec::new(),
            Ender::Eof => {
                return Err((
                    line,
                    format!("{{{{{}}}}} has no matching {{{{end}}}}", kind_word(kind)),
                ));
            }
            Ender::Else(rest, else_line) => match rest.first().map(|t| &t.kind) {
                None => {
                    let (otherwise, end) = self.nested(|p| p.list())?;
                    if !matches!(end, Ender::End) {
                        return Err((else_line, "{{else}} has no matching {{end}}".into()));
                    }
                    otherwise
                }
                Some(Kind::Ident(w)) if w == "if" || w == "with" => {
                    let chained = branch_kind(w);
                    vec![self.nested(|p| p.branch(chained, &rest[1..], else_line))?]
                }
                _ => return Err((else_line, "unexpected arguments after else".into())),
            },
        };
        Ok(Node::Branch {
            kind,
            pipe,
            then,
            otherwise,
        })
    }

    /// Checks the variables a pipeline uses and assigns, then declares
    /// those it declares, as Go's parser does.
    fn declare(&mut self, pipe: &Pipe) -> Result<(), ParseError> {
        self.check_uses(pipe)?;
        if pipe.assign {
            for v in &pipe.vars {
                self.check_var(v, pipe.line)?;
            }
        } else {
            self.vars.extend(pipe.vars.iter().cloned());
        }
        Ok(())
    }

    fn check_var(&self, name: &str, line: usize) -> Result<(), ParseError> {
        if name == "$" || self.vars.iter().any(|v| v == name) {
            Ok(())
        } else {
            Err((line, format!("undefined variable {name:?}")))
        }
    }

    fn check_uses(&self, pipe: &Pipe) -> Result<(), ParseError> {
        for arg in pipe.cmds.iter().flatten() {
            match arg {
                Arg::Var(name, _) => self.check_var(name, pipe.line)?,
                Arg::Sub(inner, _) => self.check_uses(inner)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn pipe_opt(&self, tokens: &[Tok], line: usize) -> Result<Option<Pipe>, ParseError> {
        if tokens.is_empty() {
            Ok(None)
        } else {
            self.pipe(tokens, line).map(Some)
        }
    }

    /// A pipeline: `[$a[, $b] (:=|=)] cmd [| cmd]...`.
    fn pipe(&self, tokens: &[Tok], line: usize) -> Result<Pipe, ParseError> {
        let mut vars = Vec::new();
        let mut assign = false;
        let mut rest = tokens;
        let decl_end = tokens
            .iter()
            .position(|t| matches!(t.kind, Kind::Declare | Kind::Assign));
        if let Some(end) = decl_end {
            let head = &tokens[..end];
            let names: Option<Vec<String>> = head
                .iter()
                .enumerate()
                .map(|(i, t)| match (&t.kind, i % 2) {
                    (Kind::Var(v), 0) => Some(v.clone()),
                    (Kind::Comma, 1) => Some(String::new()),
                    _ => None,
                })
                .collect();
            if let Some(names) = names.filter(|n| !n.is_empty() && n.len() % 2 == 1) {
                vars = names.into_iter().filter(|n| !n.is_empty()).collect();
                assign = matches!(tokens[end].kind, Kind::Assign);
                rest = &tokens[end + 1..];
                if vars.len() > 2 {
                    return Err((line, "too many declarations".into()));
                }
            }
        }
        let mut cmds = Vec::new();
        let mut i = 0;
        loop {
            let (cmd, used) = self.command(&rest[i..], line, 0)?;
            cmds.push(cmd);
            i += used;
            match rest.get(i).map(|t| &t.kind) {
                None => break,
                Some(Kind::Pipe) => i += 1,
                Some(other) => return Err((line, format!("unexpected {other:?} in pipeline"))),
            }
        }
        Ok(Pipe {
            vars,
            assign,
            cmds,
            line,
        })
    }

    /// One command (operands up to `|`, `)` or the end), and how many
    /// tokens it used.
    fn command(
        &self,
        tokens: &[Tok],
        line: usize,
        depth: usize,
    ) -> Result<(Vec<Arg>, usize), ParseError> {
        let mut args = Vec::new();
        let mut i = 0;
        while let Some(t) = tokens.get(i) {
            if matches!(t.kind, Kind::Pipe | Kind::Close) {
                break;
            }
            if !args.is_empty() && !t.spaced && !matches!(t.kind, Kind::Open) {
                return Err((line, "missing space between operands".into()));
            }
            let (arg, used) = self.operand(&tokens[i..], line, depth)?;
            args.push(arg);
            i += used;
        }
        if args.is_empty() {
            return Err((line, "missing value for command".into()));
        }
        Ok((args, i))
    }

    fn operand(
        &self,
        tokens: &[Tok],
        line: usize,
        depth: usize,
    ) -> Result<(Arg, usize), ParseError> {
        let mut i = 1;
        let arg = match &tokens[0].kind {
            Kind::Dot => Arg::Dot(Vec::new()),
            Kind::Field(f) => {
                let mut path = vec![f.clone()];
                path.extend(fields(&tokens[1..], &mut i));
                return Ok((Arg::Dot(path), i));
            }
            Kind::Var(v) => {
                let path = fields(&tokens[1..], &mut i);
                return Ok((Arg::Var(v.clone(), path), i));
            }
            Kind::Str(s) => Arg::Const(serde_json::Value::String(s.clone())),
            Kind::Num(n) => Arg::Const(number(*n)),
            Kind::Ident(w) => match w.as_str() {
                "true" => Arg::Const(serde_json::Value::Bool(true)),
                "false" => Arg::Const(serde_json::Value::Bool(false)),
                "nil" => Arg::Const(serde_json::Value::Null),
                name if (self.known)(name) => Arg::Func(name.to_string()),
                name => return Err((line, format!("function {name:?} not defined"))),
            },
            Kind::Open => {
                if depth >= MAX_DEPTH {
                    return Err((line, format!("parentheses nested deeper than {MAX_DEPTH}")));
                }
                // A parenthesised pipeline: commands up to the matching `)`.
                let mut cmds = Vec::new();
                loop {
                    let (cmd, used) = self.command(&tokens[i..], line, depth + 1)?;
                    cmds.push(cmd);
                    i += used;
                    match tokens.get(i).map(|t| &t.kind) {
                        Some(Kind::Pipe) => i += 1,
                        Some(Kind::Close) => {
                            i += 1;
                            break;
                        }
                        _ => return Err((line, "unclosed left paren".into())),
                    }
                }
                let path = fields(&tokens[i..], &mut i);
                let pipe = Pipe {
                    vars: Vec::new(),
                    assign: false,
                    cmds,
                    line,
                };
                return Ok((Arg::Sub(Box::new(pipe), path), i));
            }
            other => return Err((line, format!("unexpected {other:?} in operand"))),
        };
        Ok((arg, i))
    }
}

/// The `.A.B` fields that follow an operand without a space; advances `i`.
fn fields(tokens: &[Tok], i: &mut usize) -> Vec<String> {
    let mut out = Vec::new();
    for t in tokens {
        match &t.kind {
            Kind::Field(f) if !t.spaced => {
                out.push(f.clone());
                *i += 1;
            }
            _ => break,
        }
    }
    out
}

/// A number constant: an integer when it is one.
pub fn number(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

fn branch_kind(word: &str) -> BranchKind {
    match word {
        "if" => BranchKind::If,
        "with" => BranchKind::With,
        _ => BranchKind::Range,
    }
}

fn kind_word(kind: BranchKind) -> &'static str {
    match kind {
        BranchKind::If => "if",
        BranchKind::With => "with",
        BranchKind::Range => "range",
    }
}

fn quoted_name(tokens: &[Tok], line: usize, keyword: &str) -> Result<String, ParseError> {
    match tokens.get(1).map(|t| &t.kind) {
        Some(Kind::Str(n)) => Ok(n.clone()),
        _ => Err((line, format!("{keyword} expects a quoted template name"))),
    }
}

fn expect_alone(tokens: &[Tok], line: usize, word: &str) -> Result<(), ParseError> {
    if tokens.len() > 1 {
        return Err((line, format!("unexpected arguments after {word}")));
    }
    Ok(())
}
