//! The rules engine: evaluate rules over the facts and build diagnoses.
//! Findings are never `Err`; a rule that fails to evaluate is recorded in
//! `rule_errors` (tests require that list to stay empty on every fixture)
//! and the other rules still run.

pub mod examples;
pub mod facts;
pub mod report;
pub mod rules;

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use cel::common::value::Val;
use cel::{Context, Value};
use serde::Serialize;

pub use rules::{Rule, RuleClass, Severity};
use rules::{Segment, Template};

/// One problem found: what, the evidence, why it matters, the fix.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Diagnosis {
    pub id: String,
    pub severity: Severity,
    /// Who must act (rules.rs [`RuleClass`]); cluster hooks drain a node
    /// only for `hardware` and `node-config`.
    pub class: RuleClass,
    pub area: String,
    /// The PCI address (`0000:03:00.0`) of the one GPU this diagnosis is
    /// about, when the rule iterates over GPUs; null for rig-wide findings.
    pub gpu: Option<String>,
    pub title: String,
    pub evidence: String,
    pub explain: String,
    pub fix: String,
    pub refs: Vec<String>,
    /// From the rule (`could_not_look`): this finding is that a probe could
    /// not look. Not in the JSON: [`report::health`] uses it.
    #[serde(skip)]
    pub could_not_look: bool,
}

#[derive(Debug, Default)]
pub struct Evaluation {
    /// Most severe first; within a severity, in rule order.
    pub diagnoses: Vec<Diagnosis>,
    pub rule_errors: Vec<String>,
    /// What the evaluation cost, counted (the scaling test reads it).
    pub work: facts::Work,
}

/// Compare versions the way people read them: numeric parts numerically,
/// a local suffix (`+cxx11.abi`, `+xpu`) ignored, missing parts as 0.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    fn parts(v: &str) -> Vec<u64> {
        let v = v.trim().trim_start_matches('v');
        let v = v.split('+').next().unwrap_or(v);
        v.split(['.', '-'])
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    }
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let o = pa.get(i).unwrap_or(&0).cmp(pb.get(i).unwrap_or(&0));
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// `17179869184` -> `16 GiB`.
pub fn human_bytes(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if (v - v.round()).abs() < 0.05 {
        format!("{:.0} {}", v, units[u])
    } else {
        format!("{:.1} {}", v, units[u])
    }
}

/// JSON facts as CEL values. Numbers become `int` when integral (CEL does
/// not compare `int` with `uint`), else `double`.
pub fn to_cel(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(a) => Value::List(Arc::new(a.iter().map(to_cel).collect())),
        serde_json::Value::Object(o) => {
            let m: std::collections::HashMap<String, Value> =
                o.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Value::Map(m.into())
        }
    }
}

/// How a value reads inside a sentence.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => format!("{f}"),
        Value::Bool(b) => b.to_string(),
        Value::Null => "unknown".into(),
        Value::List(l) => l.iter().map(display).collect::<Vec<_>>().join(", "),
        other => format!("{other:?}"),
    }
}

/// How many items a list on the page shows before "and M more" (issue 15:
/// per-pair lists made the page of a 256-GPU rig 3.5 MB). The JSON facts
/// keep every item.
pub const LIST_CAP: usize = 8;

/// `a, b, c` -- or the first [`LIST_CAP`] items and `and M more`.
pub fn capped(items: &[String], sep: &str) -> String {
    if items.len() <= LIST_CAP {
        return items.join(sep);
    }
    // `a, b, and 3 more`; `24 GiB + 24 GiB and 3 more`.
    let tail = if sep.trim_end().ends_with([',', ';']) {
        sep
    } else {
        " "
    };
    format!(
        "{}{tail}and {} more",
        items[..LIST_CAP].join(sep),
        items.len() - LIST_CAP
    )
}

