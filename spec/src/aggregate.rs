//! Aggregate files: besides one file per secret, one file per group holding every requested
//! key of that group, in a format apps read (`.env`, JSON, Java properties, YAML). Chosen per
//! pod (annotation [`ANNOTATION`]) or per install (webhook setting `aggregateFormat`); the
//! agent renders it (its escaping is tested against each format's real parser) and publishes
//! it atomically with the other files, with the same modes.
//!
//! The file of group `G` is `lower(G).<ext>`, beside `lower(G)/` (`/etc/flyte/secrets/db.env`
//! next to `/etc/flyte/secrets/db/`). Its entries are the group's requests, keyed by the key
//! the naming rules use ([`crate::SecretRequest::naming_key`]). Flyte 2 managed secrets have
//! no group and are not aggregated.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::naming::{SecretPath, go_lower};
use crate::request::PathError;

/// Pod annotation choosing the aggregate format (`dotenv`, `json`, `properties`, `yaml`, or
/// `none` to turn off the install's default).
pub const ANNOTATION: &str = "flyte-secret-agent/aggregate";

/// A format of aggregate files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `KEY='value'` lines (python-dotenv, dotenv for Node, godotenv).
    Dotenv,
    /// One JSON object of strings.
    Json,
    /// Java `.properties` (`java.util.Properties.load`).
    Properties,
    /// A YAML mapping of strings.
    Yaml,
}

impl Format {
    /// Every format, as spelled in annotations and settings.
    pub const ALL: [Format; 4] = [Self::Dotenv, Self::Json, Self::Properties, Self::Yaml];

    /// The spelling in annotations and settings.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Dotenv => "dotenv",
            Self::Json => "json",
            Self::Properties => "properties",
            Self::Yaml => "yaml",
        }
    }

    /// The file extension.
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Dotenv => "env",
            Self::Json => "json",
            Self::Properties => "properties",
            Self::Yaml => "yaml",
        }
    }

    /// The aggregate file of `group` in this format, relative to the mount path.
    pub fn path(self, group: &str) -> Result<SecretPath, PathError> {
        SecretPath::new(format!(
            "{}.{}",
            go_lower(group.trim_end_matches('/')),
            self.extension()
        ))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is none of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aggregate format {0:?} is not one of dotenv, json, properties, yaml (or none)")]
pub struct UnknownFormat(pub String);

/// `none` turns aggregation off; anything else must be a [`Format`].
pub fn parse_choice(s: &str) -> Result<Option<Format>, UnknownFormat> {
    match s.trim() {
        "none" | "" => Ok(None),
        other => other.parse().map(Some),
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_choices() {
        assert_eq!(Format::Dotenv.path("DB").unwrap().as_str(), "db.env");
        assert_eq!(
            Format::Properties.path("secret/app").unwrap().as_str(),
            "secret/app.properties"
        );
        assert!(Format::Json.path("..data").is_err());
        assert_eq!(parse_choice("yaml"), Ok(Some(Format::Yaml)));
        assert_eq!(parse_choice("none"), Ok(None));
        assert_eq!(parse_choice("toml"), Err(UnknownFormat("toml".into())));
    }
}
