//! The functions a template can call: Go's builtins, the Sprig functions
//! Istio's templates use, and the functions Istio's injector registers
//! (`pkg/kube/inject/template.go`), each over JSON values. Pure: `env`
//! answers its default, since the engine reads no environment.

use serde_json::{Map, Value};

mod istio;
mod printf;

/// Every function name (checked when a template is parsed, as Go
/// refuses an undefined function at parse time).
pub const NAMES: &[&str] = &[
    "add",
    "and",
    "annotation",
    "append",
    "appendMultusNetwork",
    "applicationPorts",
    "atoi",
    "b64dec",
    "b64enc",
    "coalesce",
    "compact",
    "contains",
    "default",
    "dict",
    "directory",
    "div",
    "empty",
    "env",
    "eq",
    "excludeInboundPort",
    "excludeInterfaces",
    "fail",
    "first",
    "formatDuration",
    "fromJSON",
    "ge",
    "get",
    "gt",
    "has",
    "hasKey",
    "hasPrefix",
    "hasSuffix",
    "includeInboundPorts",
    "indent",
    "index",
    "int",
    "int64",
    "isset",
    "join",
    "keys",
    "kubevirtInterfaces",
    "last",
    "le",
    "len",
    "list",
    "lower",
    "lt",
    "max",
    "mergeMaps",
    "min",
    "mod",
    "mul",
    "ne",
    "nindent",
    "not",
    "omit",
    "omitNil",
    "or",
    "otelResourceAttributes",
    "prepend",
    "print",
    "printf",
    "println",
    "protoToJSON",
    "quote",
    "repeat",
    "replace",
    "required",
    "slice",
    "sortAlpha",
    "splitList",
    "squote",
    "strdict",
    "structToJSON",
    "sub",
    "ternary",
    "toJSON",
    "toJson",
    "toJsonMap",
    "toLower",
    "toString",
    "toUpper",
    "toYaml",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "trunc",
    "uniq",
    "upper",
    "valueOrDefault",
    "without",
];

/// Whether `name` is a function.
pub fn known(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
pub fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// A value as Go's `fmt` prints it (`%v`).
pub fn print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            print_into(&mut out, other);
            out
        }
    }
}

fn print_into(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_into(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                print_into(out, x);
            }
            out.push(']');
        }
    }
}

/// A value's type, for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// A value as a string argument (nil is empty, as Sprig's `strval`).
pub(super) fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => print(other),
    }
}

pub(super) fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| format!("{n} is not an integer")),
        Value::String(t) => t
            .trim()
            .parse()
            .map_err(|_| format!("{t:?} is not an integer")),
        Value::Bool(b) => Ok(*b as i64),
        Value::Null => Ok(0),
        other => Err(format!("{} is not an integer", type_name(other))),
    }
}

pub(super) fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(t) => t.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn need(args: &[Value], n: usize, name: &str) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "{name} needs {n} argument{}, got {}",
            if n == 1 { "" } else { "s" },
            args.len()
        ));
    }
    Ok(())
}

pub(super) fn string_map(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| (k.clone(), Value::String(s(x))))
            .collect(),
        _ => Map::new(),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => match (
            float(a).filter(|_| a.is_number()),
            float(b).filter(|_| b.is_number()),
        ) {
            (Some(x), Some(y)) => x.partial_cmp(&y).ok_or_else(|| "not comparable".into()),
            _ => Err(format!(
                "incompatible types for comparison: {} and {}",
                type_name(a),
                type_name(b)
            )),
        },
    }
}

fn len_of(v: &Value) -> Result<usize, String> {
    match v {
        Value::String(t) => Ok(t.len()),
        Value::Array(a) => Ok(a.len()),
        Value::Object(m) => Ok(m.len()),
        Value::Null => Ok(0),
        other => Err(format!("len of {}", type_name(other))),
    }
}

pub(super) fn to_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

pub(super) fn to_yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

/// Go's `%q` of a string.
pub(super) fn go_quote(t: &str) -> String {
    Value::String(t.to_string()).to_string()
}