fn add_functions(ctx: &mut Context) {
    // capped(list, sep): a list joined for a sentence, at most LIST_CAP items.
    let _ = ctx.add_function("capped", |list: Value, sep: Arc<String>| -> String {
        match list {
            Value::List(items) => {
                let items: Vec<String> = items.iter().map(display).collect();
                capped(&items, &sep)
            }
            other => display(&other),
        }
    });
    let _ = ctx.add_function("vercmp", |a: Arc<String>, b: Arc<String>| -> i64 {
        match vercmp(&a, &b) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    });
    let _ = ctx.add_function("human_bytes", |n: Value| -> String {
        match n {
            Value::Int(i) => human_bytes(i as f64),
            Value::UInt(u) => human_bytes(u as f64),
            Value::Float(f) => human_bytes(f),
            _ => "unknown".into(),
        }
    });
}

fn render(t: &Template, ctx: &Context, ev: &mut Evaluation, id: &str) -> String {
    let segments = match t.segments() {
        Ok(s) => s,
        Err(e) => {
            ev.rule_errors.push(e.to_string());
            return "(?)".into();
        }
    };
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Text(s) => out.push_str(s),
            Segment::Expr { source, program } => {
                ev.work.evaluations += 1;
                match program.execute(ctx) {
                    Ok(v) => out.push_str(&display(&v)),
                    Err(e) => {
                        ev.rule_errors
                            .push(format!("{id}: {{{{ {source} }}}}: {e}"));
                        out.push_str("(?)");
                    }
                }
            }
        }
    }
    out.trim().to_string()
}

/// The GPU an iterated item is about: its `pci` field, when it has one that
/// reads like a PCI address (`gpus[]`, `nvidia.gpus[]`, `amd.agents[]` all
/// carry one; a GPU pair or a probe does not).
fn item_gpu(item: &dyn Val) -> Option<String> {
    let field = item
        .as_indexer()?
        .get(&cel::common::types::CelString::from("pci"))
        .ok()?;
    let s = field
        .downcast_ref::<cel::common::types::CelString>()?
        .inner();
    (s.contains(':') && s.contains('.')).then(|| s.to_string())
}

fn diagnosis(rule: &Rule, ctx: &Context, item: Option<&dyn Val>, ev: &mut Evaluation) -> Diagnosis {
    let id = &rule.spec.id;
    Diagnosis {
        id: id.clone(),
        severity: rule.spec.severity,
        class: rule.class,
        area: rule.spec.area.clone(),
        gpu: item.and_then(item_gpu),
        title: render(&rule.title, ctx, ev, id),
        evidence: render(&rule.evidence, ctx, ev, id),
        explain: render(&rule.explain, ctx, ev, id),
        fix: render(&rule.fix, ctx, ev, id),
        refs: rule.spec.refs.clone(),
        could_not_look: rule.spec.could_not_look,
    }
}

/// Run a rule's `when` in `ctx`; a non-bool or a failure is recorded, and false.
fn holds(rule: &Rule, ctx: &Context, ev: &mut Evaluation) -> bool {
    ev.work.evaluations += 1;
    let id = &rule.spec.id;
    match rule.when.execute(ctx) {
        Ok(Value::Bool(b)) => b,
        Ok(other) => {
            ev.rule_errors
                .push(format!("{id}: `when` gave {other:?}, not a bool"));
            false
        }
        Err(e) => {
            ev.rule_errors.push(format!("{id}: `when` failed: {e}"));
            false
        }
    }
}

/// Evaluate `rules` over `facts` (a JSON object whose keys become CEL variables).
pub fn evaluate(rules: &[Rule], facts: &serde_json::Value) -> Evaluation {
    evaluate_where(rules, facts, |_| true)
}

