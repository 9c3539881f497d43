//! Rules as data: `rules/*.toml`, compiled into the binary, plus site rules
//! from `--rules DIR`. A rule has a CEL condition (`when`), may iterate over
//! a list of facts (`each`, binding `it`), and its title, evidence and fix
//! are templates with `{{ cel-expression }}` holes. See docs/rules.md.

use std::path::Path;
use std::sync::{Arc, LazyLock, OnceLock};

use cel::{Env, Program};
use serde::Deserialize;

/// The built-in rule files. A test checks that every file in rules/ is here.
pub const BUILTIN: &[(&str, &str)] = &[
    ("rules/gpus.toml", include_str!("../../rules/gpus.toml")),
    ("rules/pcie.toml", include_str!("../../rules/pcie.toml")),
    ("rules/sycl.toml", include_str!("../../rules/sycl.toml")),
    ("rules/python.toml", include_str!("../../rules/python.toml")),
    ("rules/intel.toml", include_str!("../../rules/intel.toml")),
    ("rules/probes.toml", include_str!("../../rules/probes.toml")),
    (
        "rules/intel_runtime.toml",
        include_str!("../../rules/intel_runtime.toml"),
    ),
    ("rules/nvidia.toml", include_str!("../../rules/nvidia.toml")),
    ("rules/amd.toml", include_str!("../../rules/amd.toml")),
    ("rules/watch.toml", include_str!("../../rules/watch.toml")),
    ("rules/vulkan.toml", include_str!("../../rules/vulkan.toml")),
    ("rules/access.toml", include_str!("../../rules/access.toml")),
    (
        "rules/container.toml",
        include_str!("../../rules/container.toml"),
    ),
    ("rules/ollama.toml", include_str!("../../rules/ollama.toml")),
];

pub const AREAS: &[&str] = &[
    "host", "gpus", "drivers", "sycl", "nvidia", "amd", "vulkan", "python", "env", "probes",
    "watch",
];

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
    /// The word a person reads on a page (`as_str` is the JSON's and the
    /// rule files'): one vocabulary in every text output.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Info => "note",
            Severity::Warn => "warning",
            Severity::Error => "error",
        }
    }
}

/// A status or verdict of the JSON (`ok`, `info`, `warn`, `error`, ...) in
/// the words of the text pages: `warn` is a warning, `info` a note.
pub fn status_word(status: &str) -> &str {
    match status {
        "warn" => "warning",
        "info" => "note",
        s => s,
    }
}

/// What kind of problem a rule finds, by who must act on it. Cluster hooks
/// (Slurm, node-problem-detector) take a node out of service only for the
/// first two; the other two belong to one user or are for information.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RuleClass {
    /// The hardware is at fault: a GPU off the bus, a degraded link, a
    /// throttling card. An operator drains the node and sends someone.
    Hardware,
    /// The node's installation is at fault: a driver, runtime or BIOS
    /// setting the admin must fix; every job on the node suffers.
    NodeConfig,
    /// One user's environment: a selector variable, a Python package set.
    /// The node is fine; the person who runs the job fixes it.
    UserEnv,
    /// Worth knowing, nothing is broken.
    Advice,
}

impl RuleClass {
    pub const ALL: [RuleClass; 4] = [
        RuleClass::Hardware,
        RuleClass::NodeConfig,
        RuleClass::UserEnv,
        RuleClass::Advice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleClass::Hardware => "hardware",
            RuleClass::NodeConfig => "node-config",
            RuleClass::UserEnv => "user-env",
            RuleClass::Advice => "advice",
        }
    }

    pub fn parse(s: &str) -> Option<RuleClass> {
        RuleClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Does a problem of this class take the node out of service?
    pub fn node_problem(self) -> bool {
        matches!(self, RuleClass::Hardware | RuleClass::NodeConfig)
    }
}

