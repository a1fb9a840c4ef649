//! Runs a parsed template over JSON data, as Go's `text/template` does, with
//! a budget: steps, output bytes and `template` call depth are counted, so
//! that a template (or the request data it ranges over) cannot run away.

use serde_json::Value;

use super::funcs;
use super::parse::{Arg, BranchKind, Node, Pipe};
use super::{Limits, Template};

/// An execution error: line and message.
pub type ExecError = (usize, String);

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(super) struct Exec<'t> {
    t: &'t Template,
    root: &'t Value,
    /// Variables in scope, innermost last; a `template` call starts afresh.
    vars: Vec<(String, Value)>,
    pub(super) out: String,
    steps: u64,
    depth: usize,
    limits: Limits,
}

impl<'t> Exec<'t> {
    pub(super) fn new(t: &'t Template, root: &'t Value, limits: Limits) -> Exec<'t> {
        Exec {
            t,
            root,
            vars: Vec::new(),
            out: String::new(),
            steps: 0,
            depth: 0,
            limits,
        }
    }

    pub(super) fn run_root(&mut self) -> Result<(), ExecError> {
        let t = self.t;
        self.run(&t.root, self.root, 1).map(|_| ())
    }

    fn step(&mut self, line: usize) -> Result<(), ExecError> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err((
                line,
                format!(
                    "the template ran more than {} steps (a loop over too much data?)",
                    self.limits.max_steps
                ),
            ));
        }
        Ok(())
    }

    fn run(&mut self, nodes: &[Node], dot: &Value, line: usize) -> Result<Flow, ExecError> {
        let mut line = line;
        for node in nodes {
            self.step(line)?;
            match node {
                Node::Text(t) => self.emit(t, line)?,
                Node::Action(pipe) => {
                    line = pipe.line;
                    let v = self.pipe(pipe, dot)?;
                    if pipe.vars.is_empty() {
                        let text = funcs::print(&v);
                        self.emit(&text, line)?;
                    } else {
                        self.bind(pipe, v)?;
                    }
                }
                Node::Branch {
                    kind,
                    pipe,
                    then,
                    otherwise,
                } => {
                    line = pipe.line;
                    let mark = self.vars.len();
                    let flow = self.branch(*kind, pipe, then, otherwise, dot);
                    self.vars.truncate(mark);
                    match flow? {
                        Flow::Normal => {}
                        other => return Ok(other),
                    }
                }
                Node::Call {
                    name,
                    pipe,
                    line: at,
                } => {
                    line = *at;
                    self.call(name, pipe.as_ref(), dot, line)?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn emit(&mut self, text: &str, line: usize) -> Result<(), ExecError> {
        if self.out.len() + text.len() > self.limits.max_output {
            return Err((
                line,
                format!(
                    "the template's output is larger than {} bytes",
                    self.limits.max_output
                ),
            ));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn branch(
        &mut self,
        kind: BranchKind,
        pipe: &Pipe,
        then: &[Node],
        otherwise: &[Node],
        dot: &Value,
    ) -> Result<Flow, ExecError> {
        let line = pipe.line;
        match kind {
            BranchKind::If => {
                let v = self.pipe(pipe, dot)?;
                if !pipe.vars.is_empty() {
                    self.bind(pipe, v.clone())?;
                }
                let body = if funcs::truth(&v) { then } else { otherwise };
                self.run(body, dot, line)
            }
            BranchKind::With => {
                let v = self.pipe(pipe, dot)?;
                if !pipe.vars.is_empty() {
                    self.bind(pipe, v.clone())?;
                }
                if funcs::truth(&v) {
                    self.run(then, &v, line)
                } else {
                    self.run(otherwise, dot, line)
                }
            }
            BranchKind::Range => {
                let v = self.pipe(pipe, dot)?;
                let items: Vec<(Value, Value)> = match v {
                    Value::Array(a) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, x)| (Value::from(i), x))
                        .collect(),
                    Value::Object(m) => m.into_iter().map(|(k, x)| (Value::String(k), x)).collect(),
                    Value::Null => Vec::new(),
                    Value::Number(n) if n.as_u64().is_some() => {
                        let n = n.as_u64().unwrap_or(0);
                        if n > self.limits.max_steps {
                            return Err((
                                line,
                                format!("range over {n}: more than the step budget"),
                            ));
                        }
                        (0..n).map(|i| (Value::from(i), Value::from(i))).collect()
                    }
                    other => {
                        return Err((
                            line,
                            format!("range can't iterate over {}", funcs::print(&other)),
                        ));
                    }
                };
                if items.is_empty() {
                    return self.run(otherwise, dot, line);
                }
                let mark = self.vars.len();
                for (key, item) in items {
                    self.step(line)?;
                    self.vars.truncate(mark);
                    match pipe.vars.as_slice() {
                        [] => {}
                        [one] => self.vars.push((one.clone(), item.clone())),
                        [k, e, ..] => {
                            self.vars.push((k.clone(), key));
                            self.vars.push((e.clone(), item.clone()));
                        }
                    }
                    match self.run(then, &item, line)? {
                        Flow::Break => break,
                        Flow::Normal | Flow::Continue => {}
                    }
                }
                Ok(Flow::Normal)
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        pipe: Option<&Pipe>,
        dot: &Value,
        line: usize,
    ) -> Result<(), ExecError> {
        let t = self.t;
        let Some(body) = t.defines.get(name) else {
            return Err((line, format!("no such template {name:?}")));
        };
        if self.depth >= self.limits.max_depth {
            return Err((
                line,
                format!(
                    "template calls nested deeper than {}",
                    self.limits.max_depth
                ),
            ));
        }
        let arg = match pipe {
            Some(p) => self.pipe(p, dot)?,
            None => Value::Null,
        };
        let saved = std::mem::take(&mut self.vars);
        self.vars.push(("$".into(), arg.clone()));
        self.depth += 1;
        let result = self.run(body, &arg, line);
        self.depth -= 1;
        self.vars = saved;
        result.map(|_| ())
    }

    /// Declares (`:=`) or assigns (`=`) a pipeline's variable.
    fn bind(&mut self, pipe: &Pipe, v: Value) -> Result<(), ExecError> {
        let Some(name) = pipe.vars.first() else {
            return Ok(());
        };
        if pipe.assign {
            match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = v,
                None => return Err((pipe.line, format!("undefined variable: {name}"))),
            }
        } else {
            self.vars.push((name.clone(), v));
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value, ExecError> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.command(cmd, dot, value, pipe.line)?);
        }
        Ok(value.unwrap_or(Value::Null))
    }

    fn command(
        &mut self,
        cmd: &[Arg],
        dot: &Value,
        piped: Option<Value>,
        line: usize,
    ) -> Result<Value, ExecError> {
        self.step(line)?;
        match cmd.first() {
            Some(Arg::Func(name)) if name == "and" || name == "or" => {
                let want = name == "or";
                let mut last = Value::Null;
                let mut args = cmd[1..].iter();
                let mut piped = piped;
                loop {
                    let v = match args.next() {
                        Some(a) => self.arg(a, dot, line)?,
                        None => match piped.take() {
                            Some(p) => p,
                            None => break,
                        },
                    };
                    if funcs::truth(&v) == want {
                        return Ok(v);
                    }
                    last = v;
                }
                Ok(last)
            }
            Some(Arg::Func(name)) => {
                let mut args = Vec::with_capacity(cmd.len());
                for a in &cmd[1..] {
                    args.push(self.arg(a, dot, line)?);
                }
                args.extend(piped);
                funcs::call(name, args).map_err(|e| (line, format!("error calling {name}: {e}")))
            }
            Some(first) => {
                if cmd.len() > 1 || piped.is_some() {
                    return Err((line, "can't give argument to non-function".into()));
                }
                self.arg(first, dot, line)
            }
            None => Err((line, "empty command".into())),
        }
    }

    fn arg(&mut self, arg: &Arg, dot: &Value, line: usize) -> Result<Value, ExecError> {
        match arg {
            Arg::Dot(path) => walk(dot, path, line),
            Arg::Var(name, path) => {
                let base = match self.vars.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => v,
                    None if name == "$" => self.root,
                    None => return Err((line, format!("undefined variable: {name}"))),
                };
                walk(base, path, line)
            }
            Arg::Func(name) => funcs::call(name, Vec::new())
                .map_err(|e| (line, format!("error calling {name}: {e}"))),
            Arg::Const(v) => Ok(v.clone()),
            Arg::Sub(pipe, path) => {
                let v = self.pipe(pipe, dot)?;
                walk(&v, path, line)
            }
        }
    }
}

/// Follows `.A.B` from `v`. Go field names reach JSON keys: `Containers`
/// is `containers`. A missing key is nil, or `""` in a map of strings (as
/// Go's `map[string]string`, e.g. labels and annotations); `.String` of a
/// string (a protobuf enum's name) is the string.
fn walk(v: &Value, path: &[String], line: usize) -> Result<Value, ExecError> {
    let mut node = v;
    for (i, field) in path.iter().enumerate() {
        match node {
            Value::Object(m) => match m.get(field).or_else(|| m.get(&lower_first(field))) {
                Some(next) => node = next,
                None if i + 1 == path.len() && m.values().all(Value::is_string) => {
                    return Ok(Value::String(String::new()));
                }
                None => return Ok(Value::Null),
            },
            Value::Null => return Ok(Value::Null),
            Value::String(_) if field == "String" => {}
            other => {
                return Err((
                    line,
                    format!(
                        "can't evaluate field {field} in {}",
                        funcs::type_name(other)
                    ),
                ));
            }
        }
    }
    Ok(node.clone())
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}
