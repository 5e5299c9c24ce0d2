//! The `[masking]` table of a policy: which detectors run on result rows,
//! how each kind of value is replaced, and which roles see rows unmasked.

use super::rule::{line_of, role, ROLES};
use super::PolicyError;
use crate::identity::Role;
use crate::mask::{Detectors, Kind, MaskSettings, Strategy};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// Masking as the policy sets it. The token key is not policy: it is
/// Airlock's own secret and is added by the gate.
#[derive(Clone, Debug)]
pub struct MaskingPolicy {
    pub enabled: bool,
    pub settings: MaskSettings,
    /// Sessions of these roles get rows unmasked (they are still audited).
    pub exempt_roles: Vec<Role>,
}

impl Default for MaskingPolicy {
    fn default() -> Self {
        MaskingPolicy {
            enabled: true,
            settings: MaskSettings::default(),
            exempt_roles: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMasking {
    enabled: Option<bool>,
    detectors: Option<Vec<Spanned<String>>>,
    disable: Option<Vec<Spanned<String>>>,
    strategy: Option<Spanned<String>>,
    strategies: Option<BTreeMap<String, Spanned<String>>>,
    exempt_roles: Option<Vec<Spanned<String>>>,
    json_secret_keys: Option<bool>,
}

/// Names that stand for several detectors in `detectors` and `disable`.
const GROUPS: &str = "standard, all, national_ids, secrets";

fn group(name: &str) -> Option<Vec<Kind>> {
    match name {
        "standard" => Some(Detectors::standard().kinds().collect()),
        "all" => Some(Kind::ALL.to_vec()),
        "national_ids" => Some(Kind::NATIONAL_IDS.to_vec()),
        "secrets" => Some(Kind::ALL.into_iter().filter(|k| k.is_secret()).collect()),
        _ => Kind::from_name(name).map(|k| vec![k]),
    }
}

fn kind_names() -> String {
    Kind::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn validate(
    file: &str,
    text: &str,
    raw: Spanned<RawMasking>,
) -> Result<(MaskingPolicy, usize), PolicyError> {
    let header = line_of(text, raw.span().start);
    let raw = raw.into_inner();
    let err = |at: usize, problem: String| PolicyError {
        file: file.to_string(),
        line: Some(line_of(text, at)),
        rule: None,
        problem: format!("[masking]: {problem}"),
    };
    // A detector or group name, by the key it is listed under.
    let kinds_of = |item: &Spanned<String>, key: &str| {
        group(item.get_ref()).ok_or_else(|| {
            err(
                item.span().start,
                format!(
                    "unknown detector \"{}\" in {key} (expected {GROUPS}, or one of {})",
                    item.get_ref(),
                    kind_names()
                ),
            )
        })
    };
    let mut detectors = match &raw.detectors {
        None => Detectors::standard(),
        Some(_) => Detectors::none(),
    };
    for item in raw.detectors.iter().flatten() {
        let kinds = kinds_of(item, "detectors")?;
        for &k in &kinds {
            detectors = detectors.with(k);
        }
        // `standard` finds national identifiers in their printed forms;
        // naming one (or `national_ids`, `all`) asks for bare runs too.
        if item.get_ref() != "standard" {
            detectors = detectors.with_bare_national_ids(&kinds);
        }
    }
    for item in raw.disable.iter().flatten() {
        for k in kinds_of(item, "disable")? {
            detectors = detectors.without(k);
        }
    }
    let strategy_of = |s: &Spanned<String>| {
        Strategy::from_name(s.get_ref()).ok_or_else(|| {
            err(
                s.span().start,
                format!(
                    "unknown strategy \"{}\" (expected redact, partial, token or null)",
                    s.get_ref()
                ),
            )
        })
    };
    let default_strategy = match &raw.strategy {
        Some(s) => strategy_of(s)?,
        None => Strategy::Redact,
    };
    let mut strategies = Vec::new();
    for (name, value) in raw.strategies.iter().flatten() {
        let kinds = group(name).ok_or_else(|| {
            err(
                value.span().start,
                format!(
                    "unknown detector \"{name}\" in strategies (expected {GROUPS}, or one of {})",
                    kind_names()
                ),
            )
        })?;
        let strategy = strategy_of(value)?;
        strategies.extend(kinds.into_iter().map(|k| (k, strategy)));
    }
    let mut exempt_roles = Vec::new();
    for item in raw.exempt_roles.iter().flatten() {
        let r = role(item.get_ref()).ok_or_else(|| {
            err(
                item.span().start,
                format!(
                    "unknown role \"{}\" in exempt_roles (expected one of {ROLES})",
                    item.get_ref()
                ),
            )
        })?;
        if r == Role::Agent {
            return Err(err(
                item.span().start,
                "agents cannot be exempted from masking".into(),
            ));
        }
        exempt_roles.push(r);
    }
    let json_secret_keys = raw.json_secret_keys.unwrap_or(false);
    let policy = MaskingPolicy {
        enabled: raw.enabled.unwrap_or(true),
        settings: MaskSettings {
            detectors,
            strategies,
            default_strategy,
            json_secret_keys,
            token_key: [0; 32],
        },
        exempt_roles,
    };
    Ok((policy, header))
}