/// A rule as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub severity: Severity,
    pub area: String,
    /// Required; read as a string so a missing or misspelt class is
    /// reported with the rule's id (serde's message would name only a line).
    /// [`Rule::class`] holds the parsed value.
    #[serde(default)]
    pub class: Option<String>,
    pub title: String,
    pub when: String,
    #[serde(default)]
    pub each: Option<String>,
    #[serde(default)]
    pub evidence: String,
    pub explain: String,
    pub fix: String,
    #[serde(default)]
    pub refs: Vec<String>,
    /// Fixtures (names under fixtures/rigs/) this rule must fire on.
    #[serde(default)]
    pub fires_on: Vec<String>,
    /// Close fixtures this rule must stay silent on.
    #[serde(default)]
    pub silent_on: Vec<String>,
    /// Ids of rules that say the same thing more precisely: when one of them
    /// fires, this rule's diagnoses are dropped.
    #[serde(default)]
    pub suppressed_by: Vec<String>,
    /// The finding is that rigdoctor could not look (a tool hung or failed):
    /// health hooks (`--format npd`) report Unknown for it, not NonOK.
    #[serde(default)]
    pub could_not_look: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

/// A piece of a template.
pub enum Segment {
    Text(String),
    Expr { source: String, program: Program },
}

/// A `{{ ... }}` template: compiled with its rule ([`Compile::Eager`]), or
/// at its first use ([`Compile::Lazy`]: `check` renders the templates of
/// the few rules that fire, and compiling all of them was two thirds of
/// the rules' start-up cost, issue 15).
pub struct Template {
    text: String,
    origin: String,
    id: String,
    field: &'static str,
    segments: OnceLock<Result<Vec<Segment>, RuleError>>,
}

impl Template {
    fn new(text: &str, origin: &str, id: &str, field: &'static str) -> Self {
        Template {
            text: text.to_string(),
            origin: origin.to_string(),
            id: id.to_string(),
            field,
            segments: OnceLock::new(),
        }
    }

    /// The pieces, compiled on first use.
    pub fn segments(&self) -> Result<&[Segment], &RuleError> {
        self.segments
            .get_or_init(|| {
                compile_template(&cel_env(), &self.text, &self.origin, &self.id, self.field)
            })
            .as_deref()
    }
}

/// When a rule's templates compile. A rule's `when` and `each` always
/// compile with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compile {
    /// With the rule: a broken template is an error of the rule file.
    Eager,
    /// At first use, for built-in rules in `check` (the test suite compiles
    /// every built-in template eagerly, so none of them can be broken).
    Lazy,
}

pub struct Rule {
    pub spec: RuleSpec,
    /// Where it came from (`rules/sycl.toml`, or a site file path).
    pub origin: String,
    pub class: RuleClass,
    pub when: Program,
    /// `each`, compiled once with the rule.
    pub each: Option<Program>,
    pub title: Template,
    pub evidence: Template,
    pub fix: Template,
    pub explain: Template,
}

/// Why rules could not be loaded (exit code 2: rigdoctor cannot do its job).
#[derive(Debug, Clone)]
pub struct RuleError {
    pub origin: String,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl std::error::Error for RuleError {}

static CEL_ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // The extension registers fresh names on a fresh stdlib; a failure here
    // would be a cel bug, and rules would then fail to compile and say so.
    let _ = cel::extensions::strings(&mut env);
    Arc::new(env)
});

/// A CEL map key for a field name.
pub fn key(name: &str) -> cel::objects::Key {
    cel::objects::Key::String(Arc::new(name.to_string()))
}

/// The CEL environment rules are compiled and run in: the standard library
/// plus the strings extension (`split`, `join`, `lowerAscii`, ...).
pub fn cel_env() -> Arc<Env> {
    CEL_ENV.clone()
}

fn compile_template(
    env: &Env,
    text: &str,
    origin: &str,
    id: &str,
    field: &str,
) -> Result<Vec<Segment>, RuleError> {
    let mut segs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            segs.push(Segment::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(RuleError {
                origin: origin.into(),
                message: format!("{id}.{field}: '{{{{' without '}}}}'"),
            });
        };
        let source = after[..end].trim().to_string();
        let program = env.compile(&source).map_err(|e| RuleError {
            origin: origin.into(),
            message: format!("{id}.{field}: {{{{ {source} }}}} does not compile: {e}"),
        })?;
        segs.push(Segment::Expr { source, program });
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        segs.push(Segment::Text(rest.to_string()));
    }
    Ok(segs)
}

fn valid_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
}