/// Pads every line but the first (Istio's `indent`).
fn indent_rest(n: usize, text: &str) -> String {
    let pad = " ".repeat(n);
    text.split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pads every line (Sprig's `indent`, which `nindent` uses).
fn indent_all(n: usize, text: &str) -> String {
    let pad = " ".repeat(n);
    text.split('\n')
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Calls `name` with `args` (a piped value is the last).
pub fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    if let Some(value) = istio::call(name, &args)? {
        return Ok(value);
    }
    let a = &args;
    let str_of = |i: usize| a.get(i).map(s).unwrap_or_default();
    Ok(match name {
        // Go's builtins (`and`/`or` are evaluated lazily by the executor).
        "not" => {
            need(a, 1, name)?;
            Value::Bool(!truth(&a[0]))
        }
        "len" => {
            need(a, 1, name)?;
            Value::from(len_of(&a[0])?)
        }
        "index" => {
            need(a, 1, name)?;
            let mut v = a[0].clone();
            for k in &a[1..] {
                v = match (&v, k) {
                    (Value::Object(m), key) => match m.get(&s(key)) {
                        Some(x) => x.clone(),
                        None if m.values().all(Value::is_string) => Value::String(String::new()),
                        None => Value::Null,
                    },
                    (Value::Array(l), key) => {
                        let i = int(key)?;
                        l.get(usize::try_from(i).map_err(|_| format!("index {i} out of range"))?)
                            .cloned()
                            .ok_or_else(|| format!("index {i} out of range: {}", l.len()))?
                    }
                    (Value::Null, _) => Value::Null,
                    (other, _) => {
                        return Err(format!("can't index item of type {}", type_name(other)));
                    }
                };
            }
            v
        }
        "slice" => {
            need(a, 1, name)?;
            let from = a.get(1).map(int).transpose()?.unwrap_or(0).max(0) as usize;
            match &a[0] {
                Value::Array(l) => {
                    let to = a
                        .get(2)
                        .map(int)
                        .transpose()?
                        .map(|t| t as usize)
                        .unwrap_or(l.len());
                    if from > to || to > l.len() {
                        return Err(format!("slice [{from}:{to}] out of range"));
                    }
                    Value::Array(l[from..to].to_vec())
                }
                Value::String(t) => {
                    let to = a
                        .get(2)
                        .map(int)
                        .transpose()?
                        .map(|t| t as usize)
                        .unwrap_or(t.len());
                    Value::String(t.get(from..to).ok_or("slice out of range")?.to_string())
                }
                other => return Err(format!("can't slice item of type {}", type_name(other))),
            }
        }
        "eq" => {
            need(a, 2, name)?;
            Value::Bool(a[1..].iter().any(|x| equal(&a[0], x)))
        }
        "ne" => {
            need(a, 2, name)?;
            Value::Bool(!equal(&a[0], &a[1]))
        }
        "lt" | "le" | "gt" | "ge" => {
            need(a, 2, name)?;
            let o = compare(&a[0], &a[1])?;
            Value::Bool(match name {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            })
        }
        "print" => {
            // Go's `fmt.Sprint`: a space between two operands when
            // neither is a string.
            let mut out = String::new();
            for (i, v) in a.iter().enumerate() {
                if i > 0 && !v.is_string() && !a[i - 1].is_string() {
                    out.push(' ');
                }
                out.push_str(&print(v));
            }
            Value::String(out)
        }
        "println" => Value::String(a.iter().map(print).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => {
            need(a, 1, name)?;
            Value::String(printf::sprintf(&s(&a[0]), &a[1..]))
        }
        // Sprig.
        "default" => {
            need(a, 1, name)?;
            match a.get(1) {
                Some(v) if truth(v) => v.clone(),
                _ => a[0].clone(),
            }
        }
        "empty" => Value::Bool(!a.first().is_some_and(truth)),
        "coalesce" => a.iter().find(|v| truth(v)).cloned().unwrap_or(Value::Null),
        "ternary" => {
            need(a, 3, name)?;
            if truth(&a[2]) {
                a[0].clone()
            } else {
                a[1].clone()
            }
        }
        "required" => {
            need(a, 2, name)?;
            if !truth(&a[1]) {
                return Err(str_of(0));
            }
            a[1].clone()
        }
        "fail" => return Err(str_of(0)),
        "quote" => Value::String(
            a.iter()
                .filter(|v| !v.is_null())
                .map(|v| go_quote(&s(v)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => Value::String(
            a.iter()
                .filter(|v| !v.is_null())
                .map(|v| format!("'{}'", s(v)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "list" => Value::Array(args),
        "append" | "prepend" => {
            need(a, 2, name)?;
            let mut l = match &a[0] {
                Value::Array(l) => l.clone(),
                Value::Null => Vec::new(),
                other => return Err(format!("cannot {name} to {}", type_name(other))),
            };
            if name == "append" {
                l.push(a[1].clone());
            } else {
                l.insert(0, a[1].clone());
            }
            Value::Array(l)
        }
        "first" | "last" => match a.first() {
            Some(Value::Array(l)) => (if name == "first" { l.first() } else { l.last() })
                .cloned()
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "uniq" | "compact" | "sortAlpha" | "without" => {
            let l = match a.first() {
                Some(Value::Array(l)) => l.clone(),
                _ => Vec::new(),
            };
            Value::Array(match name {
                "uniq" => l
                    .iter()
                    .enumerate()
                    .filter(|(i, x)| !l[..*i].contains(x))
                    .map(|(_, x)| x.clone())
                    .collect(),
                "compact" => l.into_iter().filter(truth).collect(),
                "without" => l.into_iter().filter(|x| !a[1..].contains(x)).collect(),
                _ => {
                    let mut t: Vec<String> = l.iter().map(s).collect();
                    t.sort();
                    t.into_iter().map(Value::String).collect()
                }
            })
        }
        "has" => {
            need(a, 2, name)?;
            Value::Bool(
                a[1].as_array()
                    .is_some_and(|l| l.iter().any(|x| equal(x, &a[0]))),
            )
        }
        "join" => {
            need(a, 2, name)?;
            let items: Vec<String> = match &a[1] {
                Value::Array(l) => l.iter().map(s).collect(),
                other => vec![s(other)],
            };
            Value::String(items.join(&str_of(0)))
        }
        "splitList" => {
            need(a, 2, name)?;
            Value::Array(
                str_of(1)
                    .split(&str_of(0))
                    .map(|p| Value::String(p.into()))
                    .collect(),
            )
        }
        "trim" => Value::String(str_of(0).trim().to_string()),
        "trimPrefix" => {
            need(a, 2, name)?;
            let t = str_of(1);
            Value::String(t.strip_prefix(&str_of(0)).unwrap_or(&t).to_string())
        }
        "trimSuffix" => {
            need(a, 2, name)?;
            let t = str_of(1);
            Value::String(t.strip_suffix(&str_of(0)).unwrap_or(&t).to_string())
        }
        "trunc" => {
            need(a, 2, name)?;
            let n = int(&a[0])?;
            let t: Vec<char> = str_of(1).chars().collect();
            let n = n.clamp(0, t.len() as i64) as usize;
            Value::String(t[..n].iter().collect())
        }
        "upper" | "toUpper" => Value::String(str_of(0).to_uppercase()),
        "lower" | "toLower" => Value::String(str_of(0).to_lowercase()),
        "replace" => {
            need(a, 3, name)?;
            Value::String(str_of(2).replace(&str_of(0), &str_of(1)))
        }
        "repeat" => {
            need(a, 2, name)?;
            let n = int(&a[0])?.clamp(0, 1 << 16) as usize;
            Value::String(str_of(1).repeat(n))
        }
        "hasPrefix" => {
            need(a, 2, name)?;
            Value::Bool(str_of(1).starts_with(&str_of(0)))
        }
        "hasSuffix" => {
            need(a, 2, name)?;
            Value::Bool(str_of(1).ends_with(&str_of(0)))
        }
        "contains" => {
            need(a, 2, name)?;
            Value::Bool(str_of(1).contains(&str_of(0)))
        }
        "nindent" => {
            need(a, 2, name)?;
            Value::String(format!(
                "\n{}",
                indent_all(int(&a[0])?.clamp(0, 1024) as usize, &str_of(1))
            ))
        }
        "indent" => {
            need(a, 2, name)?;
            Value::String(indent_rest(int(&a[0])?.clamp(0, 1024) as usize, &str_of(1)))
        }
        "dict" => {
            let mut m = Map::new();
            for pair in a.chunks(2) {
                m.insert(
                    s(&pair[0]),
                    pair.get(1).cloned().unwrap_or(Value::String(String::new())),
                );
            }
            Value::Object(m)
        }
        "hasKey" => {
            need(a, 2, name)?;
            Value::Bool(a[0].as_object().is_some_and(|m| m.contains_key(&str_of(1))))
        }
        "get" => {
            need(a, 2, name)?;
            a[0].get(str_of(1))
                .cloned()
                .unwrap_or(Value::String(String::new()))
        }
        "keys" => {
            let mut k: Vec<String> = a
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|m| m.keys().cloned())
                .collect();
            k.sort();
            Value::Array(k.into_iter().map(Value::String).collect())
        }
        "toString" => Value::String(str_of(0)),
        "toJson" => Value::String(a.first().map(to_json).unwrap_or_default()),
        "int" | "int64" | "atoi" => Value::from(a.first().map(int).transpose()?.unwrap_or(0)),
        "add" => Value::from(a.iter().map(int).sum::<Result<i64, _>>()?),
        "mul" => Value::from(a.iter().map(int).product::<Result<i64, _>>()?),
        "sub" | "div" | "mod" => {
            need(a, 2, name)?;
            let (x, y) = (int(&a[0])?, int(&a[1])?);
            Value::from(match name {
                "sub" => x.wrapping_sub(y),
                _ if y == 0 => return Err("division by zero".into()),
                "div" => x / y,
                _ => x % y,
            })
        }
        "max" | "min" => {
            let ints = a.iter().map(int).collect::<Result<Vec<_>, _>>()?;
            Value::from(
                if name == "max" {
                    ints.into_iter().max()
                } else {
                    ints.into_iter().min()
                }
                .unwrap_or(0),
            )
        }
        "b64enc" => {
            use base64::Engine;
            Value::String(base64::engine::general_purpose::STANDARD.encode(str_of(0)))
        }
        "b64dec" => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(str_of(0))
                .map_err(|e| e.to_string())?;
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        "and" | "or" => a.last().cloned().unwrap_or(Value::Null),
        other => return Err(format!("function {other:?} not defined")),
    })
}
