//! The text catalog: every title, explanation and remedy step, in Italian and English, with each step's origin.
//!
//! The data lives in `catalog/catalog.toml` (one file, both languages side by side, so a step's origin is written
//! once and a translator sees the Italian next to the English). It is embedded with `include_str!` and parsed on
//! first use. Parsing also validates it: every check and stage has an entry, every referenced step exists and
//! every step is used, every guide origin names a known guide, and both languages of every text have the same
//! placeholders. A test parses the embedded catalog, so a broken catalog fails `cargo test`, not the daemon.
//!
//! [`markdown`] renders the whole catalog as `docs/troubleshooting.md` (`cargo xtask codegen`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::RulesError;
use crate::diagnosis::{Arg, CheckId, Message, Origin, Severity, StageId, Step};
use crate::render;

const SOURCE: &str = include_str!("../catalog/catalog.toml");

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    // The embedded file is fixed at build time and `tests::embedded_catalog_is_valid` parses it, so this can only
    // fail in a build whose own tests fail.
    Catalog::parse(SOURCE).expect("the embedded catalog is valid")
});

/// The language text is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Lang {
    /// English.
    En,
    /// Italian, the language of the source guides.
    It,
}

impl Lang {
    /// Every language the catalog has.
    pub const ALL: &'static [Self] = &[Self::En, Self::It];

    /// The language tag: `en` or `it`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::It => "it",
        }
    }
}

impl FromStr for Lang {
    type Err = RulesError;

    /// Accepts `en`, `it`, and locale names such as `it_IT.UTF-8` or `en-GB` (only the language part counts).
    fn from_str(tag: &str) -> Result<Self, Self::Err> {
        let language = tag.split(['_', '-', '.', '@']).next().unwrap_or_default();
        match language.to_ascii_lowercase().as_str() {
            "en" => Ok(Self::En),
            "it" => Ok(Self::It),
            _ => Err(RulesError::UnknownLanguage {
                tag: tag.to_owned(),
            }),
        }
    }
}

/// The catalog as Markdown: every check with its severity, title, explanation, remedies (with their origins) and
/// manual checks, then the escalation plan, in English and then in Italian.
///
/// `cargo xtask codegen` writes this to `docs/troubleshooting.md`.
pub fn markdown() -> String {
    CATALOG.markdown()
}

pub(crate) fn catalog() -> &'static Catalog {
    &CATALOG
}

/// Renders `key` in `lang` with `args` filled in.
pub(crate) fn render(key: &str, args: &BTreeMap<String, Arg>, lang: Lang) -> String {
    match CATALOG.texts.get(key) {
        Some(text) => fill(text.get(lang), args, lang),
        None => format!("⟨{key}⟩"),
    }
}

/// A user-interface string (headings and labels of the renderers).
pub(crate) fn ui(key: &str, lang: Lang) -> String {
    render(&format!("ui.{key}"), &BTreeMap::new(), lang)
}