/// Parse and compile one rule file.
pub fn parse_file(env: &Env, origin: &str, text: &str) -> Result<Vec<Rule>, RuleError> {
    parse_file_with(env, origin, text, Compile::Eager)
}

/// [`parse_file`], compiling the templates as `templates` says.
pub fn parse_file_with(
    env: &Env,
    origin: &str,
    text: &str,
    templates: Compile,
) -> Result<Vec<Rule>, RuleError> {
    let file: RuleFile = toml::from_str(text).map_err(|e| RuleError {
        origin: origin.into(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for spec in file.rule {
        let id = spec.id.clone();
        let bad = |m: String| RuleError {
            origin: origin.into(),
            message: format!("{id}: {m}"),
        };
        if !valid_id(&id) {
            return Err(bad(
                "ids are UPPER-KEBAB-CASE with at least two parts (AREA-WHAT)".into(),
            ));
        }
        if !AREAS.contains(&spec.area.as_str()) {
            return Err(bad(format!("area must be one of {}", AREAS.join(", "))));
        }
        let valid = RuleClass::ALL.map(|c| c.as_str()).join(", ");
        let class = match spec.class.as_deref() {
            None => {
                return Err(bad(format!(
                    "no `class`; every rule says what kind of problem it is: one of {valid}"
                )));
            }
            Some(c) => RuleClass::parse(c)
                .ok_or_else(|| bad(format!("class {c:?} is not one of {valid}")))?,
        };
        if spec.title.trim().is_empty()
            || spec.fix.trim().is_empty()
            || spec.explain.trim().is_empty()
        {
            return Err(bad("title, explain and fix must say something".into()));
        }
        let when = env
            .compile(&spec.when)
            .map_err(|e| bad(format!("`when` does not compile: {e}")))?;
        let each = spec
            .each
            .as_deref()
            .map(|e| env.compile(e))
            .transpose()
            .map_err(|e| bad(format!("`each` does not compile: {e}")))?;
        let title = Template::new(&spec.title, origin, &id, "title");
        let evidence = Template::new(&spec.evidence, origin, &id, "evidence");
        let fix = Template::new(&spec.fix, origin, &id, "fix");
        let explain = Template::new(&spec.explain, origin, &id, "explain");
        if templates == Compile::Eager {
            for t in [&title, &evidence, &fix, &explain] {
                t.segments().map_err(Clone::clone)?;
            }
        }
        out.push(Rule {
            spec,
            origin: origin.into(),
            class,
            when,
            each,
            title,
            evidence,
            fix,
            explain,
        });
    }
    Ok(out)
}

/// The built-in rules, then the site rules of `extra` (a directory of
/// `*.toml`). A site rule with a built-in's id replaces it, so a site can
/// change a severity or a fix. Duplicate ids within one set are an error.
pub fn load(extra: Option<&Path>) -> Result<Vec<Rule>, RuleError> {
    load_with(extra, Compile::Eager)
}

/// [`load`] for `check`: the built-in rules' templates compile when a rule
/// fires; site rules (which may be broken) still compile whole.
pub fn load_for_check(extra: Option<&Path>) -> Result<Vec<Rule>, RuleError> {
    load_with(extra, Compile::Lazy)
}

fn load_with(extra: Option<&Path>, builtin: Compile) -> Result<Vec<Rule>, RuleError> {
    let rules = load_builtin_with(extra, |_| true, builtin)?;
    for r in &rules {
        if let Some(unknown) = r
            .spec
            .suppressed_by
            .iter()
            .find(|s| !rules.iter().any(|x| &x.spec.id == *s))
        {
            return Err(RuleError {
                origin: r.origin.clone(),
                message: format!("{}: suppressed_by names no rule {unknown}", r.spec.id),
            });
        }
    }
    Ok(rules)
}

/// [`load`], but only the built-in files `keep` accepts (by origin, e.g.
/// `rules/watch.toml`): `watch` compiles just its own rules, which keeps its
/// memory small for a long run.
pub fn load_builtin_where(
    extra: Option<&Path>,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<Rule>, RuleError> {
    load_builtin_with(extra, keep, Compile::Eager)
}

fn load_builtin_with(
    extra: Option<&Path>,
    keep: impl Fn(&str) -> bool,
    builtin: Compile,
) -> Result<Vec<Rule>, RuleError> {
    let env = cel_env();
    let mut rules: Vec<Rule> = Vec::new();
    for (origin, text) in BUILTIN.iter().filter(|(o, _)| keep(o)) {
        for r in parse_file_with(&env, origin, text, builtin)? {
            if rules.iter().any(|x| x.spec.id == r.spec.id) {
                return Err(RuleError {
                    origin: origin.to_string(),
                    message: format!("duplicate rule id {}", r.spec.id),
                });
            }
            rules.push(r);
        }
    }
    if let Some(dir) = extra {
        let origin = dir.display().to_string();
        let rd = std::fs::read_dir(dir).map_err(|e| RuleError {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut site_ids: Vec<String> = Vec::new();
        for f in files {
            let origin = f.display().to_string();
            let text = std::fs::read_to_string(&f).map_err(|e| RuleError {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
            for r in parse_file(&env, &origin, &text)? {
                if site_ids.contains(&r.spec.id) {
                    return Err(RuleError {
                        origin,
                        message: format!("duplicate rule id {}", r.spec.id),
                    });
                }
                site_ids.push(r.spec.id.clone());
                match rules.iter_mut().find(|x| x.spec.id == r.spec.id) {
                    Some(slot) => *slot = r,
                    None => rules.push(r),
                }
            }
        }
    }
    Ok(rules)
}

/// Fact lists that grow with the rig: one item per GPU (as the bus, a
/// vendor tool or a runtime lists them, or per device node), or per pair
/// of GPUs. A rule that scans one of them inside a scan of one of them
/// does work quadratic (or cubic) in the GPUs; what it wants belongs in
/// derive (issue 15: `NV-NVLINK-MISSING` once took 97 s on 256 GPUs). A
/// list that is not here (probes, packages, releases) is bounded by
/// rigdoctor or the installation, not by the GPUs.
pub const RIG_SIZED: &[&str] = &[
    "gpus",
    "nvidia.gpus",
    "nvidia.links",
    "nvidia.lost",
    "nvidia.sound",
    "nvidia.visible.indices",
    "amd.agents",
    "amd.cards",
    "amd.smi_devices",
    "amd.smi.gpus",
    "amd.links",
    "amd.visible.indices",
    "sycl.devices",
    "sycl.visible",
    "sycl.mask.kept",
    "sycl.verbose.platforms",
    "xpu_smi.devices",
    "vulkan.devices",
    "vulkan.missing",
    "vulkan.mesa_too_old",
    "vulkan.discrete_indices",
    "vulkan.ggml_visible_indices",
    "vulkan.ggml_visible_integrated",
    "intel_runtime.unlisted",
    "intel_runtime.generic_names",
    "python.deep.xpu_devices",
    "container.gpus_without_nodes",
    "access.nodes",
    "access.blocked",
    "access.missing",
];

/// The places where `rule` scans a rig-sized list inside a scan of one:
/// a comprehension over one (or an `x in list`, a scan too) in the body of
/// another, or in `when` or a template of a rule whose `each` ranges over
/// one (those run per item).
/// Empty for a rule whose cost is linear in the GPUs.
pub fn nested_scans(rule: &Rule) -> Vec<String> {
    use cel::common::ast::{EntryExpr, Expr, IdedExpr};

    /// The first rig-sized list `e` reads, if any.
    fn mentions_rig_sized(e: &IdedExpr) -> Option<&'static str> {
        let mut found = None;
        visit(e, &mut |x| {
            let mut segs = Vec::new();
            let mut cur = x;
            loop {
                match &cur.expr {
                    Expr::Ident(n) => {
                        segs.push(n.as_str());
                        break;
                    }
                    Expr::Select(s) if !s.test => {
                        segs.push(s.field.as_str());
                        cur = &s.operand;
                    }
                    _ => return,
                }
            }
            segs.reverse();
            // `nvidia.links` and anything below it (`nvidia.links.x`) counts.
            let name = segs.join(".");
            if found.is_none() {
                found = RIG_SIZED
                    .iter()
                    .find(|r| name == **r || name.starts_with(&format!("{r}.")))
                    .copied();
            }
        });
        found
    }

    /// Every sub-expression, pre-order.
    fn visit(e: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
        f(e);
        match &e.expr {
            Expr::Call(c) => {
                if let Some(t) = &c.target {
                    visit(t, f);
                }
                c.args.iter().for_each(|a| visit(a, f));
            }
            Expr::Comprehension(c) => {
                for x in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    visit(x, f);
                }
            }
            Expr::List(l) => l.elements.iter().for_each(|x| visit(x, f)),
            Expr::Map(m) => {
                for en in &m.entries {
                    if let EntryExpr::MapEntry(me) = &en.expr {
                        visit(&me.key, f);
                        visit(&me.value, f);
                    }
                }
            }
            Expr::Struct(st) => {
                for en in &st.entries {
                    if let EntryExpr::StructField(sf) = &en.expr {
                        visit(&sf.value, f);
                    }
                }
            }
            Expr::Select(s) => visit(&s.operand, f),
            _ => {}
        }
    }

    /// Scans of rig-sized lists met while already inside a scan of one
    /// (`inside`: the outer list), as (inner, outer).
    fn walk(
        e: &IdedExpr,
        inside: Option<&'static str>,
        out: &mut Vec<(&'static str, &'static str)>,
    ) {
        match &e.expr {
            Expr::Comprehension(c) => {
                let over = mentions_rig_sized(&c.iter_range);
                if let (Some(inner), Some(outer)) = (over, inside) {
                    out.push((inner, outer));
                }
                walk(&c.iter_range, inside, out);
                walk(&c.accu_init, inside, out);
                for x in [&c.loop_cond, &c.loop_step, &c.result] {
                    walk(x, inside.or(over), out);
                }
            }
            Expr::Call(c) => {
                // `x in list` scans the list.
                if c.func_name == cel::common::ast::operators::IN
                    && let Some(outer) = inside
                    && let Some(inner) = c.args.get(1).and_then(mentions_rig_sized)
                {
                    out.push((inner, outer));
                }
                if let Some(t) = &c.target {
                    walk(t, inside, out);
                }
                c.args.iter().for_each(|a| walk(a, inside, out));
            }
            Expr::List(l) => l.elements.iter().for_each(|x| walk(x, inside, out)),
            Expr::Map(m) => {
                for en in &m.entries {
                    if let EntryExpr::MapEntry(me) = &en.expr {
                        walk(&me.key, inside, out);
                        walk(&me.value, inside, out);
                    }
                }
            }
            Expr::Select(s) => walk(&s.operand, inside, out),
            _ => {}
        }
    }

    let per_item = rule
        .each
        .as_ref()
        .and_then(|p| mentions_rig_sized(p.expression()));
    let mut found = Vec::new();
    let mut check = |what: &str, e: &IdedExpr, inside: Option<&'static str>| {
        let mut pairs = Vec::new();
        walk(e, inside, &mut pairs);
        pairs.dedup();
        for (inner, outer) in pairs {
            found.push(format!(
                "{}: `{what}` scans {inner} inside a scan of {outer}{}",
                rule.spec.id,
                if inside.is_some() { " (`each`)" } else { "" }
            ));
        }
    };
    if let Some(p) = &rule.each {
        check("each", p.expression(), None);
    }
    check("when", rule.when.expression(), per_item);
    for (field, t) in [
        ("title", &rule.title),
        ("evidence", &rule.evidence),
        ("explain", &rule.explain),
        ("fix", &rule.fix),
    ] {
        // A template that does not compile is the loader's error to report.
        for seg in t.segments().unwrap_or_default() {
            if let Segment::Expr { program, .. } = seg {
                check(field, program.expression(), per_item);
            }
        }
    }
    found.dedup();
    found
}

/// One rule as `rigdoctor rules --format json` lists it
/// (docs/schema/rules.json: the document is an array of these).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Listing<'a> {
    pub id: &'a str,
    pub severity: Severity,
    pub class: RuleClass,
    pub area: &'a str,
    /// The title with its template holes as placeholders.
    pub title: String,
    pub refs: &'a [String],
    /// `rules/<file>.toml` for a built-in rule, else the site file's path.
    pub origin: &'a str,
}

impl<'a> Listing<'a> {
    pub fn of(r: &'a Rule) -> Self {
        Listing {
            id: &r.spec.id,
            severity: r.spec.severity,
            class: r.class,
            area: &r.spec.area,
            title: outline(&r.spec.title),
            refs: &r.spec.refs,
            origin: &r.origin,
        }
    }
}

/// A template with its holes shown as placeholders, for listings:
/// `{{ it.name }} at {{ it.pci }}` -> `<name> at <pci>`; anything more
/// complex than a field path reads as `<value>`. Listings and `explain`
/// prefer a built-in rule's example (diagnose::examples) when there is one.
pub fn outline(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let expr = after[..end].trim();
        let simple = !expr.is_empty()
            && expr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if simple {
            out.push_str(&format!("<{}>", expr.rsplit('.').next().unwrap_or(expr)));
        } else {
            out.push_str("<value>");
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// docs/rules.md: every rule, generated from rules/*.toml (a test keeps the
/// file in sync; `UPDATE_DOCS=1 cargo test --test docs` rewrites it).
pub fn reference_markdown(rules: &[Rule]) -> String {
    let mut out = String::from(
        "# Rules\n\n<!-- Generated from rules/*.toml by `UPDATE_DOCS=1 cargo test --test docs`; do not edit. -->\n\n\
         Each rule has an id, a severity (`error`, `warn`, `info`), the area of the page it belongs to, an action \
         class (who must act: `hardware` and `node-config` take a node out of service in cluster hooks, \
         `user-env` is one user's environment, `advice` breaks nothing), a CEL \
         condition over the facts (`rigdoctor check --format json` shows them under `facts`; the probe reports \
         are `probes`, by name, and `probe_list`, in the order they ran), and texts with \
         `{{ ... }}` holes filled from the facts. `rigdoctor explain ID` prints one rule; a site adds or \
         replaces rules with `--rules DIR` (same format; a rule with a built-in id replaces it).\n\n\
         | id | severity | class | area | title |\n|---|---|---|---|---|\n",
    );
    for r in rules {
        out.push_str(&format!(
            "| [{id}](#{anchor}) | {sev} | {class} | {area} | {title} |\n",
            id = r.spec.id,
            anchor = r.spec.id.to_ascii_lowercase(),
            sev = r.spec.severity.as_str(),
            class = r.class.as_str(),
            area = r.spec.area,
            title = super::examples::summary(r).replace('|', "\\|")
        ));
    }
    for r in rules {
        let s = &r.spec;
        out.push_str(&format!("\n## {}\n\n", s.id));
        out.push_str(&format!(
            "**{}** · class `{}` · area `{}` · defined in `{}`\n\n",
            s.severity.as_str(),
            r.class.as_str(),
            s.area,
            r.origin
        ));
        out.push_str(&format!("{}\n\n", super::examples::summary(r)));
        out.push_str(&format!(
            "{}\n\n",
            s.explain.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
        if let Some(each) = &s.each {
            out.push_str(&format!(
                "For each item of `{each}` (bound to `it`), when:\n\n"
            ));
        } else {
            out.push_str("When:\n\n");
        }
        out.push_str(&format!("```\n{}\n```\n\n", s.when.trim()));
        out.push_str(&format!("Fix (template):\n\n```\n{}\n```\n", s.fix.trim()));
        if s.could_not_look {
            out.push_str(
                "\nIts finding is that rigdoctor could not look: health hooks (`--format npd`) report Unknown.\n",
            );
        }
        if !s.suppressed_by.is_empty() {
            out.push_str(&format!(
                "\nYields to {}: when one of them fires, this one is not reported.\n",
                s.suppressed_by
                    .iter()
                    .map(|r| format!("[{r}](#{})", r.to_ascii_lowercase()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !s.fires_on.is_empty() {
            out.push_str(&format!(
                "\nFires on {}; silent on {}.\n",
                s.fires_on
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.silent_on
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !s.refs.is_empty() {
            out.push_str("\nReferences: ");
            out.push_str(
                &s.refs
                    .iter()
                    .map(|x| format!("<{x}>"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            out.push('\n');
        }
    }
    out
}

/// A rule in full, for `rigdoctor explain ID` and docs/rules.md. Template
/// holes (`{{ ... }}`) are shown as written: they are filled from the facts.
pub fn explain_text(r: &Rule) -> String {
    let s = &r.spec;
    let mut out = format!(
        "{}  [{}, class {}, area {}]\n{}\n\n",
        s.id,
        s.severity.as_str(),
        r.class.as_str(),
        s.area,
        s.title
    );
    out.push_str(&format!("When:     {}\n", s.when.trim()));
    if let Some(each) = &s.each {
        out.push_str(&format!("For each: {each} (as `it`)\n"));
    }
    out.push_str(&format!("\nWhy:\n{}\n", s.explain.trim()));
    if !s.evidence.trim().is_empty() {
        out.push_str(&format!("\nEvidence:\n{}\n", s.evidence.trim()));
    }
    out.push_str(&format!("\nFix:\n{}\n", s.fix.trim()));
    if !s.refs.is_empty() {
        out.push_str("\nReferences:\n");
        for x in &s.refs {
            out.push_str(&format!("- {x}\n"));
        }
    }
    out.push_str(&format!("\nDefined in {}\n", r.origin));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlines_show_placeholders() {
        assert_eq!(
            outline("{{ it.name }} at {{it.pci}} has x{{ a ? b : c }}"),
            "<name> at <pci> has x<value>"
        );
        assert_eq!(outline("plain"), "plain");
    }

    #[test]
    fn nested_scans_over_the_gpus_are_found() {
        let env = cel_env();
        let rule = |each: &str, when: &str, title: &str| {
            let text = format!(
                "[[rule]]\nid='A-B'\nseverity='warn'\narea='gpus'\nclass='advice'\n{each}when=\"{when}\"\ntitle=\"{title}\"\nexplain='e'\nfix='f'\n"
            );
            let rules = parse_file(&env, "x", &text).unwrap();
            nested_scans(&rules[0]).len()
        };
        // The old GPU-VRAM-MIXED and NV-NVLINK-MISSING shapes.
        assert_eq!(
            rule(
                "",
                "gpus.filter(g, g.compute).exists(a, gpus.exists(b, a.v < b.v))",
                "t"
            ),
            1
        );
        assert_eq!(
            rule(
                "",
                "nvidia.links.exists(l, nvidia.gpus.exists(g, g.index == l.a))",
                "t"
            ),
            1
        );
        // Per item of an `each` over the GPUs, a scan of the GPUs in a template.
        assert_eq!(
            rule(
                "each='gpus'\n",
                "true",
                "{{ gpus.map(g, g.name).join(', ') }}"
            ),
            1
        );
        // Linear shapes: one scan, a scan of a field of the item, a scan of other facts.
        assert_eq!(rule("", "gpus.exists(g, g.compute)", "t"), 0);
        assert_eq!(
            rule(
                "",
                "nvidia.gpus.exists(g, g.reasons.exists(r, r == 'x'))",
                "t"
            ),
            0
        );
        assert_eq!(
            rule("each='gpus'\n", "it.rebar == false", "{{ it.name }}"),
            0
        );
        assert_eq!(rule("", "sycl.devices.exists(d, gpus.size() > 0)", "t"), 0);
        // `in` scans its list; per-GPU lists of other vendors and runtimes count.
        assert_eq!(rule("", "gpus.exists(g, g.pci in nvidia.lost)", "t"), 1);
        assert_eq!(
            rule(
                "",
                "amd.agents.exists(a, a.integrated && amd.agents.exists(b, b.visible))",
                "t"
            ),
            1
        );
        assert_eq!(
            rule(
                "each='vulkan.missing'\n",
                "true",
                "{{ vulkan.devices.map(d, d.name).join(', ') }}"
            ),
            1
        );
        // A membership test in a literal or a map, and a scan per probe, are not.
        assert_eq!(
            rule("", "gpus.exists(g, g.vendor in ['amd', 'intel'])", "t"),
            0
        );
        assert_eq!(rule("each='probe_list'\n", "true", "{{ gpus.size() }}"), 0);
    }

    #[test]
    fn ids_are_upper_kebab() {
        assert!(valid_id("PCI-REBAR-OFF"));
        assert!(valid_id("SYCL-L0-MISSING"));
        assert!(!valid_id("pci-rebar"));
        assert!(!valid_id("PCI"));
        assert!(!valid_id("PCI--X"));
    }

    #[test]
    fn templates_split_text_and_expressions() {
        let env = cel_env();
        let t = compile_template(&env, "a {{ 1 + 1 }} b {{x}}", "t", "X-Y", "title").unwrap();
        assert_eq!(t.len(), 4);
        assert!(compile_template(&env, "a {{ 1 +", "t", "X-Y", "title").is_err());
        assert!(compile_template(&env, "a {{ ) }}", "t", "X-Y", "title").is_err());
    }

    #[test]
    fn lazy_templates_compile_at_first_use_and_eager_ones_with_the_rule() {
        let env = cel_env();
        let text = "[[rule]]\nid='A-B'\nseverity='warn'\narea='gpus'\nclass='advice'\nwhen='true'\ntitle='t {{ 1 + }}'\nexplain='e'\nfix='f'\n";
        let e = parse_file(&env, "x", text).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("x: A-B.title: {{ 1 + }} does not compile"),
            "{e}"
        );
        let lazy = parse_file_with(&env, "x", text, Compile::Lazy).unwrap();
        let e = lazy[0].title.segments().err().unwrap();
        assert!(e.message.starts_with("A-B.title:"), "{e}");
        assert_eq!(lazy[0].fix.segments().unwrap().len(), 1);
        // The built-in rules load lazily, and each of their templates compiles.
        let rules = load_for_check(None).unwrap();
        for r in &rules {
            for t in [&r.title, &r.evidence, &r.explain, &r.fix] {
                assert!(t.segments().is_ok(), "{}", r.spec.id);
            }
        }
    }

    #[test]
    fn bad_rule_files_are_refused_with_the_reason() {
        let env = cel_env();
        let base = "[[rule]]\nid='A-B'\nseverity='warn'\narea='gpus'\nclass='advice'\ntitle='t'\nexplain='e'\nfix='f'\n";
        assert!(parse_file(&env, "x", &format!("{base}when='true'\n")).is_ok());
        let e = parse_file(&env, "x", &format!("{base}when='1 +'\n"))
            .err()
            .unwrap();
        assert!(e.message.contains("does not compile"), "{e}");
        assert!(parse_file(&env, "x", &format!("{base}when='true'\nunknown=1\n")).is_err());
        assert!(
            parse_file(
                &env,
                "x",
                &base
                    .replace("gpus", "nowhere")
                    .replace("title='t'", "title='t'\nwhen='true'")
            )
            .is_err()
        );
    }

    #[test]
    fn a_rule_without_a_valid_class_is_refused_naming_rule_and_file() {
        let env = cel_env();
        let base = "[[rule]]\nid='A-B'\nseverity='warn'\narea='gpus'\ntitle='t'\nexplain='e'\nfix='f'\nwhen='true'\n";
        let e = parse_file(&env, "site/x.toml", base).err().unwrap();
        let shown = e.to_string();
        assert!(shown.starts_with("site/x.toml: A-B: no `class`"), "{shown}");
        assert!(
            shown.contains("hardware, node-config, user-env, advice"),
            "{shown}"
        );
        let e = parse_file(&env, "site/x.toml", &format!("{base}class='hardwear'\n"))
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .starts_with("site/x.toml: A-B: class \"hardwear\" is not one of"),
            "{e}"
        );
        for c in RuleClass::ALL {
            let r = parse_file(&env, "x", &format!("{base}class='{}'\n", c.as_str())).unwrap();
            assert_eq!(r[0].class, c);
        }
    }

    #[test]
    fn every_builtin_rule_has_a_class() {
        // parse_file refuses a rule without one, so loading is the check;
        // and the node-problem classes are really used.
        let rules = load(None).unwrap();
        assert!(rules.iter().any(|r| r.class == RuleClass::Hardware));
        assert!(rules.iter().any(|r| r.class == RuleClass::NodeConfig));
        assert!(rules.iter().any(|r| r.class == RuleClass::UserEnv));
        assert!(rules.iter().any(|r| r.class == RuleClass::Advice));
    }
}