/// [`evaluate`] only the rules `keep` accepts: `check` leaves out the
/// `watch` area (whose facts only a watch has), `watch` keeps only it.
pub fn evaluate_where(
    rules: &[Rule],
    facts: &serde_json::Value,
    keep: impl Fn(&Rule) -> bool,
) -> Evaluation {
    let visits = Arc::new(AtomicU64::new(0));
    let mut root = Context::with_env(rules::cel_env());
    add_functions(&mut root);
    if let serde_json::Value::Object(o) = facts {
        for (k, v) in o {
            // Shared, not copied: see diagnose/facts.rs.
            root.add_variable_as_val(k.clone(), facts::to_val(v, &visits));
        }
    }
    let mut ev = Evaluation::default();
    for rule in rules.iter().filter(|r| keep(r)) {
        let id = &rule.spec.id;
        match &rule.each {
            None => {
                if holds(rule, &root, &mut ev) {
                    let d = diagnosis(rule, &root, None, &mut ev);
                    ev.diagnoses.push(d);
                }
            }
            Some(each) => {
                ev.work.evaluations += 1;
                // Resolved, not executed: executing converts the list to a
                // `Value`, a deep copy of every item.
                let items = match Value::resolve_val(each.expression(), &root) {
                    Ok(v) => v,
                    Err(e) => {
                        ev.rule_errors.push(format!("{id}: `each` failed: {e}"));
                        continue;
                    }
                };
                let Some(iterable) = items
                    .as_iterable()
                    .filter(|_| items.get_type().name() == "list")
                else {
                    ev.rule_errors.push(format!(
                        "{id}: `each` gave a {}, not a list",
                        items.get_type().name()
                    ));
                    continue;
                };
                let mut iter = iterable.iter();
                while let Some(item) = iter.next() {
                    let mut ctx = root.new_inner_scope();
                    ctx.add_variable_as_val("it", item.clone_as_boxed());
                    if holds(rule, &ctx, &mut ev) {
                        let d = diagnosis(rule, &ctx, Some(item), &mut ev);
                        ev.diagnoses.push(d);
                    }
                }
            }
        }
    }
    ev.work.visited = visits.load(AtomicOrdering::Relaxed);
    // A rule yields to the more precise rules it names in `suppressed_by`.
    let fired: std::collections::BTreeSet<String> =
        ev.diagnoses.iter().map(|d| d.id.clone()).collect();
    ev.diagnoses.retain(|d| {
        rules
            .iter()
            .find(|r| r.spec.id == d.id)
            .is_none_or(|r| !r.spec.suppressed_by.iter().any(|s| fired.contains(s)))
    });
    // Stable: most severe first, rule order within a severity.
    ev.diagnoses.sort_by_key(|d| std::cmp::Reverse(d.severity));
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(vercmp("2.10.0", "2.9.1"), Ordering::Greater);
        assert_eq!(vercmp("2.1.0a0+cxx11.abi", "2.1"), Ordering::Equal);
        assert_eq!(vercmp("2024.0", "2024.1.0"), Ordering::Less);
        assert_eq!(vercmp("v1.2", "1.2.0"), Ordering::Equal);
        assert_eq!(vercmp("", "0"), Ordering::Equal);
    }

    #[test]
    fn long_lists_are_capped() {
        let items: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert_eq!(capped(&items[..3], ", "), "0, 1, 2");
        assert_eq!(capped(&items, ", "), "0, 1, 2, 3, 4, 5, 6, 7, and 3 more");
        assert_eq!(
            capped(&items, " + "),
            "0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 and 3 more"
        );
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes((16u64 << 30) as f64), "16 GiB");
        assert_eq!(human_bytes((256u64 << 20) as f64), "256 MiB");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
    }

    fn rules_from(text: &str) -> Vec<Rule> {
        rules::parse_file(&rules::cel_env(), "test", text).unwrap()
    }

    #[test]
    fn each_binds_it_and_templates_fill_in() {
        let rules = rules_from(
            r#"
[[rule]]
id = "T-EACH"
severity = "warn"
area = "gpus"
class = "hardware"
each = "gpus"
when = "it.rebar == false"
title = "ReBAR off on {{ it.name }} ({{ human_bytes(it.bar) }})"
explain = "x"
fix = "enable it"
"#,
        );
        let facts = json!({"gpus": [
            {"name": "A770 #0", "pci": "0000:03:00.0", "rebar": false, "bar": 268435456u64},
            {"name": "A770 #1", "rebar": true, "bar": 17179869184u64},
            {"name": "iGPU", "rebar": null, "bar": 0}
        ]});
        let ev = evaluate(&rules, &facts);
        assert!(ev.rule_errors.is_empty(), "{:?}", ev.rule_errors);
        assert_eq!(ev.diagnoses.len(), 1);
        assert_eq!(ev.diagnoses[0].title, "ReBAR off on A770 #0 (256 MiB)");
        // An iterated GPU lends the diagnosis its PCI address; the class comes from the rule.
        assert_eq!(ev.diagnoses[0].gpu.as_deref(), Some("0000:03:00.0"));
        assert_eq!(ev.diagnoses[0].class, RuleClass::Hardware);
    }

    /// `in` over a fact list is a scan and is counted as one; over a map
    /// it is a lookup. Both answer as CEL's own list and map do.
    #[test]
    fn membership_in_shared_facts_is_counted_for_lists() {
        let rules = rules_from(
            r#"
[[rule]]
id = "T-IN"
severity = "info"
area = "env"
class = "advice"
when = "'c' in xs && !('z' in xs) && 'k' in m && !('q' in m) && 2 in ns && !(2.5 in ns)"
title = "t"
explain = "x"
fix = "f"
"#,
        );
        let ev = evaluate(
            &rules,
            &json!({"xs": ["a", "b", "c", "d"], "m": {"k": 1}, "ns": [1, 2]}),
        );
        assert!(ev.rule_errors.is_empty(), "{:?}", ev.rule_errors);
        assert_eq!(ev.diagnoses.len(), 1);
        // 'c': three compared; 'z': all four; 2: two; 2.5: both.
        assert_eq!(ev.work.visited, 3 + 4 + 2 + 2);
    }

    /// A template compiled at first use that does not compile is a rule
    /// error of that rule alone (only site rules could be broken, and
    /// `check` compiles those whole before it looks).
    #[test]
    fn a_lazy_template_that_does_not_compile_is_a_rule_error() {
        let text = "[[rule]]\nid='T-LAZY'\nseverity='info'\narea='env'\nclass='advice'\nwhen='true'\ntitle='t {{ ) }}'\nexplain='x'\nfix='f {{ 1 + 1 }}'\n";
        let rules =
            rules::parse_file_with(&rules::cel_env(), "test", text, rules::Compile::Lazy).unwrap();
        let ev = evaluate(&rules, &json!({}));
        assert_eq!(ev.diagnoses.len(), 1);
        assert_eq!(ev.diagnoses[0].title, "(?)");
        assert_eq!(ev.diagnoses[0].fix, "f 2");
        assert_eq!(ev.rule_errors.len(), 1, "{:?}", ev.rule_errors);
        assert!(
            ev.rule_errors[0].contains("T-LAZY.title"),
            "{:?}",
            ev.rule_errors
        );
    }

    #[test]
    fn failing_rules_are_recorded_and_others_still_run() {
        let rules = rules_from(
            r#"
[[rule]]
id = "T-BAD"
severity = "error"
area = "env"
class = "user-env"
when = "env.NOPE == 'x'"
title = "t"
explain = "x"
fix = "f"

[[rule]]
id = "T-GOOD"
severity = "info"
area = "env"
class = "user-env"
when = "has(env.A) && vercmp(env.A, '2.0') < 0"
title = "A is {{ env.A }}"
explain = "x"
fix = "f"
"#,
        );
        let ev = evaluate(&rules, &json!({"env": {"A": "1.9"}}));
        assert_eq!(ev.rule_errors.len(), 1);
        assert_eq!(ev.diagnoses.len(), 1);
        assert_eq!(ev.diagnoses[0].title, "A is 1.9");
        assert_eq!(ev.diagnoses[0].gpu, None);
    }

    #[test]
    fn a_rule_yields_to_the_more_precise_one() {
        let rules = rules_from(
            r#"
[[rule]]
id = "T-GENERAL"
severity = "error"
area = "env"
class = "user-env"
when = "env.A == 'x'"
title = "general"
explain = "x"
fix = "f"
suppressed_by = ["T-PRECISE"]

[[rule]]
id = "T-PRECISE"
severity = "error"
area = "env"
class = "user-env"
when = "env.A == 'x' && has(env.B)"
title = "precise"
explain = "x"
fix = "f"
"#,
        );
        let ids = |facts| {
            evaluate(&rules, &facts)
                .diagnoses
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(json!({"env": {"A": "x"}})), vec!["T-GENERAL"]);
        assert_eq!(ids(json!({"env": {"A": "x", "B": "1"}})), vec!["T-PRECISE"]);
    }
}
