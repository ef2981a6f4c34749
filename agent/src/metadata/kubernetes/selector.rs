//! `--k8s-pod-selector`: a Kubernetes label selector in its text form (`app=web,tier!=db`,
//! `env in (prod,staging)`, `env notin (dev)`, `canary`, `!canary`), parsed here into
//! kube's [`Expression`]s and matched by kube's [`Selector`]. kube builds and prints selectors
//! but has no parser of the text form (nor does another crate we use), hence this one; it
//! accepts the syntax `kubectl -l` does, except `>`/`<` (which kube cannot express).

use std::{collections::BTreeMap, fmt, str::FromStr};

use kube::core::{Expression, Selector, SelectorExt as _};

/// A parsed label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    selector: Selector,
}

impl LabelSelector {
    /// Whether pod labels `labels` are selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.matches(labels)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a selector did not parse.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Nothing to select on.
    #[error("empty selector")]
    Empty,
    /// A requirement is not one of the forms.
    #[error("cannot read requirement {0:?}")]
    Requirement(String),
    /// A key is not a label key.
    #[error("invalid label key {0:?}")]
    Key(String),
    /// A value is not a label value.
    #[error("invalid label value {0:?}")]
    Value(String),
    /// Parentheses do not match.
    #[error("unbalanced parentheses")]
    Parentheses,
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut expressions = Vec::new();
        for requirement in split_top(text)? {
            let requirement = requirement.trim();
            if requirement.is_empty() {
                return Err(SelectorError::Requirement(requirement.into()));
            }
            expressions.push(parse_requirement(requirement)?);
        }
        if expressions.is_empty() {
            return Err(SelectorError::Empty);
        }
        Ok(Self {
            text: text.trim().to_string(),
            selector: expressions.into_iter().collect(),
        })
    }
}

/// `text` split at the commas outside parentheses.
fn split_top(text: &str) -> Result<Vec<&str>, SelectorError> {
    if text.trim().is_empty() {
        return Err(SelectorError::Empty);
    }
    let mut parts = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or(SelectorError::Parentheses)?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError::Parentheses);
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(r: &str) -> Result<Expression, SelectorError> {
    if let Some(key) = r.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key_of(key.trim())?));
    }
    for (op, build) in [
        (
            "!=",
            Expression::NotEqual as fn(String, String) -> Expression,
        ),
        ("==", Expression::Equal),
        ("=", Expression::Equal),
    ] {
        if let Some((key, value)) = r.split_once(op) {
            return Ok(build(key_of(key.trim())?, value_of(value.trim())?));
        }
    }
    if r.contains(['<', '>']) {
        return Err(SelectorError::Requirement(r.into()));
    }
    let mut words = r.splitn(2, char::is_whitespace);
    let key = key_of(words.next().unwrap_or_default())?;
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Expression::Exists(key));
    };
    let (negated, set) = if let Some(set) = rest.strip_prefix("notin") {
        (true, set)
    } else if let Some(set) = rest.strip_prefix("in") {
        (false, set)
    } else {
        return Err(SelectorError::Requirement(r.into()));
    };
    let set = set
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Requirement(r.into()))?;
    let values = set
        .split(',')
        .map(|v| value_of(v.trim()))
        .collect::<Result<_, _>>()?;
    Ok(if negated {
        Expression::NotIn(key, values)
    } else {
        Expression::In(key, values)
    })
}

/// A label name or value part: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn is_name(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn key_of(key: &str) -> Result<String, SelectorError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if prefix_ok && is_name(name) {
        Ok(key.to_string())
    } else {
        Err(SelectorError::Key(key.into()))
    }
}

fn value_of(value: &str) -> Result<String, SelectorError> {
    if value.is_empty() || is_name(value) {
        Ok(value.to_string())
    } else {
        Err(SelectorError::Value(value.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selects(selector: &str, pairs: &[(&str, &str)]) -> bool {
        let s: LabelSelector = selector.parse().expect(selector);
        s.matches(&labels(pairs))
    }

    #[test]
    fn every_operator_as_kubernetes_reads_it() {
        let web = [("app", "web"), ("tier", "front")];
        assert!(selects("app=web", &web));
        assert!(selects("app==web", &web));
        assert!(selects("app = web , tier != db", &web));
        assert!(!selects("app=web,tier!=front", &web));
        assert!(selects("tier!=db", &[("app", "x")]), "!= holds when absent");
        assert!(selects("tier in (front, back)", &web));
        assert!(!selects("tier in (back)", &web));
        assert!(selects("tier notin (db),app", &web));
        assert!(selects("env notin (prod)", &web), "notin holds when absent");
        assert!(selects("app", &web));
        assert!(!selects("!app", &web));
        assert!(selects("!canary", &web));
        assert!(selects(
            "app.kubernetes.io/name=web",
            &[("app.kubernetes.io/name", "web")]
        ));
        assert!(selects("app=", &[("app", "")]), "an empty value");
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        let err = |s: &str| s.parse::<LabelSelector>().expect_err(s);
        assert_eq!(err(""), SelectorError::Empty);
        assert_eq!(err("app=web,"), SelectorError::Requirement(String::new()));
        assert_eq!(err("tier in (a,b"), SelectorError::Parentheses);
        assert_eq!(
            err("tier in a,b"),
            SelectorError::Requirement("tier in a".into())
        );
        assert_eq!(
            err("replicas>1"),
            SelectorError::Requirement("replicas>1".into())
        );
        assert_eq!(err("-app=web"), SelectorError::Key("-app".into()));
        assert_eq!(
            err("Example.com/app=x"),
            SelectorError::Key("Example.com/app".into())
        );
        assert_eq!(err("app=we b"), SelectorError::Value("we b".into()));
    }
}
