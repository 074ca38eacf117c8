//! The pipeline's configuration parameters: [`Params`] as given to `init`, and
//! [`param`] to read one later.

use std::fmt::Display;
use std::str::FromStr;

/// The pipeline's parameters (`configuration.params` in the pipeline definition), as
/// given to [`Transform::init`](crate::Transform::init).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parameters from `(name, value)` pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Params {
        Params { pairs }
    }

    /// The value of parameter `name`, if the pipeline sets it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parameter `name` parsed as a `T`: `Ok(None)` when it is not set, and an error
    /// naming the parameter and its value when it does not parse (ready to return
    /// from `init`).
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.get(name)
            .map(|value| {
                value
                    .parse()
                    .map_err(|e| format!("parameter {name} has an invalid value {value:?}: {e}"))
            })
            .transpose()
    }

    /// Parameter `name` parsed as a `T`, or `default` when it is not set.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.parse(name)?.unwrap_or(default))
    }

    /// Every `(name, value)` pair, in the order the broker gave them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The pairs as given.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Params {
        Params::new(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// The value of one of the pipeline's parameters, or `None`; callable from any
/// export (natively, reads the parameters given to `testing`).
pub fn param(name: &str) -> Option<String> {
    crate::sys::get_param(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_name_and_iteration_in_order() {
        let params: Params = [("a", "1"), ("b", "two")].into_iter().collect();
        assert_eq!(params.get("b"), Some("two"));
        assert_eq!(params.get("c"), None);
        assert_eq!(
            params.iter().collect::<Vec<_>>(),
            vec![("a", "1"), ("b", "two")]
        );
        assert_eq!(params.len(), 2);
        assert!(Params::default().is_empty());
    }

    #[test]
    fn parse_names_the_parameter_that_does_not_parse() {
        let params: Params = [("n", "5"), ("bad", "x")].into_iter().collect();
        assert_eq!(params.parse::<u32>("n"), Ok(Some(5)));
        assert_eq!(params.parse::<u32>("missing"), Ok(None));
        assert_eq!(params.parse_or("missing", 100.0), Ok(100.0));
        let e = params.parse::<u32>("bad").unwrap_err();
        assert!(e.contains("parameter bad") && e.contains("\"x\""), "{e}");
    }
}