/// Replaces each `{name}` in `template` with its argument; unknown names stay as they are.
fn fill(template: &str, args: &BTreeMap<String, Arg>, lang: Lang) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        match placeholder_at(after) {
            Some(name) => {
                match args.get(name) {
                    Some(arg) => out.push_str(&render::arg(arg, lang)),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[name.len() + 2..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The placeholder name if `s` starts with `{name}` (lowercase ASCII letters, digits and `_`).
fn placeholder_at(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('{')?;
    let end = inner.find('}')?;
    let name = &inner[..end];
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    valid.then_some(name)
}

fn placeholders(template: &str) -> BTreeSet<&str> {
    template
        .match_indices('{')
        .filter_map(|(i, _)| placeholder_at(&template[i..]))
        .collect()
}

/// Why the catalog file is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CatalogError {
    /// The file is not valid TOML for the catalog's shape.
    #[error("failed to parse the catalog")]
    Toml(#[from] toml::de::Error),
    /// Two texts have the same key.
    #[error("duplicate catalog key `{0}`")]
    DuplicateKey(String),
    /// A check or stage lists a step that is not defined.
    #[error("`{owner}` refers to the undefined step `{step}`")]
    UnknownStep { owner: String, step: String },
    /// A step is defined and never used.
    #[error("step `{0}` is not used by any check or stage")]
    UnusedStep(String),
    /// A step's origin names a guide that is not listed.
    #[error("step `{step}` cites the unlisted guide `{seed}`")]
    UnknownGuide { step: String, seed: String },
    /// A step's origin is a string other than `own`.
    #[error("step `{step}` has origin `{origin}`; expected `own` or a guide table")]
    BadOrigin { step: String, origin: String },
    /// Checks or stages are missing, extra or out of order.
    #[error("the catalog's {what} are {found:?}; the code expects {expected:?}")]
    Ids {
        what: &'static str,
        found: Vec<String>,
        expected: Vec<String>,
    },
    /// The two languages of a text use different placeholders.
    #[error("`{key}` has placeholders {en:?} in English and {it:?} in Italian")]
    Placeholders {
        key: String,
        en: Vec<String>,
        it: Vec<String>,
    },
    /// A text is empty in one language.
    #[error("`{key}` is empty in `{lang}`")]
    Empty { key: String, lang: &'static str },
    /// A variant has no caption for the generated docs.
    #[error("variant `{0}` has no `ui.variant.{0}` caption")]
    VariantCaption(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    guide: Vec<Guide>,
    check: Vec<RawCheck>,
    stage: Vec<RawStage>,
    step: Vec<RawStep>,
    ui: BTreeMap<String, Localized>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Localized {
    en: String,
    it: String,
}

impl Localized {
    fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::It => &self.it,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Guide {
    seed: String,
    title: Localized,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: CheckId,
    severity: Severity,
    label: Localized,
    title: Localized,
    why: Localized,
    remedies: Vec<String>,
    manual: Vec<String>,
    #[serde(default)]
    variants: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    id: StageId,
    title: Localized,
    why: Localized,
    steps: Vec<String>,
    #[serde(default)]
    variants: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    origin: RawOrigin,
    en: String,
    it: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawOrigin {
    Tag(String),
    Guide {
        seed: String,
        section: String,
        step: u8,
    },
}

/// A check's catalog entry.
pub(crate) struct CheckDef {
    pub(crate) severity: Severity,
    remedies: Vec<String>,
    manual: Vec<String>,
    variants: BTreeMap<String, Vec<String>>,
}

impl CheckDef {
    /// The remedy step keys for `variant`, or the default ones.
    pub(crate) fn remedies(&self, variant: Option<&str>) -> &[String] {
        variant
            .and_then(|v| self.variants.get(v))
            .unwrap_or(&self.remedies)
    }

    pub(crate) fn manual(&self) -> &[String] {
        &self.manual
    }
}

/// A stage's catalog entry.
pub(crate) struct StageDef {
    steps: Vec<String>,
    variants: BTreeMap<String, Vec<String>>,
}

impl StageDef {
    pub(crate) fn steps(&self, variant: Option<&str>) -> &[String] {
        variant
            .and_then(|v| self.variants.get(v))
            .unwrap_or(&self.steps)
    }
}

/// The parsed, validated catalog.
pub(crate) struct Catalog {
    texts: HashMap<String, Localized>,
    origins: HashMap<String, Origin>,
    guides: Vec<Guide>,
    checks: Vec<(CheckId, CheckDef)>,
    stages: Vec<(StageId, StageDef)>,
}

impl Catalog {
    fn parse(source: &str) -> Result<Self, CatalogError> {
        let raw: RawCatalog = toml::from_str(source)?;
        let mut texts = HashMap::new();
        let mut insert = |key: String, text: Localized| -> Result<(), CatalogError> {
            for lang in Lang::ALL {
                if text.get(*lang).trim().is_empty() {
                    return Err(CatalogError::Empty {
                        key,
                        lang: lang.as_str(),
                    });
                }
            }
            let en: Vec<String> = placeholders(&text.en)
                .into_iter()
                .map(str::to_owned)
                .collect();
            let it: Vec<String> = placeholders(&text.it)
                .into_iter()
                .map(str::to_owned)
                .collect();
            if en != it {
                return Err(CatalogError::Placeholders { key, en, it });
            }
            match texts.insert(key.clone(), text) {
                Some(_) => Err(CatalogError::DuplicateKey(key)),
                None => Ok(()),
            }
        };

        let mut origins = HashMap::new();
        for step in raw.step {
            let origin = match step.origin {
                RawOrigin::Tag(tag) if tag == "own" => Origin::Own,
                RawOrigin::Tag(tag) => {
                    return Err(CatalogError::BadOrigin {
                        step: step.id,
                        origin: tag,
                    });
                }
                RawOrigin::Guide {
                    seed,
                    section,
                    step: n,
                } => {
                    if !raw.guide.iter().any(|g| g.seed == seed) {
                        return Err(CatalogError::UnknownGuide {
                            step: step.id,
                            seed,
                        });
                    }
                    Origin::Guide {
                        seed,
                        section,
                        step: n,
                    }
                }
            };
            if origins.insert(step.id.clone(), origin).is_some() {
                return Err(CatalogError::DuplicateKey(step.id));
            }
            insert(
                step.id,
                Localized {
                    en: step.en,
                    it: step.it,
                },
            )?;
        }
        for (key, text) in raw.ui {
            insert(format!("ui.{key}"), text)?;
        }
        for guide in &raw.guide {
            insert(format!("guide.{}", guide.seed), guide.title.clone())?;
        }

        let mut used = BTreeSet::new();
        let mut variants = BTreeSet::new();
        let use_steps = |owner: &str,
                         list: &[String],
                         used: &mut BTreeSet<String>|
         -> Result<(), CatalogError> {
            for step in list {
                if !origins.contains_key(step) {
                    return Err(CatalogError::UnknownStep {
                        owner: owner.to_owned(),
                        step: step.clone(),
                    });
                }
                used.insert(step.clone());
            }
            Ok(())
        };

        let mut checks = Vec::new();
        for check in raw.check {
            let id = check.id.as_str();
            insert(format!("{id}.label"), check.label)?;
            insert(format!("{id}.title"), check.title)?;
            insert(format!("{id}.why"), check.why)?;
            use_steps(id, &check.remedies, &mut used)?;
            use_steps(id, &check.manual, &mut used)?;
            for (name, list) in &check.variants {
                use_steps(id, list, &mut used)?;
                variants.insert(name.clone());
            }
            checks.push((
                check.id,
                CheckDef {
                    severity: check.severity,
                    remedies: check.remedies,
                    manual: check.manual,
                    variants: check.variants,
                },
            ));
        }
        let mut stages = Vec::new();
        for stage in raw.stage {
            let id = stage.id.as_str();
            insert(format!("{id}.title"), stage.title)?;
            insert(format!("{id}.why"), stage.why)?;
            use_steps(id, &stage.steps, &mut used)?;
            for (name, list) in &stage.variants {
                use_steps(id, list, &mut used)?;
                variants.insert(name.clone());
            }
            stages.push((
                stage.id,
                StageDef {
                    steps: stage.steps,
                    variants: stage.variants,
                },
            ));
        }

        if let Some(unused) = origins.keys().find(|k| !used.contains(*k)) {
            return Err(CatalogError::UnusedStep(unused.clone()));
        }
        if let Some(v) = variants
            .iter()
            .find(|v| !texts.contains_key(&format!("ui.variant.{v}")))
        {
            return Err(CatalogError::VariantCaption(v.clone()));
        }
        same_ids(
            "checks",
            checks.iter().map(|(id, _)| id.as_str()),
            CheckId::ALL.iter().map(|id| id.as_str()),
        )?;
        same_ids(
            "stages",
            stages.iter().map(|(id, _)| id.as_str()),
            StageId::ALL.iter().map(|id| id.as_str()),
        )?;

        Ok(Self {
            texts,
            origins,
            guides: raw.guide,
            checks,
            stages,
        })
    }

    pub(crate) fn check(&self, id: CheckId) -> Option<&CheckDef> {
        self.checks
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, def)| def)
    }

    pub(crate) fn stage(&self, id: StageId) -> Option<&StageDef> {
        self.stages
            .iter()
            .find(|(s, _)| *s == id)
            .map(|(_, def)| def)
    }

    /// The steps for `keys`, each with its origin and `args`.
    pub(crate) fn steps(&self, keys: &[String], args: &BTreeMap<String, Arg>) -> Vec<Step> {
        keys.iter()
            .filter_map(|key| {
                let origin = self.origins.get(key)?.clone();
                Some(Step {
                    text: Message::with_args(key.clone(), args.clone()),
                    origin,
                })
            })
            .collect()
    }

    fn text<'a>(&'a self, key: &'a str, lang: Lang) -> &'a str {
        self.texts.get(key).map_or(key, |t| t.get(lang))
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("<!-- Generated by `cargo xtask codegen` from crates/backupd-rules/catalog/catalog.toml: edit that file, not this one. -->\n\n");
        for &lang in Lang::ALL {
            self.markdown_lang(&mut out, lang);
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }

    fn markdown_lang(&self, out: &mut String, lang: Lang) {
        let t = |key: &str| self.text(&format!("ui.{key}"), lang).to_owned();
        // Writing to a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(out, "# {}\n", t("doc.title"));
        let _ = writeln!(out, "{}\n", t("doc.intro"));
        let _ = writeln!(out, "{}\n", t("doc.placeholders"));
        let _ = writeln!(out, "{}\n", t("doc.sources"));
        for guide in &self.guides {
            let _ = writeln!(out, "- `{}`: {}", guide.seed, guide.title.get(lang));
        }
        out.push('\n');

        let _ = writeln!(out, "## {}\n", t("doc.checks"));
        for (id, def) in &self.checks {
            let _ = writeln!(
                out,
                "### `{id}`: {}\n",
                self.text(&format!("{id}.title"), lang)
            );
            let _ = writeln!(
                out,
                "{}: {}. {}: {}.\n",
                t("severity"),
                t(&format!("severity.{}", def.severity.as_str())),
                t("doc.checks_what"),
                self.text(&format!("{id}.label"), lang)
            );
            let _ = writeln!(out, "{}\n", self.text(&format!("{id}.why"), lang));
            let _ = writeln!(out, "{}:\n", t("what_to_do"));
            self.markdown_steps(out, &def.remedies, lang);
            for (name, list) in &def.variants {
                let _ = writeln!(
                    out,
                    "{} ({}):\n",
                    t("what_to_do"),
                    t(&format!("variant.{name}"))
                );
                self.markdown_steps(out, list, lang);
            }
            let _ = writeln!(out, "{}:\n", t("doc.manual"));
            self.markdown_steps(out, &def.manual, lang);
        }

        let _ = writeln!(out, "## {}\n", t("escalation"));
        let _ = writeln!(out, "{}\n", t("doc.escalation_intro"));
        for (n, (id, def)) in self.stages.iter().enumerate() {
            let _ = writeln!(
                out,
                "### {}. {}\n",
                n + 1,
                self.text(&format!("{id}.title"), lang)
            );
            let _ = writeln!(out, "{}\n", self.text(&format!("{id}.why"), lang));
            self.markdown_steps(out, &def.steps, lang);
            for (name, list) in &def.variants {
                let _ = writeln!(out, "{}:\n", t(&format!("variant.{name}")));
                self.markdown_steps(out, list, lang);
            }
        }
    }

    fn markdown_steps(&self, out: &mut String, keys: &[String], lang: Lang) {
        for (n, key) in keys.iter().enumerate() {
            let origin = match self.origins.get(key) {
                Some(Origin::Guide {
                    seed,
                    section,
                    step,
                }) => format!(
                    "{} `{seed}`, «{section}», {} {step}",
                    self.text("ui.origin.guide", lang),
                    self.text("ui.origin.step", lang)
                ),
                Some(Origin::Own) | None => self.text("ui.origin.own", lang).to_owned(),
            };
            let _ = writeln!(out, "{}. {} _({origin})_", n + 1, self.text(key, lang));
        }
        out.push('\n');
    }
}

fn same_ids<'a>(
    what: &'static str,
    found: impl Iterator<Item = &'a str>,
    expected: impl Iterator<Item = &'a str>,
) -> Result<(), CatalogError> {
    let found: Vec<String> = found.map(str::to_owned).collect();
    let expected: Vec<String> = expected.map(str::to_owned).collect();
    if found == expected {
        Ok(())
    } else {
        Err(CatalogError::Ids {
            what,
            found,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_valid() {
        if let Err(e) = Catalog::parse(SOURCE) {
            panic!("{e}: {e:?}");
        }
    }

    #[test]
    fn both_languages_have_the_same_keys_and_placeholders() {
        // The parser enforces it; this spells the rule out over the parsed texts as well.
        let catalog = catalog();
        assert!(catalog.texts.len() > 100);
        for (key, text) in &catalog.texts {
            assert!(!text.en.trim().is_empty(), "{key} en");
            assert!(!text.it.trim().is_empty(), "{key} it");
            assert_eq!(placeholders(&text.en), placeholders(&text.it), "{key}");
        }
    }

    #[test]
    fn italian_and_english_differ() {
        // A copy-paste of one language into the other would pass every other check.
        let catalog = catalog();
        for (key, text) in &catalog.texts {
            let only_code = text
                .en
                .chars()
                .all(|c| !c.is_alphabetic() || c.is_ascii_uppercase());
            if !only_code && !key.starts_with("ui.variant.") {
                assert_ne!(text.en, text.it, "{key} is not translated");
            }
        }
    }

    fn broken(from: &str, to: &str) -> CatalogError {
        assert!(
            SOURCE.contains(from),
            "fixture text `{from}` not in catalog"
        );
        match Catalog::parse(&SOURCE.replacen(from, to, 1)) {
            Ok(_) => panic!("replacing `{from}` with `{to}` still parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn validation_rejects_broken_catalogs() {
        assert!(matches!(
            broken("\"g1.wifi.check_tick\",", "\"g1.wifi.no_such_step\","),
            CatalogError::UnknownStep { .. } | CatalogError::UnusedStep(_)
        ));
        assert!(matches!(
            broken("id = \"wifi.not_connected\"", "id = \"wifi.disconnected\""),
            CatalogError::Toml(_)
        ));
        assert!(matches!(
            broken("{estimate}", "{estimat}"),
            CatalogError::Placeholders { .. }
        ));
        assert!(matches!(
            broken("origin = \"own\"", "origin = \"mine\""),
            CatalogError::BadOrigin { .. }
        ));
        assert!(matches!(
            broken(
                "seed = \"001_aca6c7205cd1f5de.txt\", section",
                "seed = \"002.txt\", section"
            ),
            CatalogError::UnknownGuide { .. }
        ));
    }

    #[test]
    fn fill_replaces_known_and_keeps_unknown_placeholders() {
        let mut args = BTreeMap::new();
        args.insert("n".to_owned(), Arg::Count(3));
        assert_eq!(fill("{n} of {m} {", &args, Lang::En), "3 of {m} {");
        assert_eq!(fill("{N} {}", &args, Lang::En), "{N} {}");
        assert_eq!(fill("à{n}è", &args, Lang::It), "à3è");
    }

    #[test]
    fn languages_parse_from_tags_and_locales() {
        assert_eq!("it".parse::<Lang>().ok(), Some(Lang::It));
        assert_eq!("it_IT.UTF-8".parse::<Lang>().ok(), Some(Lang::It));
        assert_eq!("EN-gb".parse::<Lang>().ok(), Some(Lang::En));
        assert!("fr_FR".parse::<Lang>().is_err());
        assert!("".parse::<Lang>().is_err());
    }

    #[test]
    fn missing_keys_render_visibly() {
        assert_eq!(
            render("no.such.key", &BTreeMap::new(), Lang::En),
            "⟨no.such.key⟩"
        );
    }
}
