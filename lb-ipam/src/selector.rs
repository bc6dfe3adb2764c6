//! Kubernetes-style label selectors (`matchLabels` + `matchExpressions`), shared by every Herald
//! component that selects services, namespaces or nodes. Pure data and matching; no I/O.
//!
//! The semantics follow `metav1.LabelSelector`: all `matchLabels` pairs and all expressions must
//! hold (logical AND); an empty selector matches everything. Service selectors may also test the
//! pseudo-labels [`SERVICE_NAME_LABEL`] and [`SERVICE_NAMESPACE_LABEL`], which
//! [`service_labels`] adds to a service's own labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Pseudo-label carrying a service's name, usable in service selectors.
pub const SERVICE_NAME_LABEL: &str = "io.kubernetes.service.name";
/// Pseudo-label carrying a service's namespace, usable in service selectors.
pub const SERVICE_NAMESPACE_LABEL: &str = "io.kubernetes.service.namespace";
/// Label Kubernetes puts on every Namespace with its own name; standalone mode adds it too.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A label selector, as `metav1.LabelSelector`.
// Unknown keys are refused: a misspelled `matchLabel` would otherwise leave an empty selector,
// which matches every object. (The API server prunes them from CRD objects before we see them.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kubernetes", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must all be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Expressions that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
// Unknown keys are refused, as for the selector (the doc comment above is the CRD's text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kubernetes", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key the requirement applies to.
    pub key: String,
    /// How the label's value is compared with `values`.
    pub operator: SelectorOperator,
    /// Values for `In`/`NotIn`; must be empty for `Exists`/`DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Operator of a [`LabelSelectorRequirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kubernetes", derive(schemars::JsonSchema))]
pub enum SelectorOperator {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or present with a value not in `values`.
    NotIn,
    /// The label is present (any value).
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelSelector {
    /// Checks the selector is well formed: `In`/`NotIn` need values, `Exists`/`DoesNotExist`
    /// take none, and keys are not empty.
    pub fn validate(&self) -> Result<()> {
        for key in self.match_labels.keys() {
            if key.is_empty() {
                return Err(Error::InvalidSelector("empty key in matchLabels".into()));
            }
        }
        for req in &self.match_expressions {
            if req.key.is_empty() {
                return Err(Error::InvalidSelector(
                    "empty key in matchExpressions".into(),
                ));
            }
            let needs_values =
                matches!(req.operator, SelectorOperator::In | SelectorOperator::NotIn);
            if needs_values && req.values.is_empty() {
                return Err(Error::InvalidSelector(format!(
                    "operator {:?} on key {:?} needs at least one value",
                    req.operator, req.key
                )));
            }
            if !needs_values && !req.values.is_empty() {
                return Err(Error::InvalidSelector(format!(
                    "operator {:?} on key {:?} takes no values",
                    req.operator, req.key
                )));
            }
        }
        Ok(())
    }

    /// True when every `matchLabels` pair and every expression holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// True for a selector with no requirements, which matches everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

impl LabelSelectorRequirement {
    /// True when this single requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// A service's labels plus the name/namespace pseudo-labels that service selectors may test.
pub fn service_labels(
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    out.insert(SERVICE_NAME_LABEL.to_owned(), name.to_owned());
    out.insert(SERVICE_NAMESPACE_LABEL.to_owned(), namespace.to_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, operator: SelectorOperator, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn misspelled_keys_are_refused_not_read_as_an_empty_selector() {
        let err = serde_json::from_str::<LabelSelector>(r#"{"matchLabel": {"app": "web"}}"#)
            .expect_err("a misspelled matchLabels must not parse");
        assert!(
            err.to_string().contains("unknown field `matchLabel`"),
            "{err}"
        );
        let err = serde_json::from_str::<LabelSelector>(
            r#"{"matchExpressions": [{"key": "a", "operator": "Exists", "value": ["x"]}]}"#,
        )
        .expect_err("a misspelled values must not parse");
        assert!(err.to_string().contains("unknown field `value`"), "{err}");
    }

    #[test]
    fn empty_selector_matches_everything() {
        let sel = LabelSelector::default();
        assert!(sel.matches(&labels(&[])));
        assert!(sel.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let sel = LabelSelector {
            match_labels: labels(&[("tier", "web"), ("env", "prod")]),
            ..Default::default()
        };
        assert!(sel.matches(&labels(&[("tier", "web"), ("env", "prod"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("tier", "web")])));
        assert!(!sel.matches(&labels(&[("tier", "web"), ("env", "dev")])));
    }

    #[test]
    fn operators_follow_kubernetes_semantics() {
        let l = labels(&[("env", "prod")]);
        let none = labels(&[]);
        let case = |op, vals: &[&str], on: &BTreeMap<String, String>| {
            LabelSelector {
                match_expressions: vec![expr("env", op, vals)],
                ..Default::default()
            }
            .matches(on)
        };
        assert!(case(SelectorOperator::In, &["prod", "dev"], &l));
        assert!(!case(SelectorOperator::In, &["dev"], &l));
        assert!(!case(SelectorOperator::In, &["prod"], &none));
        assert!(case(SelectorOperator::NotIn, &["dev"], &l));
        assert!(!case(SelectorOperator::NotIn, &["prod"], &l));
        assert!(case(SelectorOperator::NotIn, &["prod"], &none));
        assert!(case(SelectorOperator::Exists, &[], &l));
        assert!(!case(SelectorOperator::Exists, &[], &none));
        assert!(case(SelectorOperator::DoesNotExist, &[], &none));
        assert!(!case(SelectorOperator::DoesNotExist, &[], &l));
    }

    #[test]
    fn pseudo_labels_select_by_name_and_namespace() {
        let sel = LabelSelector {
            match_labels: labels(&[(SERVICE_NAMESPACE_LABEL, "shop")]),
            match_expressions: vec![expr(SERVICE_NAME_LABEL, SelectorOperator::In, &["web"])],
        };
        assert!(sel.matches(&service_labels("shop", "web", &labels(&[]))));
        assert!(!sel.matches(&service_labels("shop", "db", &labels(&[]))));
        assert!(!sel.matches(&service_labels("other", "web", &labels(&[]))));
    }

    #[test]
    fn validate_rejects_malformed_expressions() {
        let bad_in = LabelSelector {
            match_expressions: vec![expr("a", SelectorOperator::In, &[])],
            ..Default::default()
        };
        assert!(bad_in.validate().is_err());
        let bad_exists = LabelSelector {
            match_expressions: vec![expr("a", SelectorOperator::Exists, &["x"])],
            ..Default::default()
        };
        assert!(bad_exists.validate().is_err());
        let good = LabelSelector {
            match_expressions: vec![expr("a", SelectorOperator::NotIn, &["x"])],
            ..Default::default()
        };
        assert!(good.validate().is_ok());
    }
}
